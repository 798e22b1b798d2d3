"""A binary fraud-style classifier on synthetic card transactions (about 5% fraud).

Features: amount (log), hour of day, distance from home, a new merchant flag, and the number of
transactions in the last hour. Fraud is rare, so accuracy alone flatters: report precision and
recall of the fraud class too.
"""

import numpy as np

import fastnn as fnn
from fastnn.datasets import train_test_split

rng = np.random.default_rng(0)
n = 6000
amount = rng.lognormal(3.5, 1.0, n)
hour = rng.integers(0, 24, n)
distance = rng.exponential(10.0, n)
new_merchant = rng.random(n) < 0.2
recent = rng.poisson(1.0, n)
score = (0.9 * np.log(amount) + 1.5 * ((hour < 6) | (hour > 22)) + 0.05 * distance
         + 1.2 * new_merchant + 0.6 * recent - 7.5 + rng.normal(0, 0.5, n))
y = (score > 0).astype(np.int64)
X = np.column_stack([np.log(amount), np.sin(hour / 24 * 2 * np.pi), np.cos(hour / 24 * 2 * np.pi),
                     np.log1p(distance), new_merchant, recent])
X = (X - X.mean(axis=0)) / X.std(axis=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, seed=0)

model = fnn.Sequential([fnn.Dense(32, activation="relu"), fnn.Dense(16, activation="relu"),
                        fnn.Dense(1, activation="sigmoid")], input_dim=X.shape[1], seed=0)
model.compile(loss="binary_cross_entropy", optimizer=fnn.Adam(lr=0.003), metrics=["accuracy"])
model.fit(X_train, y_train, epochs=25, batch_size=64, verbose=0)

flagged = model.predict(X_test)[:, 0] >= 0.5
fraud = y_test == 1
precision = (flagged & fraud).sum() / max(flagged.sum(), 1)
recall = (flagged & fraud).sum() / max(fraud.sum(), 1)
print(f"fraud rate {fraud.mean():.1%}; test accuracy {np.mean(flagged == fraud):.3f}; "
      f"fraud precision {precision:.2f}, recall {recall:.2f}")
assert recall > 0.5 and precision > 0.5
