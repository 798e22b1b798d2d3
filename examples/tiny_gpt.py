"""A tiny character-level GPT: two causal Transformer blocks learn to spell English words letter
by letter, then write new words by temperature sampling through the key/value cache.

Data and score as in examples/char_rnn.py (fastnn.datasets.load_word_sequences): each word of
the bundled word list is [start, c1, ..., ck] with targets [c1, ..., ck, end] (id 0 is the start
and the end), and the score is the held-out cross-entropy in bits per character over each
word's letters and its end (fastnn.datasets.bits_per_char). The LSTM of char_rnn.py, trained
here with its settings (Embedding 16, LSTM 128, Adam 0.01, 3 epochs of batch 64), is the mark
to beat.

    python examples/tiny_gpt.py              # the full run: GPT and LSTM, then new words
    python examples/tiny_gpt.py --epochs 1   # a short run (no comparison asserted)
"""

import argparse
import math
import time

import numpy as np

import fastnn as fnn
from fastnn.datasets import bits_per_char, load_word_sequences

EPOCHS = 8          # 6 already pass the LSTM, by 0.005 bits; 8 by 0.04 (see the README)


def tiny_gpt(vocab_size, length, width=64, blocks=2, heads=4, ff_dim=256, seed=0):
    """Embedding -> learned positions -> causal Transformer blocks -> LayerNorm -> softmax."""
    layers = [fnn.Embedding(vocab_size, width,
                            embeddings_initializer=fnn.initializers.RandomNormal(stddev=0.3)),
              fnn.PositionalEmbedding(length,
                                      initializer=fnn.initializers.RandomNormal(stddev=0.02))]
    layers += [fnn.TransformerBlock(num_heads=heads, key_dim=width // heads, ff_dim=ff_dim,
                                    causal=True, activation="relu") for _ in range(blocks)]
    layers += [fnn.LayerNormalization(), fnn.Dense(vocab_size, activation="softmax")]
    return fnn.Sequential(layers, input_shape=(length,), seed=seed)


def char_lstm(vocab_size, length, seed=0):
    """examples/char_rnn.py's model."""
    return fnn.Sequential([fnn.Embedding(vocab_size, 16), fnn.LSTM(128, return_sequences=True),
                           fnn.Dense(vocab_size, activation="softmax")],
                          input_shape=(length,), seed=seed)


class WarmupCosine(fnn.callbacks.Callback):
    """Per batch: the rate rises linearly over `warmup` steps, then falls along a cosine to
    `floor` times its peak at the last step."""

    def __init__(self, optimizer, peak, total_steps, warmup=100, floor=0.05):
        self.optimizer, self.peak, self.total = optimizer, peak, total_steps
        self.warmup, self.floor, self.step = warmup, floor, 0
        optimizer.learning_rate = self.rate(0)

    def rate(self, step):
        if step < self.warmup:
            return self.peak * (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return self.peak * (self.floor + (1 - self.floor) * cosine)

    def on_batch_end(self, batch, logs=None):
        self.step += 1
        self.optimizer.learning_rate = self.rate(self.step)


def train_gpt(data, epochs=EPOCHS, batch_size=64, peak_lr=0.01, verbose=2, **arch):
    model = tiny_gpt(data.vocab.size, data.length, **arch)
    optimizer = fnn.Adam(learning_rate=peak_lr)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer)
    steps = epochs * -(-len(data.X_train) // batch_size)
    model.fit(data.X_train, data.y_train, epochs=epochs, batch_size=batch_size, verbose=verbose,
              callbacks=[WarmupCosine(optimizer, peak_lr, steps)])
    return model


def train_lstm(data, epochs=3, verbose=2):
    model = char_lstm(data.vocab.size, data.length)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=fnn.Adam(learning_rate=0.01))
    model.fit(data.X_train, data.y_train, epochs=epochs, batch_size=64, verbose=verbose)
    return model


def held_out_bpc(model, data):
    return bits_per_char(model.predict(data.X_val), data.y_val, data.validation)


def sample_words(model, vocab, length, count=12, temperature=0.8, seed=0):
    """New words: from the start id, sample each next letter at `temperature` through the
    key/value cache (model.generate) until the end id or `length` - 1 letters."""
    prompt = np.zeros((count, 1), dtype=np.int64)
    ids = model.generate(prompt, max_new_tokens=length - 1, temperature=temperature, seed=seed,
                         end_id=0)
    words = []
    for row in ids[:, 1:]:
        end = np.flatnonzero(row == 0)
        words.append(vocab.decode(row[:end[0]] if len(end) else row))
    return words


def main(epochs=EPOCHS, compare=True, verbose=2):
    data = load_word_sequences()
    start = time.perf_counter()
    gpt = train_gpt(data, epochs=epochs, verbose=verbose)
    result = {"gpt_bpc": held_out_bpc(gpt, data), "gpt_seconds": time.perf_counter() - start}
    gpt.summary()
    print(f"GPT ({epochs} epochs, {result['gpt_seconds']:.0f} s): held-out bits per character "
          f"{result['gpt_bpc']:.3f}")
    if compare:
        start = time.perf_counter()
        lstm = train_lstm(data, verbose=verbose)
        result.update(lstm_bpc=held_out_bpc(lstm, data), lstm_seconds=time.perf_counter() - start)
        print(f"LSTM of char_rnn.py (3 epochs, {result['lstm_seconds']:.0f} s): held-out bits "
              f"per character {result['lstm_bpc']:.3f}")
    result["model"] = gpt
    result["data"] = data
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args()
    full = args.epochs == EPOCHS
    result = main(epochs=args.epochs, compare=full)
    if full:
        assert result["gpt_bpc"] <= result["lstm_bpc"], result

    # new words by temperature sampling through the key/value cache
    data = result["data"]
    samples = sample_words(result["model"], data.vocab, data.length, temperature=0.8)
    known = set(data.train + data.validation)
    print("sampled words (temperature 0.8):", ", ".join(samples))
    print("of which in the word list:", sum(word in known for word in samples))
