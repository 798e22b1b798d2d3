"""Pictures of a model's graph: Keras' ``plot_model`` and ``model_to_dot``, with no dependency.

A model is a graph of layers (input, hidden, output). ``model_to_dot`` writes it in Graphviz's
DOT language; ``plot_model`` draws it: an ``.svg`` file by fastnn itself (boxes placed by depth,
edges as arrows), ``.dot``/``.gv`` as text, and ``.png``/``.pdf``/``.jpg`` through Graphviz's
``dot`` program when it is on the PATH, else through matplotlib (the ``plot`` extra) on the
same layout as the SVG. Keras needs pydot and Graphviz for all of them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any, Optional
from xml.sax.saxutils import escape

from fastnn import _validation as V
from fastnn.models import graph

_OPTIONS = ("show_shapes", "show_dtype", "show_layer_names", "expand_nested",
            "show_layer_activations", "show_trainable")
_RASTER = (".png", ".pdf", ".jpg", ".jpeg")
# the SVG's geometry, in pixels: a character of the 13 px monospace font, a line, the gaps
_CHAR, _LINE, _PAD, _GAP_X, _GAP_Y = 7.8, 17.0, 8.0, 28.0, 44.0


class _Box:
    """One drawn node: its label lines, the boxes it gets its inputs from, its place."""

    __slots__ = ("key", "lines", "parents", "rank", "x", "y", "w", "h")

    def __init__(self, key: str, lines: list[str], parents: list[str]) -> None:
        self.key, self.lines, self.parents = key, lines, parents
        self.rank, self.x, self.y = 0, 0.0, 0.0
        self.w = max(len(line) for line in lines) * _CHAR + 2 * _PAD
        self.h = len(lines) * _LINE + 2 * _PAD


def _shape_text(shape: Any) -> str:
    if isinstance(shape, list):
        return "[" + ", ".join(_shape_text(s) for s in shape) + "]"
    return "(" + ", ".join(["None", *map(str, shape)]) + ")"


def _label(name: str, kind: str, layer: Any, in_shape: Any, out_shape: Any, dtype: str,
           opts: dict[str, bool]) -> list[str]:
    """Keras' label rows: the title, the activation, the shapes, the dtype, trainable."""
    lines = [f"{name} ({kind})" if opts["show_layer_names"] else kind]
    # as Keras: only for the layers that take an activation argument
    if (opts["show_layer_activations"] and layer is not None and not
            isinstance(layer, graph.ModelLayer) and "activation" in layer.get_config()):
        lines.append(f"Activation: {layer.activation}")
    if opts["show_shapes"]:
        if in_shape is not None:
            lines.append(f"Input shape: {_shape_text(in_shape)}")
        lines.append(f"Output shape: {_shape_text(out_shape)}")
    if opts["show_dtype"]:
        lines.append(f"Output dtype: {dtype}")
    if opts["show_trainable"] and layer is not None:
        lines.append(f"Trainable: {'yes' if layer.trainable else 'no'}")
    return lines


def _input_names(model: Any) -> list[str]:
    """The functional inputs' names, else Keras' input_layer, input_layer_1, ..."""
    tensors = getattr(model, "_input_tensors", None) or [None] * model._n_inputs
    names = []
    for k, tensor in enumerate(tensors):
        given = getattr(tensor, "name", None)
        names.append(given if given else ("input_layer" if k == 0 else f"input_layer_{k}"))
    return names


