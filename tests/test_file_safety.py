"""Model files against a hostile or busy file system, and headers with forged integers.

Saving: atomic (a unique temporary file, then a rename), never through a planted symlink,
permission bits kept, nothing left behind on failure, and readers racing concurrent savers (in
threads and in other processes) always load a complete model. Loading: FIFOs, devices and
directories are refused at once, nothing beyond what the header announces is read, a file cut
at any byte is refused, and every out-of-range header integer gives the usual ValueError.
Checks that could hang on a regression (FIFO, /dev/zero) run in a subprocess with a timeout.
"""

import json
import os
import select
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

import fastnn as fnn
import fastnn.io as fio
from fastnn import _header_checks

MAGIC = b"\x89FNN\r\n\x1a\n"
INVALID = r"is not a valid fastnn model file"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fnn.__file__)))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT,
                                                                os.environ.get("PYTHONPATH")])))


def _model(seed=0, compiled=True):
    model = fnn.Sequential([fnn.Dense(3, activation="relu"), fnn.ReLU(), fnn.Dense(2)],
                           input_dim=4, seed=seed, backend="numpy")
    if compiled:
        model.compile("mse", fnn.Adam(lr=0.01))
        model.train_on_batch(np.ones((2, 4)), np.zeros((2, 2)))
    return model


def _signature(model):
    return b"".join(w.tobytes() for w in model.get_weights())


def _run_python(code, *args, timeout=30):
    """Run ``code`` in a fresh interpreter on this worktree's fastnn; (stdout lines, rc)."""
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _no_temp_files(directory, expected):
    assert sorted(os.listdir(directory)) == sorted(expected)


# --------------------------------------------------------------------------- saving
def test_symlink_at_the_old_temporary_name_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "m.fnn.tmp").symlink_to(victim)          # the name save used to write through
    model = _model()
    model.save(tmp_path / "m.fnn")
    assert victim.read_text() == "precious"
    assert os.readlink(tmp_path / "m.fnn.tmp") == str(victim)
    assert _signature(fnn.load(tmp_path / "m.fnn")) == _signature(model)
    _no_temp_files(tmp_path, ["victim.txt", "m.fnn.tmp", "m.fnn"])


def test_save_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "real.fnn"
    _model(seed=1).save(target)
    link = tmp_path / "link.fnn"
    link.symlink_to(target)
    model = _model(seed=2)
    model.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert _signature(fnn.load(target)) == _signature(model)
    assert _signature(fnn.load(link)) == _signature(model)          # loading follows links
    _no_temp_files(tmp_path, ["store", "link.fnn"])
    _no_temp_files(tmp_path / "store", ["real.fnn"])
    # a dangling link gets its target created, like open(path, "w")
    dangling = tmp_path / "dangling.fnn"
    dangling.symlink_to(tmp_path / "store" / "new.fnn")
    model.save(dangling)
    assert dangling.is_symlink() and (tmp_path / "store" / "new.fnn").is_file()


