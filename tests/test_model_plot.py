"""Keras' ``plot_model`` and ``model_to_dot`` (fastnn/model_plot.py): the graph drawn is the
model's (boxes and edges written out by hand for each model here), the SVG is well-formed and
its arrows join the right boxes, the raster forms go through Graphviz's ``dot`` (a stand-in
program records what it is given) or matplotlib, the arguments are Keras' and bad ones are
refused."""

import inspect
import os
import re
import stat
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import fastnn as fnn
from fastnn import model_plot

SVG = "{http://www.w3.org/2000/svg}"


def _branchy():
    inp = fnn.Input((8,), name="pixels")
    a = fnn.Dense(4, activation="relu", name="left")(inp)
    b = fnn.Dense(4, name="right")(inp)
    c = fnn.Add(name="sum")([a, b])
    d = fnn.Dense(2, activation="softmax", name="probs")(c)
    return fnn.Model(inp, [d, a], name="branchy", backend="numpy")


BRANCHY_EDGES = {("pixels", "left"), ("pixels", "right"), ("left", "sum"), ("right", "sum"),
                 ("sum", "probs")}


def _dot_graph(text):
    """The DOT text's boxes {key: label lines} and edges {(from label, to label)}."""
    nodes = {k: label.split("\\n") for k, label in
             re.findall(r'^  "([^"]+)" \[label="(.*)"\];$', text, re.M)}
    edges = re.findall(r'^  "([^"]+)" -> "([^"]+)";$', text, re.M)
    return nodes, edges


def _title(lines):
    return lines[0].split(" (")[0]


def test_dot_has_a_box_per_layer_and_an_edge_per_tensor():
    text = fnn.utils.model_to_dot(_branchy())
    nodes, edges = _dot_graph(text)
    assert text.startswith('digraph "branchy" {') and text.rstrip().endswith("}")
    assert sorted(_title(v) for v in nodes.values()) == ["left", "pixels", "probs", "right",
                                                         "sum"]
    assert {(_title(nodes[a]), _title(nodes[b])) for a, b in edges} == BRANCHY_EDGES
    assert len(edges) == len(BRANCHY_EDGES)


def test_the_options_add_keras_label_rows():
    nodes, _ = _dot_graph(fnn.utils.model_to_dot(
        _branchy(), show_shapes=True, show_dtype=True, show_layer_activations=True,
        show_trainable=True))
    by_name = {_title(v): v for v in nodes.values()}
    assert by_name["left"] == ["left (Dense)", "Activation: relu", "Input shape: (None, 8)",
                               "Output shape: (None, 4)", "Output dtype: float32",
                               "Trainable: yes"]
    assert by_name["sum"] == ["sum (Add)", "Input shape: [(None, 4), (None, 4)]",
                              "Output shape: (None, 4)", "Output dtype: float32",
                              "Trainable: yes"]           # Add takes no activation argument
    assert by_name["pixels"] == ["pixels (InputLayer)", "Output shape: (None, 8)",
                                 "Output dtype: float32"]
    plain, _ = _dot_graph(fnn.utils.model_to_dot(_branchy(), show_layer_names=False))
    assert sorted(v[0] for v in plain.values()) == ["Add", "Dense", "Dense", "Dense",
                                                    "InputLayer"]


def _gan():
    generator = fnn.Sequential([fnn.Dense(4, name="g1"), fnn.Dense(3, name="g2")], input_dim=2,
                               name="generator", backend="numpy")
    z = fnn.Input((2,), name="noise")
    out = fnn.Dense(1, activation="sigmoid", name="judge")(generator(z))
    return fnn.Model(z, out, name="gan", backend="numpy")


def test_expand_nested_draws_the_inner_layers_in_place():
    nodes, edges = _dot_graph(fnn.utils.model_to_dot(_gan(), expand_nested=True))
    titles = {k: _title(v) for k, v in nodes.items()}
    assert sorted(titles.values()) == ["generator/g1", "generator/g2", "judge", "noise"]
    assert {(titles[a], titles[b]) for a, b in edges} == {
        ("noise", "generator/g1"), ("generator/g1", "generator/g2"), ("generator/g2", "judge")}
    nodes, edges = _dot_graph(fnn.utils.model_to_dot(_gan()))
    assert sorted(v[0] for v in nodes.values()) == ["generator (Sequential)", "judge (Dense)",
                                                    "noise (InputLayer)"]
    assert len(edges) == 2


