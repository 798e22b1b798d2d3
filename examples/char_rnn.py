"""A character-level language model: an LSTM reads English words letter by letter (each
letter's id through an Embedding) and learns to predict the next letter, then writes new words.

Data: the bundled web2 word list (fastnn.datasets.load_words), its fixed train/validation
split. Each word is a sequence [start, c1, ..., ck] whose targets are [c1, ..., ck, end] (id 0 is
both the start and the end of a word). The score is the held-out cross-entropy in bits per
character (over the letters and the end of each word), against a trigram model: letter counts
given the two letters before, add-one smoothed, on the same split.
"""

import numpy as np

import fastnn as fnn
from fastnn.datasets import bits_per_char, load_word_sequences

# the split as (words, 16) id arrays, the same for examples/tiny_gpt.py
vocab, L, train, validation, X_train, y_train, X_val, y_val = load_word_sequences()
V = vocab.size


def trigram_probs(X, y, X_eval, words):
    """p(next | two letters before), add-one smoothed, counted on (X, y); read at X_eval."""
    lengths = np.array([len(w) for w in words])
    prev2 = np.concatenate([np.zeros((X.shape[0], 1), np.int64), X[:, :-1]], axis=1)
    real = np.arange(L)[None, :] <= lengths[:, None]
    counts = np.ones((V, V, V))
    np.add.at(counts, (prev2[real], X[real], y[real]), 1)
    table = counts / counts.sum(axis=-1, keepdims=True)
    prev2_eval = np.concatenate([np.zeros((X_eval.shape[0], 1), np.int64), X_eval[:, :-1]], 1)
    return table[prev2_eval, X_eval]


model = fnn.Sequential([fnn.Embedding(V, 16),                      # letter ids -> vectors
                        fnn.LSTM(128, return_sequences=True),
                        fnn.Dense(V, activation="softmax")], input_shape=(L,), seed=0)
model.compile(loss="sparse_categorical_crossentropy", optimizer=fnn.Adam(learning_rate=0.01))
model.summary()
model.fit(X_train, y_train, epochs=3, batch_size=64, verbose=2)

lstm_bpc = bits_per_char(model.predict(X_val), y_val, validation)
trigram_bpc = bits_per_char(trigram_probs(X_train, y_train, X_val, train), y_val, validation)
print(f"held-out bits per character: LSTM {lstm_bpc:.3f}, trigram {trigram_bpc:.3f} "
      f"({1 - lstm_bpc / trigram_bpc:.0%} lower)")

# new words: sample a letter from the predicted distribution, feed it back, until the end id
rng = np.random.default_rng(0)
ids = np.zeros((12, L), np.int64)
done = np.zeros(12, bool)
for t in range(L - 1):
    p = model.predict(ids)[:, t].astype(np.float64)
    nxt = np.array([rng.choice(V, p=row / row.sum()) for row in p])
    nxt[done] = 0
    ids[:, t + 1] = nxt
    done |= nxt == 0
samples = [vocab.decode(row) for row in ids]
print("sampled words:", ", ".join(samples))
print("of which in the word list:", sum(s in set(train + validation) for s in samples))
assert lstm_bpc < 0.9 * trigram_bpc
