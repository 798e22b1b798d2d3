"""Convolutional networks, fastnn against PyTorch CPU (see fastnn/_bench_cnn.py for the rows):
LeNet-5 and the digits CNN training steps, one-image LeNet-5 predict, a 64->64 3x3
convolution, a 64->64 SeparableConv2D forward and backward, the training step of a DCGAN
generator (Conv2DTranspose), Conv3D, and grouped Conv2D(64, 3, groups=4 and 32) forward and
step (fastnn/_bench_grouped_conv.py). Each workload and
thread count is one group, so the engines print side by side;
``python -m fastnn bench`` prints the same rows as one table with GFLOP/s and ratios."""

import pytest

pytest.importorskip("fastnn.backends.fast_backend")
from fastnn import _bench_cnn as BC  # noqa: E402


@pytest.mark.parametrize("engine", ["fastnn", "torch"])
@pytest.mark.parametrize("row", BC.rows(), ids=lambda row: row[0])
def test_cnn(run_torch_pair, row, engine):
    run_torch_pair("cnn", row, engine)