def _svg(path):
    root = ET.parse(path).getroot()
    boxes = {}
    for group in root.iter(SVG + "g"):
        rect = group.find(SVG + "rect")
        lines = [t.text for t in group.findall(SVG + "text")]
        boxes[_title(lines)] = tuple(float(rect.get(k)) for k in ("x", "y", "width", "height"))
    arrows = [tuple(float(line.get(k)) for k in ("x1", "y1", "x2", "y2"))
              for line in root.iter(SVG + "line")]
    return root, boxes, arrows


@pytest.mark.parametrize("rankdir", ["TB", "LR"])
def test_svg_boxes_do_not_overlap_and_arrows_join_the_right_boxes(tmp_path, rankdir):
    path = tmp_path / "m.svg"
    assert fnn.utils.plot_model(_branchy(), path, show_shapes=True, show_layer_names=True,
                                rankdir=rankdir) is None
    root, boxes, arrows = _svg(path)
    width, height = float(root.get("width")), float(root.get("height"))
    assert sorted(boxes) == ["left", "pixels", "probs", "right", "sum"]
    for name, (x, y, w, h) in boxes.items():
        assert 0 <= x and x + w <= width and 0 <= y and y + h <= height, name
        for other, (x2, y2, w2, h2) in boxes.items():
            if other != name:
                assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y, (name, other)

    def anchor(name, end):
        x, y, w, h = boxes[name]
        if rankdir == "TB":
            return (x + w / 2, y + h) if end == "out" else (x + w / 2, y)
        return (x + w, y + h / 2) if end == "out" else (x, y + h / 2)

    joined = set()
    for x1, y1, x2, y2 in arrows:
        src = [n for n in boxes if np.allclose(anchor(n, "out"), (x1, y1), atol=0.06)]
        dst = [n for n in boxes if np.allclose(anchor(n, "in"), (x2, y2), atol=0.06)]
        assert len(src) == 1 and len(dst) == 1
        joined.add((src[0], dst[0]))
    assert joined == BRANCHY_EDGES and len(arrows) == len(BRANCHY_EDGES)
    # the flow goes one way: each layer after the ones it reads
    axis = 1 if rankdir == "TB" else 0
    for a, b in BRANCHY_EDGES:
        assert boxes[a][axis] + boxes[a][axis + 2] < boxes[b][axis]


def _no_dot(monkeypatch):
    monkeypatch.setattr(model_plot.shutil, "which", lambda name: None)


def test_png_through_matplotlib_without_graphviz(tmp_path, monkeypatch):
    image = pytest.importorskip("matplotlib.image")
    _no_dot(monkeypatch)
    sizes = []
    for dpi in (50, 100):
        path = tmp_path / f"m{dpi}.png"
        fnn.utils.plot_model(_branchy(), path, show_shapes=True, dpi=dpi)
        pixels = image.imread(path)
        assert pixels.ndim == 3 and pixels.std() > 0.05     # drawn, not blank
        sizes.append(pixels.shape[:2])
    assert sizes[1][0] == pytest.approx(2 * sizes[0][0], abs=2)
    assert sizes[1][1] == pytest.approx(2 * sizes[0][1], abs=2)


