"""The one PyTorch module fastnn adds: ``RecurrentOutput``, which makes RNN/LSTM/GRU usable in an
``nn.Sequential`` (they return a tuple ``(output, h)`` that the next module cannot take).

Importing this module imports torch; ``fastnn.interop.RecurrentOutput`` does so on first use.
"""

from __future__ import annotations

from typing import Any

import torch


class RecurrentOutput(torch.nn.Module):
    """Pick what a preceding ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (``batch_first=True``) returns, as
    Keras' ``return_sequences`` says.

    ``return_sequences=True``: ``output``, (n, steps, directions * hidden).
    ``return_sequences=False``: the last layer's final hidden state, (n, directions * hidden),
    the forward direction's then the backward one's (``cat([h[-2], h[-1]])``); for one direction
    this is ``output[:, -1]``.
    """

    def __init__(self, return_sequences: bool = False) -> None:
        super().__init__()
        if not isinstance(return_sequences, bool):
            raise TypeError(f"return_sequences must be a bool. Received: "
                            f"return_sequences={return_sequences!r}")
        self.return_sequences = return_sequences

    def forward(self, result: Any) -> torch.Tensor:
        if not isinstance(result, tuple) or len(result) != 2:
            raise TypeError("RecurrentOutput follows an RNN, LSTM or GRU module and takes its "
                            "(output, state) tuple")
        output, state = result
        if self.return_sequences:
            return output
        h = state[0] if isinstance(state, tuple) else state       # LSTM: (h, c)
        if output.shape[-1] == 2 * h.shape[-1]:                  # bidirectional
            return torch.cat([h[-2], h[-1]], dim=-1)
        return h[-1]

    def extra_repr(self) -> str:
        return f"return_sequences={self.return_sequences}"

