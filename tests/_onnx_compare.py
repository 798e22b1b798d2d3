"""The comparison tests/test_onnx_keras.py and tests/test_onnx_tf2onnx.py make: fastnn's
predictions of an imported file against the exporter's own outputs and onnxruntime's."""

import numpy as np
import pytest

import fastnn as fnn


def check(path, arrays, runs_in_ort=True):
    """fastnn's predictions of the imported file against the exporter's (``arrays``: x1, x7,
    y1, y7) and onnxruntime's (except where onnxruntime refuses the file: ``runs_in_ort``)."""
    model = fnn.onnx.load(path)
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    if not runs_in_ort:
        with pytest.raises(Exception, match="ReduceMax"):
            ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    else:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for rows in (1, 7):
        x, keras_y = arrays[f"x{rows}"], arrays[f"y{rows}"]
        got = model.predict(x)
        assert got.shape == keras_y.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, keras_y, rtol=1e-5, atol=1e-6)
        if runs_in_ort:
            want = session.run(None, {session.get_inputs()[0].name: x})[0]
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    return model