def test_raster_files_go_through_graphviz_when_it_is_there(tmp_path, monkeypatch):
    """A stand-in ``dot`` on the PATH: it gets -T<format> -o <file> and the DOT text."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"
    fake.write_text(f"#!{sys.executable}\n"
                    "import sys\n"
                    "args = sys.argv[1:]\n"
                    "text = sys.stdin.read()\n"
                    "open(args[args.index('-o') + 1], 'w').write(' '.join(args[:1]) + '\\n'"
                    " + text)\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for ext in ("png", "pdf", "jpg"):
        path = tmp_path / f"m.{ext}"
        fnn.utils.plot_model(_branchy(), path, rankdir="LR", dpi=72)
        first, rest = path.read_text().split("\n", 1)
        assert first == f"-T{ext}"
        assert rest == fnn.utils.model_to_dot(_branchy(), show_layer_names=False,
                                              rankdir="LR", dpi=72)


def test_dot_files_hold_model_to_dot(tmp_path):
    for ext in ("dot", "gv"):
        fnn.utils.plot_model(_branchy(), tmp_path / f"m.{ext}", show_shapes=True)
        assert (tmp_path / f"m.{ext}").read_text() == fnn.utils.model_to_dot(
            _branchy(), show_shapes=True, show_layer_names=False)


def test_notebooks_get_the_picture(tmp_path, monkeypatch):
    """Inside IPython, plot_model returns IPython's display object for the file (SVG or
    Image), so a notebook shows it; outside (or without IPython), None. IPython is not a test
    dependency: a stand-in module records what it is given."""
    import types

    class SVG:
        def __init__(self, filename):
            self.filename = filename

    class Image(SVG):
        pass

    ipython, display = types.ModuleType("IPython"), types.ModuleType("IPython.display")
    display.SVG, display.Image = SVG, Image
    ipython.display = display
    ipython.get_ipython = lambda: object()           # a running shell
    ipython.version_info = (9, 0, 0)                 # what matplotlib asks of an IPython
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    shown = fnn.utils.plot_model(_branchy(), tmp_path / "m.svg")
    assert type(shown) is SVG and shown.filename == str(tmp_path / "m.svg")
    _no_dot(monkeypatch)
    shown = fnn.utils.plot_model(_branchy(), tmp_path / "m.png")
    assert type(shown) is Image and shown.filename == str(tmp_path / "m.png")
    assert fnn.utils.plot_model(_branchy(), tmp_path / "m.dot") is None     # text: nothing
    ipython.get_ipython = lambda: None               # IPython installed, no shell
    assert fnn.utils.plot_model(_branchy(), tmp_path / "m.svg") is None
    monkeypatch.setitem(sys.modules, "IPython", None)    # not installed
    assert fnn.utils.plot_model(_branchy(), tmp_path / "m.svg") is None


def test_arguments_and_defaults_are_keras():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    keras = pytest.importorskip("keras")
    for ours, theirs in ((model_plot.plot_model, keras.utils.plot_model),
                         (model_plot.model_to_dot, keras.utils.model_to_dot)):
        mine = inspect.signature(ours).parameters
        keras_params = inspect.signature(theirs).parameters
        for name, p in mine.items():
            assert name in keras_params, name
            assert p.default == keras_params[name].default, name


BAD = [
    (lambda p: fnn.utils.plot_model("not a model", p / "m.svg"), TypeError, "fastnn Sequential"),
    (lambda p: fnn.utils.plot_model(fnn.Sequential([fnn.Dense(2)]), p / "m.svg"), ValueError,
     "built"),
    (lambda p: fnn.utils.plot_model(_branchy(), p / "m.svg", rankdir="BT"), ValueError,
     "rankdir"),
    (lambda p: fnn.utils.plot_model(_branchy(), p / "m.svg", dpi=0), ValueError, "dpi"),
    (lambda p: fnn.utils.plot_model(_branchy(), p / "m.svg", dpi=10**6), ValueError, "dpi"),
    (lambda p: fnn.utils.plot_model(_branchy(), p / "m.svg", show_shapes=1), TypeError,
     "show_shapes"),
    (lambda p: fnn.utils.plot_model(_branchy(), p / "m.bmp"), ValueError, "to_file"),
    (lambda p: fnn.utils.model_to_dot(_branchy(), expand_nested="yes"), TypeError,
     "expand_nested"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_arguments_are_refused(case, tmp_path):
    call, error, match = BAD[case]
    with pytest.raises(error, match=match):
        call(tmp_path)
    assert not list(tmp_path.iterdir())                 # nothing written


def test_raster_without_graphviz_or_matplotlib_says_what_to_do(tmp_path, monkeypatch):
    _no_dot(monkeypatch)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"\.svg and \.dot files need neither"):
        fnn.utils.plot_model(_branchy(), tmp_path / "m.png")
