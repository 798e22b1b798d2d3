"""Weights, summary and files: what a built model shows and stores."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike

from fastnn import _validation as V
from fastnn import activations as A
from fastnn.models import graph
from fastnn.models._exclusive import exclusive

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from fastnn.io import PathLike

    FloatArray = NDArray[np.floating[Any]]


class Weights:
    """Mixin of ``BaseModel``."""

    def _weight_layers(self: Any) -> list[Any]:
        """The layers holding weights, nested models' included, in get_weights() order."""
        out: list[Any] = []
        for layer in self._own_layers():
            if isinstance(layer, graph.ModelLayer):
                out += [inner for inner in layer.model._weight_layers() if inner not in out]
            elif layer._specs:
                out.append(layer)
        return out

    @property
    def dense_layers(self: Any) -> list[Any]:
        """The Dense layers, in order (built models only)."""
        from fastnn.layers import Dense
        return [layer for layer in self._weight_layers() if isinstance(layer, Dense)]

    @classmethod
    def from_config(cls, config: dict[str, Any], backend: Optional[str] = None) -> Any:
        """Keras' ``from_config``: a new, freshly initialised model with the architecture of
        ``config`` (what ``get_config()`` returns), on ``backend`` ("fast" by default).

        Raises
        ------
        TypeError
            If ``config`` is not a dict.
        ValueError
            If it does not describe a model of this class.

        Examples
        --------
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(2)], input_dim=3, seed=0)
        >>> fnn.Sequential.from_config(model.get_config())
        Sequential([Dense(2, activation='linear')], input_dim=3, dtype='float32', backend='fast')
        """
        from fastnn.models.functional import model_from_config
        if not isinstance(config, dict):
            raise TypeError(f"config must be the dict get_config() returns. Received: "
                            f"{V._describe(config)}")
        kind = "Sequential" if cls.__name__ == "Sequential" else "Model"
        try:
            return model_from_config({**config, "class": kind}, backend)
        except KeyError as exc:
            raise ValueError(f"config has no {exc} entry: pass what {kind}.get_config() "
                             f"returns") from None
        except (AttributeError, IndexError, TypeError) as exc:
            raise ValueError(f"config does not describe a {kind} ({type(exc).__name__}: "
                             f"{exc}): pass what {kind}.get_config() returns") from None

    def _model_config(self: Any) -> dict[str, Any]:
        return {"class": "Sequential" if type(self).__name__ == "Sequential" else "Model",
                **self.get_config()}

    def get_layer(self: Any, name: str) -> Any:
        """The layer called ``name`` (ValueError naming the layers if there is none)."""
        if not isinstance(name, str):
            raise TypeError(f"name must be a string. Received: {name!r}")
        for layer in self.layers:
            if getattr(layer, "name", None) == name:
                return layer
        raise ValueError(f"no layer named {name!r}; the layers are "
                         f"{[getattr(layer, 'name', '?') for layer in self.layers]}")

    @property
    def weights(self: Any) -> list[FloatArray]:
        """Every weight, in ``get_weights()`` order, as read-only views of the model's buffers
        (Keras' ``model.weights``): they follow training. Change them with ``set_weights``."""
        self._check_built("weights")
        return [layer.weights[k] for _, layer, k in self._entries()]

    @property
    def trainable_weights(self: Any) -> list[FloatArray]:
        """The ``weights`` an optimizer updates (the trainable weights of unfrozen layers)."""
        self._check_built("trainable_weights")
        return [layer.weights[k] for _, layer, k in self._entries()
                if layer._specs[k].trainable and layer.trainable]

    @property
    def non_trainable_weights(self: Any) -> list[FloatArray]:
        """The other ``weights``: moving statistics, and every weight of a frozen layer."""
        self._check_built("non_trainable_weights")
        return [layer.weights[k] for _, layer, k in self._entries()
                if not (layer._specs[k].trainable and layer.trainable)]

    def get_weights(self: Any) -> list[FloatArray]:
        """The weights of every layer, in order, as copies (Keras' order and layouts).

        Returns
        -------
        list of ndarray
            ``[W1, b1, W2, b2, ...]``: ``W_k`` of shape (inputs, units) and ``b_k`` of shape
            (units,), in the model's dtype.

        Raises
        ------
        ValueError
            If the model is not built.

        Examples
        --------
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(4, activation="relu"), fnn.Dense(2)],
        ...                        input_dim=3, seed=0, backend="numpy")
        >>> [w.shape for w in model.get_weights()]
        [(3, 4), (4,), (4, 2), (2,)]
        """
        self._check_built("get_weights")
        return [layer._weights[k].copy() for _, layer, k in self._entries()]

    @exclusive
    def set_weights(self: Any, weights: Sequence[ArrayLike]) -> None:
        """Set all weights, in place, from a list shaped like ``get_weights()``.

        Parameters
        ----------
        weights : list or tuple of array_like
            ``[W1, b1, W2, b2, ...]``, real and finite; converted to the model's dtype.

        Raises
        ------
        ValueError
            If the model is not built, ``weights`` is not a list or tuple of two arrays per
            Dense layer, a shape differs, or a value is NaN or inf.
        TypeError
            If an array does not hold real numbers.

        Examples
        --------
        >>> import numpy as np
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(2)], input_dim=2, backend="numpy")
        >>> model.set_weights([np.eye(2), np.ones(2)])
        >>> model.predict([[1.0, 2.0]])                  # x @ I + 1
        array([[2., 3.]], dtype=float32)
        """
        self._check_built("set_weights")
        entries = self._entries()
        if not isinstance(weights, (list, tuple)) or len(weights) != len(entries):
            count = len(weights) if isinstance(weights, (list, tuple)) else type(weights).__name__
            raise ValueError(f"weights must be a list of {len(entries)} arrays shaped like "
                             f"get_weights(). Received: {count}")
        checked, i = [], 0
        for layer in self._weight_layers():
            n = len(layer._specs)
            checked.append((layer, layer.checked_weights(list(weights[i:i + n]))))
            i += n
        for layer, values in checked:     # all checked first: a refusal changes nothing
            for dst, src in zip(layer._weights, values):
                dst[...] = src
        for owner in self._owners():
            if owner.optimizer is not None:
                owner.optimizer.verify_next_step()   # the screen assumes weights training made

    def count_params(self: Any) -> int:
        """The number of parameters: ``inputs * units + units`` summed over the layers.

        Raises
        ------
        ValueError
            If the model is not built.

        Examples
        --------
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(4), fnn.Dense(2)], input_dim=3, backend="numpy")
        >>> model.count_params()                         # (3 * 4 + 4) + (4 * 2 + 2)
        26
        """
        self._check_built("count_params")
        return sum(layer._weights[k].size for _, layer, k in self._entries())

    def summary(self: Any, print_fn: Callable[[str], Any] = print) -> None:
        """Print a table of the layers with their output shapes and parameter counts.

        ``path`` says how the model runs: "fast" (a chain of Dense and activation layers on
        2-D inputs, the compiled MLP plan; an activation layer fused into the Dense layer
        before it shows as that layer's activation) or "general" (per-layer kernels).

        The Activation column is each layer's ``activation``, the argument of that name: a
        recurrent layer's cell activation, a ``Bidirectional`` layer's wrapped layer's, a
        ``TransformerBlock``'s feed-forward activation; "linear" for layers without one.

        Parameters
        ----------
        print_fn : callable, default print
            Called once with the whole table as a string.

        Raises
        ------
        ValueError
            If the model is not built.

        Examples
        --------
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(4, activation="relu"), fnn.Dense(2),
        ...                         fnn.Softmax()], input_dim=3, backend="numpy")
        >>> model.summary()                              # doctest: +NORMALIZE_WHITESPACE
        Sequential 'sequential'  input shape=(3,)  dtype=float32  backend=numpy  path=fast
        ---------------  ----------  ------------  ------
        Layer (type)     Activation  Output shape  Params
        ---------------  ----------  ------------  ------
        dense (Dense)    relu        (None, 4)     16
        dense_1 (Dense)  softmax     (None, 2)     10
        ---------------  ----------  ------------  ------
        Total params: 26 (trainable: 26)
        """
        self._check_built("summary")
        rows = [("Layer (type)", "Activation", "Output shape", "Params")]
        if self._fast:
            width: int = self.input_dim      # type: ignore[assignment]  # built by now
            for step in self._plan:
                layer = step.dense
                params = layer.count_params() if layer is not None else 0
                label = f"{layer.name} (Dense)" if layer is not None else "(Activation)"
                for act, param in step.chain or [(step.act, step.param)]:
                    rows.append((label, _activation_label(A.NAMES[act], param),
                                 f"(None, {step.width})", f"{params:,}"))
                width = step.width
        else:
            listed: set[int] = set()
            for node in self._nodes[self._n_inputs:]:
                layer = node.layer
                key = id(getattr(layer, "model", layer))
                if key in listed and graph.shares_weights(layer):
                    continue          # a shared layer shows once, as in Keras
                listed.add(key)
                kind = type(layer).__name__
                if isinstance(layer, graph.ModelLayer):
                    kind, params = type(layer.model).__name__, layer.model.count_params()
                else:
                    params = layer.count_params()
                shapes = node.shape if isinstance(node.shape, list) else [node.shape]
                shape = ", ".join(f"(None, {', '.join(map(str, one))})" for one in shapes)
                if isinstance(node.shape, list):     # several outputs, as Keras lists them
                    shape = f"[{shape}]"
                name = layer.activation
                param = getattr(layer, "param", None) if A.CODES.get(name) == layer.act else None
                rows.append((f"{layer.name} ({kind})", _activation_label(name, param), shape,
                             f"{params:,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        line = "  ".join("-" * w for w in widths)
        shown = self.input_shape if self._n_inputs > 1 else tuple(self.input_shape)
        text = [f"{type(self).__name__} {self.name!r}  input shape={shown}  "
                f"dtype={self.dtype.name}  backend={self.backend}  path={self.path}", line]
        for r in rows:
            text.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
            if r is rows[0]:
                text.append(line)
        trainable = sum(size for _, _, size in self._make_runs())
        text += [line, f"Total params: {self.count_params():,} (trainable: {trainable:,})"]
        print_fn("\n".join(text))

    def save(self: Any, path: PathLike) -> None:
        """Write the model to ``path`` in the fastnn file format (``fastnn.io``; never pickle).

        The file holds the architecture, the weights, and the compile settings with the
        optimizer state, so ``fastnn.load(path)`` can resume training. The write is atomic (a
        new temporary file in the same directory, fsynced, then renamed over ``path``); an
        existing file keeps its permission bits, and a ``path`` that is a symlink stays one
        (its target is replaced).

        Parameters
        ----------
        path : str or os.PathLike
            The file to write.

        Raises
        ------
        ValueError
            If the model is not built.
        TypeError
            If ``path`` is not a str or os.PathLike.
        IsADirectoryError
            If ``path`` is a directory (also a ValueError).
        ValueError
            If ``path`` names something other than a regular file (a FIFO, a device), or the
            model exceeds the format's limits (10,000 layers, a step count of 2**53).
        OSError
            If the file cannot be written; ``path`` is then untouched.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(2, activation="relu")], input_dim=3, seed=0,
        ...                        backend="numpy")
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     model.save(os.path.join(tmp, "model.fnn"))
        ...     same = fnn.load(os.path.join(tmp, "model.fnn"), backend="numpy")
        >>> x = np.ones((1, 3))
        >>> bool(np.array_equal(same.predict(x), model.predict(x)))
        True
        """
        self._check_built("save")
        from fastnn import io as fnn_io
        fnn_io.save_model(self, path)

    def save_weights(self: Any, path: PathLike) -> None:
        """Write the architecture and weights to ``path`` without the compile settings and
        optimizer state (``ModelCheckpoint(save_weights_only=True)`` calls this); read them
        back with ``load_weights`` (or the whole model with ``fastnn.load``). Written as
        ``save`` writes (atomically) and raising as it does.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(2)], input_dim=3, seed=0, backend="numpy")
        >>> other = fnn.Sequential([fnn.Dense(2)], input_dim=3, seed=1, backend="numpy")
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     model.save_weights(os.path.join(tmp, "w.fnn"))
        ...     other.load_weights(os.path.join(tmp, "w.fnn"))
        >>> all(np.array_equal(a, b) for a, b in zip(model.get_weights(), other.get_weights()))
        True
        """
        self._check_built("save_weights")
        from fastnn import io as fnn_io
        fnn_io.save_model(self, path, include_optimizer=False)

    def load_weights(self: Any, path: PathLike) -> None:
        """Set the weights from a file ``save_weights`` (or ``save``) wrote for a model with
        weights of the same shapes, in ``get_weights()`` order, or from a Keras 3
        ``.weights.h5`` file (``keras_model.save_weights``; needs h5py); the compile settings
        and the optimizer state stay as they are. A fastnn file is read as one whatever its
        name, so ``save_weights("w.weights.h5")`` then ``load_weights("w.weights.h5")`` works
        as in Keras (the file is fastnn's, not HDF5).

        A ``.weights.h5`` file is matched as Keras matches it: each layer with weights by its
        kind and its place among the layers of that kind (Keras' group names ``dense``,
        ``dense_1``, ...), so the model must have Keras' layers in Keras' order (any names).
        Every shape is checked before any weight changes.

        Raises
        ------
        ValueError
            If the file is not a valid fastnn model file, or its weights do not fit this
            model (their number or shapes differ; nothing is changed then); for a
            ``.weights.h5`` file, if a layer has no counterpart in it (or no Keras form), it
            holds weights of layers the model lacks, or a shape differs.
        TypeError
            If ``path`` is not a path.
        ImportError
            For a ``.weights.h5`` file without h5py (``pip install "fastnn[h5]"``).
        OSError
            If the file cannot be read.
        """
        self._check_built("load_weights")
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike. Received: "
                            f"{type(path).__name__}")
        if os.fspath(path).endswith(".weights.h5") and not _is_fastnn_file(path):
            from fastnn.interop.keras_h5 import load_keras_weights
            load_keras_weights(self, path)
            return
        from fastnn import io as fnn_io
        saved = fnn_io.load_model(path, backend=self.backend).get_weights()
        mine = [w.shape for w in self.get_weights()]
        if [w.shape for w in saved] != mine:
            raise ValueError(f"the weights in {path!r} do not fit this model: the file holds "
                             f"{len(saved)} arrays of shapes {[w.shape for w in saved]}, the "
                             f"model needs {len(mine)} of shapes {mine}")
        self.set_weights(saved)

    def __reduce__(self: Any):
        # Pickle through the model file format: no module or thread-local state is pickled,
        # and unpickling runs the same checks as fastnn.load.
        from fastnn import io as fnn_io
        if not self.built:
            return self._unbuilt_reduce()
        return (fnn_io.model_from_bytes, (fnn_io.model_to_bytes(self),))


# the activations with a parameter, and the keyword it goes by (Step(threshold), LeakyReLU(alpha))
_PARAM_NAMES = {"step": "threshold", "leaky_relu": "alpha", "elu": "alpha"}


def _activation_label(name: str, param: Any) -> str:
    """The Activation column of ``summary``: the name, with its parameter when it has one
    (``step(threshold=0.5)``, ``leaky_relu(alpha=0.3)``)."""
    if name in _PARAM_NAMES and param is not None:
        return f"{name}({_PARAM_NAMES[name]}={float(param):g})"
    return name


def _is_fastnn_file(path: Any) -> bool:
    """Whether ``path`` is a regular file that begins as fastnn's model files do (read
    without blocking: a FIFO is left to the reader that refuses it)."""
    from fastnn._safe_files import open_without_blocking, read_up_to
    from fastnn.io import MAGIC
    try:
        f, _ = open_without_blocking(os.fspath(path))
    except OSError:
        return False
    if f is None:
        return False
    with f:
        return bytes(read_up_to(f, len(MAGIC))) == MAGIC
