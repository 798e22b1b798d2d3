"""One neuron, weights given by hand: should a traveller buy insurance?

Three yes/no inputs (a long trip, an expensive trip, a risky destination) with weights set by
hand and a step activation at threshold 0.5: the neuron fires (1 = buy) when the weighted sum
reaches 0.5. A weighted sum of 0.7 gives 1.

No bias (``use_bias=False``): a bias b added to the weighted sum would do what the threshold
already does (firing at sum + b >= 0.5 is firing at sum >= 0.5 - b), so one of the two is
enough, and a threshold reads more plainly here. The layer then has one weight array, the
kernel, which is what ``set_weights`` takes.

Both backends: fastnn computes every layer twice over, in compiled kernels (``"fast"``, the
default, for speed) and in plain NumPy (``"numpy"``, the reference to read and to check the
compiled code against). For one neuron and five trips speed does not matter, so the example
runs on each and shows that they decide alike.
"""

import numpy as np

import fastnn as fnn

weights = np.array([[0.2], [0.5], [0.3]])   # long trip, expensive trip, risky destination
trips = np.array([[1, 0, 0],     # long only:               0.2 -> 0
                  [0, 1, 0],     # expensive only:          0.5 -> 1
                  [1, 1, 0],     # long and expensive:      0.7 -> 1
                  [1, 0, 1],     # long and risky:          0.5 -> 1
                  [0, 0, 1]])    # risky only:              0.3 -> 0

decisions = {}
for backend in ("numpy", "fast"):
    model = fnn.Sequential([fnn.Dense(1, activation=fnn.Step(threshold=0.5), use_bias=False)],
                           input_dim=3, dtype="float64", backend=backend)
    model.set_weights([weights])
    decisions[backend] = model.predict(trips)[:, 0]

model.summary()
for trip, weighted_sum, buy in zip(trips, trips @ weights[:, 0], decisions["fast"]):
    print(f"inputs {trip}  weighted sum {weighted_sum:.1f}  ->  {'buy' if buy else 'skip'}")
assert decisions["fast"].tolist() == decisions["numpy"].tolist() == [0, 1, 1, 1, 0]
print("The compiled and the NumPy backend decide alike.")
