"""One neuron, weights given by hand: should a traveller buy insurance?

Three yes/no inputs (a long trip, an expensive trip, a risky destination) with weights set by
hand, no bias, and a step activation at threshold 0.5: the neuron fires (1 = buy) when the
weighted sum reaches 0.5. A weighted sum of 0.7 gives 1.
"""

import numpy as np

import fastnn as fnn

model = fnn.Sequential([fnn.Dense(1, activation=fnn.Step(threshold=0.5))], input_dim=3,
                       backend="numpy")
weights = np.array([[0.2], [0.5], [0.3]])   # long trip, expensive trip, risky destination
model.set_weights([weights, np.zeros(1)])

trips = np.array([[1, 0, 0],     # long only:               0.2 -> 0
                  [0, 1, 0],     # expensive only:          0.5 -> 1
                  [1, 1, 0],     # long and expensive:      0.7 -> 1
                  [1, 0, 1],     # long and risky:          0.5 -> 1
                  [0, 0, 1]])    # risky only:              0.3 -> 0
decision = model.predict(trips)[:, 0]
for trip, weighted_sum, buy in zip(trips, trips @ weights[:, 0], decision):
    print(f"inputs {trip}  weighted sum {weighted_sum:.1f}  ->  {'buy' if buy else 'skip'}")
assert decision.tolist() == [0, 1, 1, 1, 0]