def test_permission_bits_are_kept_and_new_files_honour_the_umask(tmp_path):
    path = tmp_path / "m.fnn"
    old = os.umask(0o027)
    try:
        _model().save(path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640            # 0o666 & ~umask
        os.chmod(path, 0o600)
        _model(seed=3).save(path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600            # not widened
        os.umask(0o077)
        os.chmod(path, 0o644)
        _model(seed=4).save(path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644            # not narrowed
    finally:
        os.umask(old)


def _boom(*args, **kwargs):
    raise OSError(28, "No space left on device (simulated)")


_REAL_WRITE = os.write


def _partial_write(fd, data):
    _REAL_WRITE(fd, bytes(data[:10]))       # the disk fills up after 10 bytes
    raise OSError(28, "No space left on device (simulated)")


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


FAILURES = {
    "model_to_bytes": (fio, "model_to_bytes", _boom),
    "write": (os, "write", _partial_write),
    "fsync": (os, "fsync", _boom),
    "replace": (os, "replace", _boom),
    "interrupt": (os, "replace", _interrupt),
}


@pytest.mark.parametrize("where", sorted(FAILURES))
def test_a_failed_save_leaves_the_destination_and_no_temporary_file(tmp_path, monkeypatch,
                                                                    where):
    path = tmp_path / "m.fnn"
    _model(seed=5).save(path)
    before = path.read_bytes()
    module, name, replacement = FAILURES[where]
    monkeypatch.setattr(module, name, replacement)
    with pytest.raises((OSError, KeyboardInterrupt)):
        _model(seed=6).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    _no_temp_files(tmp_path, ["m.fnn"])


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes to read-only directories")
def test_an_unwritable_directory_leaves_nothing(tmp_path):
    path = tmp_path / "m.fnn"
    _model().save(path)
    before = path.read_bytes()
    os.chmod(tmp_path, 0o500)
    try:
        with pytest.raises(PermissionError):
            _model(seed=1).save(path)
    finally:
        os.chmod(tmp_path, 0o700)
    assert path.read_bytes() == before
    _no_temp_files(tmp_path, ["m.fnn"])


def test_directories_and_sockets_are_refused(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep").write_text("x")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        _model().save(tmp_path / "d")
    assert os.listdir(tmp_path / "d") == ["keep"]
    with pytest.raises(ValueError, match=INVALID + r": not a regular file \(a directory\)"):
        fnn.load(tmp_path / "d")
    with pytest.raises(IsADirectoryError):          # the same error is also an OSError
        fnn.load(tmp_path / "d")
    if hasattr(socket, "AF_UNIX"):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(tmp_path / "s.fnn"))
            with pytest.raises(ValueError, match=INVALID + r": not a regular file \(a socket\)"):
                fnn.load(tmp_path / "s.fnn")
            with pytest.raises(ValueError, match=r"cannot save .* \(a socket\)"):
                _model().save(tmp_path / "s.fnn")
            assert stat.S_ISSOCK(os.lstat(tmp_path / "s.fnn").st_mode)
        os.unlink(tmp_path / "s.fnn")
    _no_temp_files(tmp_path, ["d"])


SAVER = r"""
import sys, time
import numpy as np
import fastnn as fnn
path, seed, seconds, expected = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
model = fnn.Sequential([fnn.Dense(3, activation="relu"), fnn.ReLU(), fnn.Dense(2)],
                       input_dim=4, seed=seed, backend="numpy")
model.compile("mse", fnn.Adam(lr=0.01))
model.save(expected)
print("ready", flush=True)
end, n = time.monotonic() + seconds, 0
while time.monotonic() < end:
    model.save(path)
    n += 1
print(n, flush=True)
"""


def _wait_for_line(proc, timeout=60):
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the saver process did not start"
    return proc.stdout.readline().strip()


def test_concurrent_savers_never_expose_a_partial_file(tmp_path):
    path = tmp_path / "m.fnn"
    _model(seed=100).save(path)
    seconds = 1.5
    procs = [subprocess.Popen([sys.executable, "-c", SAVER, str(path), str(seed), str(seconds),
                               str(tmp_path / f"expected{seed}.fnn")],
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in (200, 201)]
    try:
        for proc in procs:
            assert _wait_for_line(proc) == "ready", proc.stderr.read()
        models = [_model(seed=100)] + [_model(seed=s) for s in range(300, 304)]
        models += [fnn.load(tmp_path / f"expected{s}.fnn") for s in (200, 201)]
        known = {_signature(m) for m in models}
        errors, counts = [], []

        def save_loop(model):
            end, n = time.monotonic() + seconds, 0
            try:
                while time.monotonic() < end:
                    model.save(path)
                    n += 1
            except BaseException as exc:     # reported by the main thread
                errors.append(exc)
            counts.append(n)

        threads = [threading.Thread(target=save_loop, args=(m,)) for m in models[1:5]]
        for t in threads:
            t.start()
        loads = 0
        while any(t.is_alive() for t in threads) or any(p.poll() is None for p in procs):
            assert _signature(fnn.load(path)) in known       # never partial, never missing
            loads += 1
        for t in threads:
            t.join()
        outputs = [p.communicate(timeout=60) for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert not errors, errors
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    assert loads > 10 and min(counts) > 0 and all(int(out.split()[-1]) > 0 for out, _ in outputs)
    _no_temp_files(tmp_path, ["m.fnn", "expected200.fnn", "expected201.fnn"])


# --------------------------------------------------------------------------- loading
LOADER = r"""
import os, resource, sys, time
import fastnn as fnn

# a regression that reads /dev/zero to the end fails fast with MemoryError, not the host's RAM
with open("/proc/self/statm") as f:
    size = int(f.read().split()[0]) * resource.getpagesize()
hard = resource.getrlimit(resource.RLIMIT_AS)[1]
cap = size + (1 << 30) if hard == resource.RLIM_INFINITY else min(size + (1 << 30), hard)
resource.setrlimit(resource.RLIMIT_AS, (cap, hard))

def rchar():
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar"))

op, path = sys.argv[1], sys.argv[2]
model = fnn.Sequential([fnn.Dense(2)], input_dim=3, seed=0, backend="numpy")
proc_io = os.path.exists("/proc/self/io")
before, start = rchar() if proc_io else 0, time.perf_counter()
try:
    fnn.load(path) if op == "load" else model.save(path)
    outcome = "no error"
except Exception as exc:
    outcome = f"{type(exc).__name__}: {exc}"
elapsed = time.perf_counter() - start
read = rchar() - before if proc_io else 0
print(elapsed)
print(read)
print(outcome)
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("op", ["load", "save"])
def test_a_fifo_is_refused_without_blocking(tmp_path, op):
    fifo = tmp_path / "pipe.fnn"
    os.mkfifo(fifo)
    elapsed, _, outcome = _run_python(LOADER, op, fifo)
    assert outcome.startswith("ValueError") and "not a regular file (a FIFO)" in outcome
    if op == "load":
        assert INVALID in outcome
    assert float(elapsed) < 1.0
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
@pytest.mark.parametrize("through_a_link", [False, True])
def test_dev_zero_is_refused_quickly_without_reading_it(tmp_path, through_a_link):
    path = "/dev/zero"
    if through_a_link:
        path = tmp_path / "zero.fnn"
        path.symlink_to("/dev/zero")
    elapsed, read, outcome = _run_python(LOADER, "load", path)
    assert outcome.startswith("ValueError") and INVALID in outcome, outcome
    assert "not a regular file (a character device)" in outcome
    assert float(elapsed) < 1.0 and int(read) < 1 << 20


def _rchar():
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar"))


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs /proc/self/io")
def test_only_the_bytes_the_header_announces_are_read(tmp_path):
    model = _model()
    blob = fio.model_to_bytes(model)
    path = tmp_path / "sparse.fnn"
    path.write_bytes(blob)
    os.truncate(path, 1 << 26)                 # 64 MiB of hole after the model (sparse)
    before = _rchar()
    same = fnn.load(path)
    assert _rchar() - before < 1 << 20
    assert _signature(same) == _signature(model)


def test_a_file_cut_at_any_byte_is_refused(tmp_path):
    blob = fio.model_to_bytes(_model())
    path = tmp_path / "cut.fnn"
    for cut in range(len(blob)):
        path.write_bytes(blob[:cut])
        with pytest.raises(ValueError, match=INVALID):
            fnn.load(path)
        with pytest.raises(ValueError, match=INVALID):
            fio.model_from_bytes(blob[:cut])
    path.write_bytes(blob)
    assert fnn.load(path) is not None


# --------------------------------------------------------------------------- forged headers
def _parse(blob):
    size = struct.unpack_from("<I", blob, 12)[0]
    start = 16 + size
    return json.loads(blob[16:start]), blob[start + (-start % 64):]


def _build(header_text, data, size=None):
    raw = header_text.encode()
    pad = -(16 + len(raw)) % 64
    return MAGIC + struct.pack("<II", 1, len(raw) if size is None else size) + raw + \
        b"\0" * pad + data


class Raw(str):
    """A literal written into the header text as it is (a number JSON cannot round-trip)."""


def _at(*keys):
    """A setter of header[k0][k1]...; a key ('array', name) picks that array entry."""
    def change(header, value):
        node = header
        for key in keys[:-1]:
            node = next(e for e in node["arrays"] if e["name"] == key[1]) \
                if isinstance(key, tuple) else node[key]
        node[keys[-1]] = value
    return change


def _forge(blob, change, value):
    header, data = _parse(blob)
    raws = {}

    def mark(v):            # Raw literals become placeholders, substituted after dumping
        if isinstance(v, Raw):
            raws[f"@raw{len(raws)}@"] = str(v)
            return f"@raw{len(raws) - 1}@"
        return [mark(x) for x in v] if isinstance(v, list) else v

    if change is not None:
        change(header, mark(value))
    text = json.dumps(header)
    for key, literal in raws.items():
        text = text.replace(json.dumps(key), literal)
    return _build(text, data)


ITER, SEED, IN_DIM = _at("compile", "iterations"), _at("model", "seed"), _at("model", "input_dim")
UNITS, SHAPE = _at("model", "layers", 0, "units"), _at(("array", "dense_0/W"), "shape")
OFFSET, LR = _at(("array", "dense_1/b"), "offset"), _at("compile", "optimizer", "lr")
DIGITS = Raw("9" * 4300)                   # int() refuses it: a bare ValueError in json.loads


def _text(edit):
    """A case that edits the header's JSON text."""
    return (lambda header, _: None, edit)


HEADER_CASES = {
    "iterations_2**63-1": (ITER, 2**63 - 1), "iterations_2**64": (ITER, 2**64),
    "iterations_2**53": (ITER, 2**53), "iterations_negative": (ITER, -1),
    "iterations_bool": (ITER, True), "iterations_float": (ITER, 3.0),
    "iterations_string": (ITER, "3"), "iterations_null": (ITER, None),
    "iterations_4300_digits": (ITER, DIGITS), "iterations_41_digits": (ITER, Raw("1" * 41)),
    "iterations_exponent": (ITER, Raw("1e300")),
    "input_dim_zero": (IN_DIM, 0), "input_dim_bool": (IN_DIM, True),
    "input_dim_float": (IN_DIM, 4.0), "input_dim_2**31": (IN_DIM, 2**31),
    "input_dim_2**63": (IN_DIM, 2**63), "input_dim_4300_digits": (IN_DIM, DIGITS),
    "units_zero": (UNITS, 0), "units_bool": (UNITS, False), "units_float": (UNITS, 3.0),
    "units_2**64": (UNITS, 2**64), "units_4300_digits": (UNITS, DIGITS),
    "seed_negative": (SEED, -1), "seed_bool": (SEED, True), "seed_float": (SEED, 7.0),
    "seed_2**128": (SEED, 2**128), "seed_4300_digits": (SEED, DIGITS),
    "shape_65_dims": (SHAPE, [1] * 65), "shape_9_dims": (SHAPE, [1] * 9),
    "shape_bool": (SHAPE, [True, 3]), "shape_float": (SHAPE, [4.0, 3]),
    "shape_negative": (SHAPE, [-4, 3]), "shape_2**31": (SHAPE, [2**31, 3]),
    "shape_2**63_squared": (SHAPE, [2**63, 2**63]), "shape_4300_digits": (SHAPE, [DIGITS, 3]),
    "shape_4d_beyond_file": (SHAPE, [2**30, 2**30, 4, 4]),
    "offset_negative": (OFFSET, -64), "offset_bool": (OFFSET, True),
    "offset_float": (OFFSET, 64.0), "offset_2**63": (OFFSET, 2**63),
    "offset_4300_digits": (OFFSET, DIGITS),
    "lr_4300_digits": (LR, DIGITS), "lr_nan": (LR, Raw("NaN")),
    "lr_infinity": (LR, Raw("Infinity")),
    "lr_minus_infinity": (LR, Raw("-Infinity")), "lr_1e999": (LR, Raw("1e999")),
    "lr_long_literal": (LR, Raw("0." + "1" * 5000)),
    "depth_bomb": (_at("model", "layers", 1), Raw("[" * 100000 + "]" * 100000)),
    "depth_33": (_at("model", "layers", 1), Raw("[" * 33 + "]" * 33)),
    "duplicate_key": _text(lambda t: t.replace('"seed": 0', '"seed": 0, "seed": 1')),
    "duplicate_key_at_top": _text(lambda t: t.replace('{"model": ', '{"arrays": [], "model": ')),
    "layer_not_an_object": (_at("model", "layers", 1), 5),
    "layer_without_class": (_at("model", "layers", 1), {"units": 3}),
    "array_entry_not_an_object": (_at("arrays", 0), ["dense_0/W"]),
    "model_is_a_list": (_at("model"), []), "compile_is_a_number": (_at("compile"), 3),
    "arrays_is_an_object": (_at("arrays"), {}),
    "unknown_top_key": (_at("pickle"), 1), "unknown_model_key": (_at("model", "exec"), 1),
    "unknown_compile_key": (_at("compile", "extra"), 1),
    "unknown_array_key": (_at(("array", "dense_0/b"), "strides"), [4]),
    "10001_layers": (_at("model", "layers"),
                     [{"class": "Dense", "units": 3}] + [{"class": "ReLU"}] * 10000),
}


@pytest.mark.parametrize("case", sorted(HEADER_CASES))
def test_forged_header_values_raise_the_usual_valueerror(case, tmp_path):
    change, value = HEADER_CASES[case]
    blob = fio.model_to_bytes(_model(seed=0))
    forged = _forge(blob, change, value) if not callable(value) else \
        _build(value(json.dumps(_parse(blob)[0])), _parse(blob)[1])
    path = tmp_path / "bad.fnn"
    path.write_bytes(forged)
    start = time.perf_counter()
    with pytest.raises(Exception) as info:
        fnn.load(path)
    assert info.type is ValueError, f"{info.type.__name__}: {info.value}"
    assert info.match(r"bad\.fnn' " + INVALID)
    assert time.perf_counter() - start < 1.0


def test_the_forging_helpers_change_only_what_they_are_told():
    blob = fio.model_to_bytes(_model(seed=0))
    assert _forge(blob, None, None) == blob
    assert fio.model_from_bytes(_forge(blob, ITER, 7)).optimizer.iterations == 7
    assert fio.model_from_bytes(_forge(blob, ITER, Raw("7"))).optimizer.iterations == 7


def _activation_bomb(n, units=3, input_dim=4):
    header = {"model": {"layers": [{"class": "Dense", "units": units}] + [{"class": "ReLU"}] * n,
                        "input_dim": input_dim, "seed": 0, "dtype": "float32"},
              "compile": None,
              "arrays": [{"name": "dense_0/W", "dtype": "<f4", "shape": [4, 3], "offset": 0},
                         {"name": "dense_0/b", "dtype": "<f4", "shape": [3], "offset": 64}]}
    return _build(json.dumps(header), b"\0" * 128)


@pytest.mark.parametrize("blob, pattern", [
    (_activation_bomb(10**6), r"header length \d+ exceeds"),          # 17 MB of header
    (_activation_bomb(50_000), r"more than the limit of 10000"),
    (_activation_bomb(0, units=2**31 - 1, input_dim=2**31 - 1), r"architecture needs \d+ bytes"),
    (_activation_bomb(0, units=2**20, input_dim=2**20), r"architecture needs \d+ bytes"),
], ids=["1e6_layers", "50000_layers", "max_dims", "1Mx1M_dense"])
def test_huge_declarations_are_refused_before_allocating(blob, pattern):
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=INVALID + ".*" + pattern):
            fio.model_from_bytes(blob)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * len(blob) + (1 << 20)
    # and quickly: the CPU time of a run without tracemalloc (which triples it), not the wall
    # time, which a busy machine stretches (2.4 s once in CI under load for a 0.3 s refusal)
    start = time.process_time()
    with pytest.raises(ValueError, match=INVALID + ".*" + pattern):
        fio.model_from_bytes(blob)
    assert time.process_time() - start < 2.0


def test_the_layer_limit_itself_round_trips_and_the_writer_refuses_beyond(tmp_path):
    limit = _header_checks.MAX_LAYERS
    model = fnn.Sequential([fnn.Dense(2)] + [fnn.ReLU()] * (limit - 1), input_dim=3, seed=0,
                           backend="numpy")
    same = fio.model_from_bytes(fio.model_to_bytes(model))
    assert len(same.layers) == limit
    model = fnn.Sequential([fnn.Dense(2)] + [fnn.ReLU()] * limit, input_dim=3, seed=0,
                           backend="numpy")
    with pytest.raises(ValueError, match="cannot save .* more than the limit of 10000"):
        model.save(tmp_path / "m.fnn")
    model = _model()
    with pytest.raises(ValueError, match=r"iterations must be < 2\*\*53"):
        model.optimizer.iterations = _header_checks.MAX_ITERATIONS
    model.optimizer._iterations[0] = _header_checks.MAX_ITERATIONS    # past the setter's check
    with pytest.raises(ValueError, match="cannot save .*iterations=9007199254740992"):
        model.save(tmp_path / "m.fnn")
    assert os.listdir(tmp_path) == []
