"""ONNX for fastnn (the optional extra ``pip install "fastnn[onnx]"``).

    import fastnn as fnn
    fnn.onnx.export(model, "model.onnx")          # any built model, dynamic batch dimension
    same = fnn.onnx.load("model.onnx")            # fastnn's own exports, and torch/Keras MLPs,
                                                  # CNNs and recurrent nets of supported ops

The ``onnx`` package is imported on first use, so ``import fastnn`` never needs it.
"""

from __future__ import annotations

from typing import Any, Optional


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        raise ImportError('fastnn.onnx needs the onnx package: pip install "fastnn[onnx]"'
                          ) from exc


def export(model: Any, path: Any, opset: Optional[int] = None) -> str:
    """Write the built fastnn ``model`` to the ONNX file ``path`` (returns the path).

    Parameters
    ----------
    model : Sequential or Model
        A built model of any layer kind fastnn has.
    path : str or os.PathLike
        Where to write.
    opset : int, optional
        The ONNX opset (17 to the installed onnx's newest; default 18). From 20 on, gelu is
        ONNX's Gelu op; before, its erf (or tanh) formula.

    Raises
    ------
    ImportError
        If the onnx package is absent.
    ValueError
        If the model is not built, ``opset`` is out of range, or a layer has no ONNX form.
    """
    _require_onnx()
    from fastnn.onnx._exporter import export as _export
    return _export(model, path, opset)


def load(path: Any, **kwargs: Any) -> Any:
    """Read the ONNX file ``path`` as a fastnn model (see ``fastnn.onnx._importer.load``)."""
    _require_onnx()
    from fastnn.onnx._importer import load as _load
    return _load(path, **kwargs)


__all__ = ["export", "load"]
