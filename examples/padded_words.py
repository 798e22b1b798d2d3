"""Padding and masks: a recurrent network reads words of different lengths, padded to one length.

A batch is one array, so the words (3 to 12 letters) are padded with id 0 (``pad_sequences``).
Task: name each word's last letter, which the network only knows if its state still holds that
letter at the end of the padding. With ``Embedding(mask_zero=True)`` the padded steps are
skipped (the state carries over them) and the answer does not depend on the padding at all: the
same weights give the same outputs on words padded to 12 or to 150 steps. Without the mask the
network reads the padding too; it learns to cope with the padding it was trained on, and drifts
over longer padding.

Data: the bundled web2 word list (fastnn.datasets.load_words).
"""

import numpy as np

import fastnn as fnn
from fastnn.utils import pad_sequences

words = [w for w in fnn.datasets.load_words()
         if 3 <= len(w) <= 12 and w.isascii() and w.isalpha() and w.islower()]
words = [words[i] for i in np.random.default_rng(0).permutation(len(words))[:3000]]
letters = [[ord(ch) - 96 for ch in w] for w in words]          # a..z -> 1..26; 0 is padding
y = np.array([ord(w[-1]) - 97 for w in words])                 # the last letter's class
train, test = slice(0, 2400), slice(2400, None)


def network(mask_zero, length):
    return fnn.Sequential([fnn.Embedding(27, 16, mask_zero=mask_zero), fnn.SimpleRNN(32),
                           fnn.Dense(26, activation="softmax")], input_shape=(length,), seed=2)


results = {}
for mask_zero in (True, False):
    model = network(mask_zero, 12)
    model.compile("sparse_categorical_crossentropy", fnn.Adam(learning_rate=0.01),
                  metrics=["accuracy"])
    X12 = pad_sequences(letters, maxlen=12, padding="post")
    model.fit(X12[train], y[train], epochs=8, batch_size=32, verbose=0)
    longer = network(mask_zero, 150)                   # the same weights, longer padding
    longer.set_weights(model.get_weights())
    longer.compile("sparse_categorical_crossentropy", metrics=["accuracy"])
    X150 = pad_sequences(letters, maxlen=150, padding="post")
    results[mask_zero] = (model.evaluate(X12[test], y[test])["accuracy"],
                          longer.evaluate(X150[test], y[test])["accuracy"],
                          np.abs(model.predict(X12[test]) - longer.predict(X150[test])).max())
    print(f"mask_zero={mask_zero!s:5}  held-out accuracy: padded to 12 {results[mask_zero][0]:.3f}"
          f", padded to 150 {results[mask_zero][1]:.3f}  (largest change of an output "
          f"{results[mask_zero][2]:.2g})")

assert results[True][0] >= 0.98 and results[True][1] >= 0.98
assert results[True][2] <= 1e-5                    # the padding changes nothing
assert results[False][1] <= results[True][1] - 0.1  # without the mask, longer padding hurts