def _boxes(model: Any, opts: dict[str, bool], prefix: str = "",
           feeds: Optional[list[list[str]]] = None) -> tuple[list[_Box], list[list[str]]]:
    """The boxes of ``model``'s graph (a nested model's own boxes with ``expand_nested``, its
    inputs fed by ``feeds``); returns them and, per output, the keys that produce it."""
    boxes: list[_Box] = []
    made: list[list[str]] = []       # per node: the box keys its value comes out of
    # Keras draws a layer once however often it is called (a shared layer: one box, with the
    # edges of every call; its shapes are its first call's, as Keras' layer.input/output)
    drawn: dict[int, _Box] = {}
    dtype = model.dtype.name
    names = _input_names(model)
    for node in model._nodes:
        key = f"{prefix}n{node.index}"
        if node.layer is None:
            if feeds is not None:    # a nested model's input: the outer tensor itself
                made.append(feeds[node.index])
                continue
            boxes.append(_Box(key, _label(names[node.index], "InputLayer", None, None,
                                          node.shape, dtype, opts), []))
            made.append([key])
            continue
        # one edge per pair of boxes, as Keras' add_edge (Add()([x, x]): one arrow)
        parents = list(dict.fromkeys(k for i in node.inputs for k in made[i]))
        layer = node.layer
        first = drawn.get(id(layer))
        if first is not None and not (isinstance(layer, graph.ModelLayer)
                                      and opts["expand_nested"]):
            first.parents += [k for k in parents if k not in first.parents]
            made.append([first.key])
            continue
        if isinstance(layer, graph.ModelLayer) and opts["expand_nested"]:
            inner = layer.model
            inner_feeds = [made[i] for i in node.inputs] if node.multi else [made[node.inputs[0]]]
            inner_boxes, outs = _boxes(inner, opts, f"{key}/", inner_feeds)
            for box in inner_boxes:
                box.lines[0] = f"{inner.name}/{box.lines[0]}"
            boxes += inner_boxes
            made.append([k for out in outs for k in out])
            continue
        kind = type(layer.model).__name__ if isinstance(layer, graph.ModelLayer) else \
            type(layer).__name__
        in_shapes = [model._nodes[i].shape for i in node.inputs]
        boxes.append(_Box(key, _label(layer.name, kind, layer,
                                      in_shapes if node.multi else in_shapes[0], node.shape,
                                      dtype, opts), parents))
        drawn[id(layer)] = boxes[-1]
        made.append([key])
    return boxes, [made[i] for i in model._outputs]


def _graph(model: Any, opts: dict[str, bool]) -> list[_Box]:
    if not hasattr(model, "_nodes") or not hasattr(model, "_check_built"):
        raise TypeError(f"model must be a fastnn Sequential or Model. Received: "
                        f"{type(model).__name__}")
    model._check_built("plot_model")
    return _boxes(model, opts)[0]


def _options(kwargs: dict[str, Any], rankdir: Any, dpi: Any) -> tuple[dict[str, bool], str, int]:
    opts = {k: V.check_bool(k, kwargs[k]) for k in _OPTIONS}
    if rankdir not in ("TB", "LR"):
        raise ValueError(f"rankdir must be 'TB' (top to bottom) or 'LR' (left to right). "
                         f"Received: rankdir={V._describe(rankdir)}")
    dpi = V.check_int("dpi", dpi, low=1)
    if dpi > 2400:
        raise ValueError(f"dpi must be at most 2400. Received: dpi={dpi}")
    return opts, rankdir, dpi


def _dot_text(boxes: list[_Box], name: str, rankdir: str, dpi: int) -> str:
    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    lines = [f"digraph {quoted(name)} {{",
             f"  graph [rankdir={quoted(rankdir)}, dpi={dpi}, splines=\"ortho\"];",
             "  node [shape=\"box\", fontname=\"Helvetica\"];"]
    for box in boxes:
        label = "\\n".join(part.replace("\\", "\\\\").replace('"', '\\"') for part in box.lines)
        lines.append(f"  {quoted(box.key)} [label=\"{label}\"];")
    for box in boxes:
        lines += [f"  {quoted(p)} -> {quoted(box.key)};" for p in box.parents]
    return "\n".join(lines + ["}", ""])


