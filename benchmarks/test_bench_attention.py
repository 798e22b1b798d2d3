"""Attention float32, forward + backward at sequence length 1024 (batch 1, 4 heads, width 64),
with and without causal, and with a random (L, L) mask: fastnn's tiled kernels against PyTorch's
F.scaled_dot_product_attention (see fastnn/_bench_attention.py). Target of issue #18: fastnn at
least as fast as PyTorch at 1 and 2 threads."""

import pytest

from fastnn import benchmarking as B

KINDS = ("attention",)


@pytest.mark.parametrize("workload, engine", B.cases_of(*KINDS), ids=str)
def test_attention(run_workload, workload, engine):
    run_workload(workload, engine)
