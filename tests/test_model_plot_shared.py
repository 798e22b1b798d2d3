"""``plot_model`` / ``model_to_dot`` of a model with a shared layer: as Keras 3's
(keras/src/utils/model_visualization.py: one node per layer, keyed by the layer, and one edge
per pair of nodes), a shared layer is one box with the edges of all its calls, its shapes
those of its first call; boxes and edges written out by hand here."""

import re
import xml.etree.ElementTree as ET

import pytest

import fastnn as fnn

SVG = "{http://www.w3.org/2000/svg}"


def _siamese():
    a, b = fnn.Input((6,), name="left"), fnn.Input((6,), name="right")
    tower = fnn.Dense(4, activation="tanh", name="tower")
    diff = fnn.Subtract(name="diff")([tower(a), tower(b)])
    out = fnn.Dense(1, activation="sigmoid", name="score")(diff)
    return fnn.Model([a, b], out, name="siamese", backend="numpy")


SIAMESE_EDGES = {("left", "tower"), ("right", "tower"), ("tower", "diff"), ("diff", "score")}


def _dot_graph(text):
    nodes = {k: label.split("\\n") for k, label in
             re.findall(r'^  "([^"]+)" \[label="(.*)"\];$', text, re.M)}
    edges = re.findall(r'^  "([^"]+)" -> "([^"]+)";$', text, re.M)
    return nodes, edges


def _title(lines):
    return lines[0].split(" (")[0]


def test_a_shared_layer_is_one_box_with_every_calls_edges():
    nodes, edges = _dot_graph(fnn.utils.model_to_dot(_siamese(), show_shapes=True))
    assert sorted(_title(v) for v in nodes.values()) == ["diff", "left", "right", "score",
                                                         "tower"]
    named = [(_title(nodes[a]), _title(nodes[b])) for a, b in edges]
    assert set(named) == SIAMESE_EDGES and len(named) == len(SIAMESE_EDGES)
    tower = next(v for v in nodes.values() if _title(v) == "tower")
    assert tower[1:] == ["Input shape: (None, 6)", "Output shape: (None, 4)"]


def test_a_layer_called_on_its_own_output_gets_a_loop():
    inp = fnn.Input((3,), name="x")
    again = fnn.Dense(3, name="again")
    out = fnn.Dense(1, name="out")(again(again(inp)))
    nodes, edges = _dot_graph(fnn.utils.model_to_dot(fnn.Model(inp, out, backend="numpy")))
    assert sorted(_title(v) for v in nodes.values()) == ["again", "out", "x"]
    assert {(_title(nodes[a]), _title(nodes[b])) for a, b in edges} == {
        ("x", "again"), ("again", "again"), ("again", "out")}


def test_a_later_call_reading_a_later_layer_draws(tmp_path):
    """shared(x) -> mid -> shared again: the second call's edge goes back up the picture."""
    inp = fnn.Input((3,), name="x")
    shared, mid = fnn.Dense(3, name="shared"), fnn.Dense(3, name="mid")
    out = shared(mid(shared(inp)))
    model = fnn.Model(inp, out, backend="numpy")
    nodes, edges = _dot_graph(fnn.utils.model_to_dot(model))
    assert {(_title(nodes[a]), _title(nodes[b])) for a, b in edges} == {
        ("x", "shared"), ("shared", "mid"), ("mid", "shared")}
    path = tmp_path / "loop.svg"
    fnn.utils.plot_model(model, path, show_layer_names=True)
    root = ET.parse(path).getroot()
    titles = [g.find(f"{SVG}text").text for g in root.iter(f"{SVG}g")]
    assert sorted(titles) == ["mid (Dense)", "shared (Dense)", "x (InputLayer)"]
    assert len(list(root.iter(f"{SVG}line"))) == 3


@pytest.mark.parametrize("rankdir", ["TB", "LR"])
def test_svg_of_a_siamese_model(tmp_path, rankdir):
    path = tmp_path / "s.svg"
    fnn.utils.plot_model(_siamese(), path, show_shapes=True, show_layer_names=True,
                         rankdir=rankdir)
    root = ET.parse(path).getroot()
    boxes = {}
    for g in root.iter(f"{SVG}g"):
        rect = g.find(f"{SVG}rect")
        boxes[g.find(f"{SVG}text").text.split(" (")[0]] = tuple(
            float(rect.get(k)) for k in ("x", "y", "width", "height"))
    assert sorted(boxes) == ["diff", "left", "right", "score", "tower"]
    for name, (x, y, w, h) in boxes.items():
        for other, (x2, y2, w2, h2) in boxes.items():
            if other != name:
                assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y
    axis = 1 if rankdir == "TB" else 0
    for a, b in SIAMESE_EDGES:                  # each box after the ones it reads
        assert boxes[a][axis] + boxes[a][axis + 2] < boxes[b][axis]
    assert len(list(root.iter(f"{SVG}line"))) == len(SIAMESE_EDGES)
