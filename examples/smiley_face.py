"""The 7x7 smiley face: 49 inputs (one per pixel), one output neuron: smiley (1) or frown (0)."""

import fastnn as fnn
from fastnn.datasets import frown, make_faces, smiley

X, y = make_faces(n_per_class=100, flip_prob=0.05, seed=0)   # noisy faces, flattened to 49
model = fnn.Sequential([fnn.Dense(8, activation="relu"), fnn.Dense(1, activation="sigmoid")],
                       input_dim=49, seed=0)
model.compile(loss="binary_cross_entropy", optimizer=fnn.Adam(lr=0.01), metrics=["accuracy"])
model.fit(X, y, epochs=30, batch_size=16, verbose=0)

for name, face in (("smiley", smiley()), ("frown", frown())):
    print("\n".join("".join("#" if p else "." for p in row) for row in face))
    p = model.predict(face.reshape(1, 49))[0, 0]
    print(f"{name}: P(smiley) = {p:.3f}\n")
print("training accuracy:", model.evaluate(X, y)["accuracy"])
assert model.predict(smiley().reshape(1, 49))[0, 0] > 0.5 > model.predict(frown().reshape(1, 49))[0, 0]