def model_to_dot(model: Any, show_shapes: bool = False, show_dtype: bool = False,
                 show_layer_names: bool = True, rankdir: str = "TB",
                 expand_nested: bool = False, dpi: int = 200,
                 show_layer_activations: bool = False, show_trainable: bool = False) -> str:
    r"""The model's graph in Graphviz's DOT language, as Keras' ``model_to_dot`` (which returns
    a pydot object; this returns the text, which ``pydot.graph_from_dot_data`` reads).

    A box per layer call (an input, a layer, or with ``expand_nested`` each layer of a model
    used as a layer), an edge per tensor passed. The options add label rows as Keras' do.

    Raises
    ------
    TypeError
        If ``model`` is not a fastnn model, or an option is not a bool.
    ValueError
        If the model is not built, ``rankdir`` is not "TB" or "LR", or ``dpi`` is not 1..2400.

    Examples
    --------
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Dense(4, activation="relu"), fnn.Dense(1)], input_dim=3,
    ...                        backend="numpy")
    >>> print(fnn.utils.model_to_dot(model, show_shapes=True))
    digraph "sequential" {
      graph [rankdir="TB", dpi=200, splines="ortho"];
      node [shape="box", fontname="Helvetica"];
      "n0" [label="input_layer (InputLayer)\nOutput shape: (None, 3)"];
      "n1" [label="dense (Dense)\nInput shape: (None, 3)\nOutput shape: (None, 4)"];
      "n2" [label="dense_1 (Dense)\nInput shape: (None, 4)\nOutput shape: (None, 1)"];
      "n0" -> "n1";
      "n1" -> "n2";
    }
    <BLANKLINE>
    """
    opts, rankdir, dpi = _options(locals(), rankdir, dpi)
    return _dot_text(_graph(model, opts), model.name, rankdir, dpi)


def _layout(boxes: list[_Box], rankdir: str) -> tuple[float, float]:
    """Places the boxes: rank = the longest path from an input; each rank a row (TB) or a
    column (LR), ordered by the mean place of each box's parents (fewer crossings), centred.
    Returns the picture's width and height."""
    by_key = {b.key: b for b in boxes}
    ranked: set[str] = set()
    for box in boxes:                         # topological: parents come first (a shared
        # layer's later calls may read boxes drawn after its box: those edges go back)
        box.rank = 1 + max((by_key[p].rank for p in box.parents if p in ranked), default=-1)
        ranked.add(box.key)
    ranks: list[list[_Box]] = [[] for _ in range(1 + max(b.rank for b in boxes))]
    order: dict[str, float] = {}
    for box in boxes:
        ranks[box.rank].append(box)
    across = "x" if rankdir == "TB" else "y"
    along = "y" if rankdir == "TB" else "x"
    spans = []
    for row in ranks:
        row.sort(key=lambda b: (sum(order.get(p, 0.0) for p in b.parents) / len(b.parents)
                                if b.parents else 0.0))
        for k, box in enumerate(row):
            order[box.key] = k - (len(row) - 1) / 2
        spans.append(sum(b.w if across == "x" else b.h for b in row)
                     + _GAP_X * (len(row) - 1))
    width_across = max(spans)
    offset = _PAD
    for row, span in zip(ranks, spans):
        pos = _PAD + (width_across - span) / 2
        depth = max(b.h if along == "y" else b.w for b in row)
        for box in row:
            size = box.w if across == "x" else box.h
            setattr(box, across, pos)
            setattr(box, along, offset + (depth - (box.h if along == "y" else box.w)) / 2)
            pos += size + _GAP_X
        offset += depth + _GAP_Y
    total_along = offset - _GAP_Y + _PAD
    total_across = width_across + 2 * _PAD
    return (total_across, total_along) if rankdir == "TB" else (total_along, total_across)


def _ends(src: _Box, dst: _Box, rankdir: str) -> tuple[float, float, float, float]:
    if rankdir == "TB":
        return (src.x + src.w / 2, src.y + src.h, dst.x + dst.w / 2, dst.y)
    return (src.x + src.w, src.y + src.h / 2, dst.x, dst.y + dst.h / 2)


def _svg_text(boxes: list[_Box], rankdir: str) -> str:
    width, height = _layout(boxes, rankdir)
    by_key = {b.key: b for b in boxes}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
           f'height="{height:.0f}" viewBox="0 0 {width:.1f} {height:.1f}" '
           'font-family="monospace" font-size="13">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>']
    for box in boxes:
        for p in box.parents:
            x1, y1, x2, y2 = _ends(by_key[p], box, rankdir)
            out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                       'stroke="black" marker-end="url(#arrow)"/>')
    for box in boxes:
        out.append(f'<g id="{escape(box.key)}"><rect x="{box.x:.1f}" y="{box.y:.1f}" '
                   f'width="{box.w:.1f}" height="{box.h:.1f}" fill="white" stroke="black"/>')
        for k, line in enumerate(box.lines):
            weight = ' font-weight="bold"' if k == 0 else ""
            out.append(f'<text x="{box.x + _PAD:.1f}" y="{box.y + _PAD + (k + 0.8) * _LINE:.1f}"'
                       f'{weight}>{escape(line)}</text>')
        out.append("</g>")
    return "\n".join(out + ["</svg>", ""])


