"""Build of fastnn's compiled backend (the metadata lives in pyproject.toml).

Extensions, all under fastnn/_ext/:
  _kernels  Cython dense/activation kernels linked with the C GEMM (every src_c/*.c)
  _loss     Cython loss kernels
  _optim    Cython optimizer kernels (linked with the C sources for the vectorised updates)
  _embedding  Cython embedding gather and scatter-add (Embedding)
  _attention  Cython scaled dot-product attention over src_c/fnn_attn.c (tiled, online softmax)
  _depthwise  Cython depthwise convolution over src_c/fnn_dwconv.c (DepthwiseConv2D, the
              depthwise half of SeparableConv2D, their 1-D forms)
  _decode     Cython attention against a key/value cache and a whole TransformerBlock step
              (generation, fastnn/models/decoding.py)
  _keras_attention  Cython kernels of Keras' Dot, UnitNormalization, Attention and
              AdditiveAttention (batched GEMM, row normalization, masked softmax, additive scores)
  _conv_lstm  Cython ConvLSTM2D gates on src_c/fnn_rnn.c's LSTM step kernels

OpenMP is used when a small probe program compiles and links with it; otherwise the kernels are
built serially (with a message). Environment switches:
  FASTNN_NO_OPENMP=1   force the serial build
  FASTNN_SANITIZE=1    AddressSanitizer + UBSan build for debugging (-O1 -g)
No -march/-mavx flags: the SIMD micro-kernels carry target attributes and are chosen at run time,
so one wheel runs on any x86-64 (or other) CPU.
"""

import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from glob import glob

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
C_SOURCES = sorted(os.path.relpath(p, HERE).replace(os.sep, "/")
                   for p in glob(os.path.join(HERE, "src_c", "*.c"))
                   # the families with extensions of their own
                   if not p.endswith(("fnn_pool.c", "fnn_rnn.c", "fnn_attn.c", "fnn_norm.c",
                                      "fnn_dwconv.c")))

CYTHON_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
}

