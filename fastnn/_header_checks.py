"""Checks of a model file's JSON header, independent of the format version (a v2 reader reuses
them). Each failure raises ``BadModelFile(why)``; ``fastnn.io`` turns it, in one place, into
the ValueError "'path' is not a valid fastnn model file: why".

The limits are far above what a real model needs and far below what could exhaust memory or
overflow a C integer, so a forged header is refused before anything is allocated for it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Optional, Union

import numpy as np

MAX_INT_DIGITS = 40          # a JSON integer literal: 2**128 has 39 digits; far below the 4300
#                              digits where int() raises (which json.loads would let escape)
MAX_FLOAT_CHARS = 100        # a JSON float literal (repr of any float is at most 24 characters)
MAX_JSON_DEPTH = 32          # nesting of [] and {} (a v1 header nests 4 deep)
MAX_NDIM = 8                 # dimensions of a stored array (4-D convolution kernels fit)
MAX_DIM = 2**31 - 1          # a shape dimension, input_dim, units
MAX_LAYERS = 10_000          # layers in a model (Dense and activation layers together)
MAX_ARRAYS = 2 * MAX_LAYERS + 16    # stored arrays: W and b per layer, optimizer state
MAX_SEED = 2**128            # seeds are in [0, MAX_SEED)
MAX_ITERATIONS = 2**53       # optimizer step counts are in [0, MAX_ITERATIONS): exact in the
#                              float64 that Adam's bias correction 1 - beta**t is computed in


class BadModelFile(Exception):
    """A reason to refuse a file; becomes the ValueError users see."""


def _int_literal(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BadModelFile(f"an integer of {len(text.lstrip('-'))} digits in the header "
                           f"(at most {MAX_INT_DIGITS})")
    return int(text)


def _float_literal(text: str) -> float:
    value = float(text) if len(text) <= MAX_FLOAT_CHARS else math.nan
    if not math.isfinite(value):        # 1e999 parses to inf
        raise BadModelFile(f"the header number {text[:40]!r} is not a finite float")
    return value


def _no_constant(text: str) -> Any:
    raise BadModelFile(f"the header holds {text}, which is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise BadModelFile(f"the header repeats the key {_short(key)}")
        obj[key] = value
    return obj


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def _depth(text: str) -> int:
    # Counted before parsing, strings blanked out: the parser recurses once per level.
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub('""', text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def parse_header(raw: Union[bytes, bytearray, memoryview]) -> dict[str, Any]:
    """The header's JSON object: strict UTF-8 and JSON, no NaN/Infinity, no repeated keys, no
    integer over MAX_INT_DIGITS digits, at most MAX_JSON_DEPTH levels of nesting."""
    try:
        text = str(raw, "utf-8")
        if _depth(text) > MAX_JSON_DEPTH:
            raise BadModelFile(f"the header nests deeper than {MAX_JSON_DEPTH} levels")
        header = json.loads(text, parse_int=_int_literal, parse_float=_float_literal,
                            parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BadModelFile(f"the header is not valid JSON ({exc})") from None
    except BadModelFile as exc:
        raise BadModelFile(f"the header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise BadModelFile("the header lacks 'model' and 'arrays' (it is not a JSON object)")
    return header


def check_keys(obj: dict[str, Any], where: str, required: tuple[str, ...],
               optional: tuple[str, ...] = ()) -> None:
    """Every required key present, nothing unknown (a file this version cannot fully read is
    refused rather than half-read)."""
    missing = [k for k in required if k not in obj]
    if missing:
        raise BadModelFile(f"{where} lacks {', '.join(map(repr, missing))}")
    unknown = sorted(set(obj) - set(required) - set(optional))
    if unknown:
        raise BadModelFile(f"{where} has unknown keys {unknown}")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(what: str, name: str, value: Any, low: int, high: int) -> int:
    """``value`` as an int in [low, high), bools and floats refused; the message reads
    "bad <what>: expected an integer in [low, high). Received: <name>=<value>"."""
    if not is_int(value) or not low <= value < high:
        raise BadModelFile(f"bad {what}: expected an integer in [{low}, {_power(high)}). "
                           f"Received: {name}={_short(value)}")
    return value


def _power(n: int) -> str:
    """2**53 rather than 9007199254740992."""
    return f"2**{n.bit_length() - 1}" if n >= 2**16 and n & (n - 1) == 0 else str(n)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_list(what: str, value: Any, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise BadModelFile(f"{what} must be a list. Received: {_short(value)}")
    if len(value) > limit:
        raise BadModelFile(f"{what} has {len(value)} entries, more than the limit of {limit}")
    return value


def check_array_entry(entry: Any, dtypes: dict[str, np.dtype[Any]], data_size: int
                      ) -> tuple[str, np.dtype[Any], tuple[int, ...], int, int]:
    """(name, dtype, shape, offset, nbytes) of one ``arrays`` entry whose bytes lie within a
    data section of ``data_size`` bytes."""
    if not isinstance(entry, dict):
        raise BadModelFile("an array entry is not an object")
    name = entry.get("name")
    if not isinstance(name, str):
        raise BadModelFile(f"bad array name {_short(name)}")
    check_keys(entry, f"array {name!r}", ("name", "dtype", "shape", "offset"))
    dtype, shape, offset = entry["dtype"], entry["shape"], entry["offset"]
    if not isinstance(dtype, str) or dtype not in dtypes:
        raise BadModelFile(f"array {name!r} has dtype {_short(dtype)}; allowed: {sorted(dtypes)}")
    if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(
            is_int(d) and 0 <= d <= MAX_DIM for d in shape):
        raise BadModelFile(f"array {name!r} has a bad shape {_short(shape)}: expected a list of "
                           f"at most {MAX_NDIM} integers in [0, {MAX_DIM}]")
    if not is_int(offset) or offset < 0:
        raise BadModelFile(f"array {name!r} has a bad offset {_short(offset)}")
    nbytes = math.prod(shape) * dtypes[dtype].itemsize        # Python ints: no overflow
    if offset + nbytes > data_size:
        raise BadModelFile(f"array {name!r} spans bytes [{offset}, {offset + nbytes}) of the "
                           f"data section, beyond the file's {data_size} bytes of data")
    return name, dtypes[dtype], tuple(shape), offset, nbytes


def check_disjoint(spans: list[tuple[int, int, str]]) -> None:
    """No two (start, end, name) byte spans overlap."""
    spans = sorted(spans)
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            raise BadModelFile(f"arrays {first!r} and {second!r} overlap")


def optional_int(what: str, name: str, value: Any, low: int, high: int) -> Optional[int]:
    return None if value is None else check_int(what, name, value, low, high)


# --------------------------------------------------------------------------- the v1 header
# The v1 header's keys: (required, optional). Unknown keys are refused, not ignored: a file that
# says more than this version understands is not half-read. MODEL_KEYS follows
# Sequential.get_config() plus "backend"; add a key here when get_config grows one.
TOP_KEYS = (("model", "arrays"), ("compile",))
MODEL_KEYS = (("layers", "input_dim", "dtype"), ("seed", "backend"))
COMPILE_KEYS = (("loss", "optimizer"), ("iterations", "metrics", "loss_weights"))


def check_top(header: dict[str, Any]) -> dict[str, Any]:
    """The header, if it has the v1 top-level keys and no others."""
    if not isinstance(header.get("model"), dict) or not isinstance(header.get("arrays"), list):
        raise BadModelFile("the header lacks 'model' and 'arrays'")
    check_keys(header, "the header", *TOP_KEYS)
    return header


def parameter_bytes(config: dict[str, Any], itemsize: int) -> Optional[int]:
    """Bytes of weights the described architecture needs, or None if it cannot be told."""
    width, total = config.get("input_dim"), 0
    for layer in config.get("layers", []):
        if isinstance(layer, dict) and layer.get("class") == "Dense":
            units = layer.get("units")
            if not isinstance(width, int) or not isinstance(units, int):
                return None
            total += (width + 1) * units
            width = units
    return total * itemsize


def check_compile(header: dict[str, Any]) -> Any:
    """The compile settings of a header (or None), structure and step count checked."""
    compiled = header.get("compile")
    if not (compiled is None or isinstance(compiled, dict)):
        raise BadModelFile("the header's 'compile' must be an object or null")
    if compiled is not None:
        check_keys(compiled, "the compile settings", *COMPILE_KEYS)
        check_int("optimizer step count", "iterations", compiled.get("iterations", 0), 0,
                  MAX_ITERATIONS)
    return compiled


def check_description(header: dict[str, Any], data_size: int) -> tuple[dict[str, Any], Any]:
    """(model config, compile settings or None) from a v1 header, structure and integer
    ranges checked, and the architecture's weights within ``data_size`` bytes."""
    config, compiled = header["model"], header.get("compile")
    if not isinstance(config.get("layers"), list) or not (
            compiled is None or isinstance(compiled, dict)):
        raise BadModelFile("the model description is invalid: 'model.layers' must be a list "
                           "and 'compile' an object or null")
    check_keys(config, "the model description", *MODEL_KEYS)
    layers = check_list("the model's 'layers'", config["layers"], MAX_LAYERS)
    check_int("model input_dim", "input_dim", config["input_dim"], 1, MAX_DIM + 1)
    optional_int("model seed", "seed", config.get("seed"), 0, MAX_SEED)
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict) or not isinstance(layer.get("class"), str):
            raise BadModelFile(f"layer {i} is not an object with a 'class' name")
        if layer["class"] == "Dense":
            check_int(f"units of layer {i}", "units", layer.get("units"), 1, MAX_DIM + 1)
    if compiled is not None:
        check_keys(compiled, "the compile settings", *COMPILE_KEYS)
        check_int("optimizer step count", "iterations", compiled.get("iterations", 0), 0,
                  MAX_ITERATIONS)
    itemsize = 8 if config["dtype"] == "float64" else 4
    needed = parameter_bytes(config, itemsize)
    if needed is not None and needed > data_size:
        # refuse before building: a forged architecture must not allocate beyond the file
        raise BadModelFile(f"the architecture needs {needed} bytes of weights, more than the "
                           f"file's {data_size} bytes of data")
    return config, compiled