def _matplotlib_file(boxes: list[_Box], rankdir: str, path: str, dpi: int) -> None:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(f"plot_model writes {os.path.splitext(path)[1]} files with Graphviz's "
                          "'dot' program (not on the PATH) or matplotlib (not installed: pip "
                          "install fastnn[plot]); .svg and .dot files need neither") from None
    del matplotlib
    width, height = _layout(boxes, rankdir)
    by_key = {b.key: b for b in boxes}
    fig = Figure(figsize=(width / 100, height / 100))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    for box in boxes:
        for p in box.parents:
            x1, y1, x2, y2 = _ends(by_key[p], box, rankdir)
            ax.annotate("", (x2, y2), (x1, y1), arrowprops={"arrowstyle": "-|>", "lw": 1})
        ax.add_patch(_rectangle(box))
        for k, line in enumerate(box.lines):
            ax.text(box.x + _PAD, box.y + _PAD + (k + 0.8) * _LINE, line, family="monospace",
                    size=9.5, weight="bold" if k == 0 else "normal")
    fig.savefig(path, dpi=dpi)


def _rectangle(box: _Box) -> Any:
    from matplotlib.patches import Rectangle
    return Rectangle((box.x, box.y), box.w, box.h, facecolor="white", edgecolor="black")


def plot_model(model: Any, to_file: Any = "model.png", show_shapes: bool = False,
               show_dtype: bool = False, show_layer_names: bool = False, rankdir: str = "TB",
               expand_nested: bool = False, dpi: int = 200,
               show_layer_activations: bool = False, show_trainable: bool = False) -> Any:
    """Draw the model's graph into ``to_file``, as Keras' ``plot_model`` (same arguments and
    defaults). The file's extension picks the form: ``.svg`` (drawn by fastnn), ``.dot`` or
    ``.gv`` (``model_to_dot``'s text), ``.png``/``.pdf``/``.jpg`` (Graphviz's ``dot`` when on
    the PATH, else matplotlib on fastnn's layout).

    Returns IPython's ``Image`` (``SVG`` for an .svg file) inside IPython or a notebook, so the
    picture shows where it is called, else None.

    Raises
    ------
    TypeError, ValueError
        As ``model_to_dot``; ValueError for another extension.
    ImportError
        For a raster file with neither Graphviz nor matplotlib.
    """
    opts, rankdir, dpi = _options(locals(), rankdir, dpi)
    path = os.fspath(to_file)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".svg", ".dot", ".gv", *_RASTER):
        raise ValueError(f"to_file must end in .svg, .dot, .gv, .png, .pdf or .jpg. Received: "
                         f"to_file={path!r}")
    boxes = _graph(model, opts)
    if ext == ".svg":
        with open(path, "w", encoding="utf-8") as f:
            f.write(_svg_text(boxes, rankdir))
    elif ext in (".dot", ".gv"):
        with open(path, "w", encoding="utf-8") as f:
            f.write(_dot_text(boxes, model.name, rankdir, dpi))
    else:
        program = shutil.which("dot")
        if program is not None:
            subprocess.run([program, f"-T{ext[1:].replace('jpeg', 'jpg')}", "-o", path],
                           input=_dot_text(boxes, model.name, rankdir, dpi).encode(),
                           check=True, timeout=120, capture_output=True)
        else:
            _matplotlib_file(boxes, rankdir, path, dpi)
    return _notebook_picture(path, ext)


def _notebook_picture(path: str, ext: str) -> Any:
    try:
        from IPython import get_ipython
        from IPython.display import SVG, Image
    except ImportError:
        return None
    if get_ipython() is None or ext in (".dot", ".gv", ".pdf"):
        return None
    return SVG(filename=path) if ext == ".svg" else Image(filename=path)