OMP_PROBE = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    printf("%d %d\n", omp_get_max_threads(), n);
    return 0;
}
"""


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _openmp_flags(compiler):
    """(compile_args, link_args) that make OpenMP work with `compiler`, or None."""
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":  # Apple clang needs libomp (e.g. from Homebrew)
        candidates = [(["-fopenmp"], ["-fopenmp"]),
                      (["-Xpreprocessor", "-fopenmp"], ["-lomp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    for cflags, lflags in candidates:
        if _probe(compiler, cflags, lflags):
            return cflags, lflags
    return None


def _probe(compiler, cflags, lflags):
    """True when OMP_PROBE compiles and links with the given flags."""
    tmp = tempfile.mkdtemp(prefix="fastnn_omp_")
    try:
        src = os.path.join(tmp, "omp_probe.c")
        with open(src, "w") as f:
            f.write(OMP_PROBE)
        objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
        compiler.link_executable(objs, "omp_probe", output_dir=tmp, extra_postargs=lflags)
        return True
    except Exception:  # CompileError, LinkError, or a missing toolchain piece
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _add_flags_for(compiler, folder, flags):
    """Give the sources under `folder` extra flags (the GEMM is C99; Cython's C follows Python's
    headers, which may need a newer standard). Unix-style compilers compile file by file."""
    compile_one = getattr(compiler, "_compile", None)
    if compile_one is None or getattr(compiler, "_fastnn_wrapped", False):
        return
    target = os.path.join(HERE, folder)

    def _compile(obj, src, ext, cc_args, extra_postargs, pp_opts):
        if os.path.dirname(os.path.abspath(src)) == target:
            extra_postargs = list(extra_postargs) + flags
        compile_one(obj, src, ext, cc_args, extra_postargs, pp_opts)

    compiler._compile = _compile
    compiler._fastnn_wrapped = True


class BuildExt(build_ext):
    """build_ext that picks optimisation, OpenMP and sanitizer flags for the actual compiler."""

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        # no errno or FP-exception semantics anywhere (fastnn never reads them): loops with
        # comparisons or sqrt vectorise and compare-selects stay branch-free (without it GCC
        # branched on relu's y > 0 in the Cython kernels: 20% of a LeNet training step)
        cflags = ["/O2"] if msvc else ["-O3", "-fno-math-errno", "-fno-trapping-math"]
        lflags = []
        if not msvc:
            # C99 without FP contraction (results do not depend on the instruction set); no
            # errno or FP-exception semantics, which fastnn never reads, so that loops with
            # sqrt or compare-selects vectorise.
            _add_flags_for(self.compiler, "src_c",
                           ["-std=c99", "-fno-math-errno", "-fno-trapping-math"])
            if _flag("FASTNN_SANITIZE"):
                sanitize = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
                cflags = sanitize + ["-O1", "-g"]
                lflags = list(sanitize)
            if sys.platform != "win32":
                # the GEMM keeps one packing buffer per thread (pthread keys: in libc since
                # glibc 2.34, in libpthread before)
                cflags.append("-pthread")
                lflags.append("-pthread")
        if _flag("FASTNN_NO_OPENMP"):
            print("fastnn: FASTNN_NO_OPENMP is set, building serial kernels")
        else:
            omp = _openmp_flags(self.compiler)
            if omp is None:
                print("fastnn: OpenMP not available, building serial kernels")
            else:
                print("fastnn: building with OpenMP (%s)" % " ".join(omp[0]))
                cflags += omp[0]
                lflags += omp[1]
        for ext in self.extensions:
            if ext.name == "fastnn._ext._layer_ops" and not msvc:
                # Gaussian noise: its twin's arithmetic, operation by operation (no fused
                # multiply-adds where the target has them: aarch64, or a -march with FMA)
                ext.extra_compile_args = ["-ffp-contract=off"] + list(ext.extra_compile_args)
            ext.extra_compile_args = cflags + list(ext.extra_compile_args)
            ext.extra_link_args = lflags + list(ext.extra_link_args)
        self._share_c_sources(cflags)
        if self.parallel is None:       # the extensions' own (Cython) C compiles in parallel
            self.parallel = os.cpu_count() or 1
        super().build_extensions()

    def _share_c_sources(self, cflags):
        """Compile the C sources several extensions list (the GEMM and its kernels) once, into
        objects each of them links, instead of once per extension (six times per build: a third
        of CI's time went there). Every extension gets the same flags, so the objects are the
        same either way; they are rebuilt when a source or any header is newer."""
        users = [ext for ext in self.extensions if set(C_SOURCES) <= set(ext.sources)]
        if len(users) < 2:
            return
        out_dir = os.path.join(self.build_temp, "fastnn_shared")
        objects = self.compiler.object_filenames(C_SOURCES, output_dir=out_dir)
        stale = [(src, obj) for src, obj in zip(C_SOURCES, objects)
                 if self.force or _newer_than([src] + C_HEADERS, obj)]
        if stale:
            os.makedirs(os.path.join(out_dir, "src_c"), exist_ok=True)
            ext = users[0]

            def compile_one(src):
                self.compiler.compile([src], output_dir=out_dir, macros=ext.define_macros,
                                      include_dirs=ext.include_dirs, debug=self.debug,
                                      extra_postargs=ext.extra_compile_args, depends=C_HEADERS)

            workers = max(1, min(len(stale), os.cpu_count() or 1))
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(compile_one, [src for src, _ in stale]))
        for ext in users:
            ext.sources = [src for src in ext.sources if src not in C_SOURCES]
            ext.extra_objects = objects + list(ext.extra_objects or [])
            ext.depends = list(ext.depends) + C_SOURCES       # relink when a source changed


def _newer_than(sources, target):
    """True when `target` is missing or older than any of `sources`."""
    if not os.path.exists(target):
        return True
    mtime = os.path.getmtime(target)
    return any(os.path.getmtime(src) > mtime for src in sources if os.path.exists(src))


# An incremental build recompiles a module when any header or Cython include it may use changed
# (setuptools tracks only the listed sources otherwise: an edited template header left stale
# objects behind).
C_HEADERS = [os.path.relpath(p, HERE).replace(os.sep, "/")
             for pattern in ("src_c/*.h", "fastnn/_ext/*.pxd", "fastnn/_ext/*.pxi")
             for p in sorted(glob(os.path.join(HERE, pattern)))]


def _extension(name, sources=()):
    return Extension(
        "fastnn._ext." + name,
        sources=["fastnn/_ext/%s.pyx" % name] + list(sources),
        depends=C_HEADERS,
        include_dirs=["src_c", np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )


# _kernels' InferPlan runs every layer kind's kernel (fastnn/_ext/_infer.pxi)
KERNELS_EXTRA = ["src_c/fnn_pool.c", "src_c/fnn_rnn.c", "src_c/fnn_attn.c", "src_c/fnn_norm.c",
                 "src_c/fnn_dwconv.c"]

if not C_SOURCES:
    sys.exit("fastnn: no C sources found in src_c/ (the GEMM is required to build)")

setup(
    ext_modules=cythonize(
        [_extension("_kernels", C_SOURCES + KERNELS_EXTRA), _extension("_loss"),
         _extension("_optim", C_SOURCES),
         _extension("_normalization", C_SOURCES + ["src_c/fnn_norm.c"]), _extension("_layer_ops"),
         _extension("_conv", C_SOURCES),
         _extension("_depthwise", C_SOURCES + ["src_c/fnn_dwconv.c"]),
         _extension("_pooling", C_SOURCES + ["src_c/fnn_pool.c"]),
         _extension("_recurrent", C_SOURCES + ["src_c/fnn_rnn.c"]), _extension("_embedding"),
         _extension("_attention", C_SOURCES + ["src_c/fnn_attn.c"]),
         _extension("_decode", C_SOURCES + ["src_c/fnn_norm.c"]),
         _extension("_keras_attention", C_SOURCES),

         _extension("_conv_lstm", C_SOURCES + ["src_c/fnn_rnn.c"])],
        compiler_directives=CYTHON_DIRECTIVES,
        include_path=[HERE],
    ),
    cmdclass={"build_ext": BuildExt},
)
