"""A hypothesis state machine that uses one model the way a careless or hostile caller would.

It interleaves compile (with extreme hyper-parameters), fit, train_on_batch, predict, save and
load, set_weights with huge values, learning-rate assignments and thread settings. Any call may
be refused with ValueError, TypeError or FloatingPointError; what must never happen is a weight
or an optimizer state that is NaN or inf without an exception saying so.
"""

import os
import tempfile

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, rule,
                                 run_state_machine_as_test)

import fastnn as fnn

REFUSED = (ValueError, TypeError, FloatingPointError)
EXTREME = st.sampled_from([1e-320, 1e-50, 1e-40, 1e-8, 1e-3, 0.1, 1.0, 10.0, 1e6, 1e30, 1e39,
                           1e300, -1.0, 0.0, float("nan"), float("inf")])
THREADS = fnn.get_num_threads()
SCALES = st.sampled_from([1e-30, 1e-3, 1.0, 1e3, 1e15, 1e30, 1e37])


class HostileCaller(RuleBasedStateMachine):
    @initialize(backend=st.sampled_from(["numpy", "fast"]),
                dtype=st.sampled_from(["float32", "float64"]),
                hidden=st.sampled_from(["relu", "tanh", "sigmoid", "leaky_relu"]),
                seed=st.integers(0, 3))
    def build(self, backend, dtype, hidden, seed):
        self.dtype = np.dtype(dtype)
        self.model = fnn.Sequential(
            [fnn.Dense(6, activation=hidden), fnn.Dense(3, activation="softmax")],
            input_dim=4, seed=seed, dtype=dtype, backend=backend)
        self.model.compile(loss="cross_entropy", optimizer="sgd")
        self.rng = np.random.default_rng(seed)
        self.dir = tempfile.mkdtemp()

    def _batch(self, rows, scale):
        x = self.rng.standard_normal((rows, 4)) * scale
        return x, self.rng.integers(0, 3, rows)

    @rule(name=st.sampled_from(["sgd", "adam"]), lr=EXTREME, eps=EXTREME,
          momentum=st.sampled_from([0.0, 0.9, 0.99999999, 1.0]))
    def compile(self, name, lr, eps, momentum):
        try:
            opt = (fnn.SGD(lr=lr, momentum=momentum) if name == "sgd"
                   else fnn.Adam(lr=lr, eps=eps, beta2=max(momentum, 0.5)))
            self.model.compile(loss="cross_entropy", optimizer=opt)
        except REFUSED:
            pass

    @rule(lr=EXTREME)
    def assign_learning_rate(self, lr):
        try:
            self.model.optimizer.lr = lr
        except REFUSED:
            pass

    @rule(rows=st.integers(1, 40), scale=SCALES, epochs=st.integers(0, 2),
          batch=st.integers(1, 50), shuffle=st.booleans())
    def fit(self, rows, scale, epochs, batch, shuffle):
        try:
            self.model.fit(*self._batch(rows, scale), epochs=epochs, batch_size=batch,
                           shuffle=shuffle, verbose=0)
        except REFUSED:
            pass

    @rule(rows=st.integers(1, 70), scale=SCALES)
    def train_on_batch(self, rows, scale):
        x, y = self._batch(rows, scale)
        try:
            loss = self.model.train_on_batch(x.astype(self.dtype), y)
        except REFUSED:
            return
        assert np.isfinite(loss)

    @rule(rows=st.integers(1, 70), scale=SCALES)
    def predict(self, rows, scale):
        x, _ = self._batch(rows, scale)
        try:
            out = self.model.predict(x)
        except REFUSED:
            return
        assert out.shape == (rows, 3)

    @rule(scale=SCALES)
    def set_weights(self, scale):
        weights = [self.rng.standard_normal(w.shape) * scale for w in self.model.get_weights()]
        try:
            self.model.set_weights(weights)
        except REFUSED:
            pass

    @rule()
    def save_and_load(self):
        path = os.path.join(self.dir, "model.fnn")
        self.model.save(path)
        same = fnn.load(path, backend=self.model.backend)
        for a, b in zip(self.model.get_weights(), same.get_weights()):
            np.testing.assert_array_equal(a, b)
        self.model = same

    @rule(n=st.sampled_from([1, 2, 3, 0, -1, 10**9]))
    def threads(self, n):
        try:
            fnn.set_num_threads(n)
        except REFUSED:
            pass

    @invariant()
    def weights_and_state_are_finite(self):
        model = getattr(self, "model", None)
        if model is None:
            return
        for w in model.get_weights():
            assert np.isfinite(w).all()
        if model.optimizer is not None:
            for s in model.optimizer.state().values():
                assert s is None or np.isfinite(s).all()

    def teardown(self):
        fnn.set_num_threads(THREADS)


def test_no_sequence_of_calls_leaves_a_non_finite_weight_silently():
    run_state_machine_as_test(HostileCaller, settings=settings(
        max_examples=200, stateful_step_count=40, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow]))
