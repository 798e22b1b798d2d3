"""XOR: the classic function a single neuron cannot learn and one hidden layer can."""

import fastnn as fnn
from fastnn.datasets import make_xor

X, y = make_xor()
model = fnn.Sequential([fnn.Dense(4, activation="tanh"), fnn.Dense(1, activation="sigmoid")],
                       input_dim=2, seed=1)
model.compile(loss="binary_cross_entropy", optimizer=fnn.Adam(lr=0.05), metrics=["accuracy"])
model.fit(X, y, epochs=300, batch_size=4, verbose=0)
for x, p in zip(X, model.predict(X)[:, 0]):
    print(f"{int(x[0])} xor {int(x[1])} -> {p:.3f}")
assert ((model.predict(X)[:, 0] > 0.5) == (y == 1)).all()
