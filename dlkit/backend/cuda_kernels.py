"""The kernel table of the CUDA backend: what ``kernels/*.cu`` look like from Python.

Everything here must agree with the CUDA C sources, and tests/test_kernels_compile.py checks
that it does: where the sources are (:data:`KERNELS_DIR`), which files are compiled
(:data:`KERNEL_FILES`), the ``Layout`` struct size (:data:`MAX_DIMS`, :data:`LAYOUT_FIELDS`,
see kernels/common.cuh), block sizes, the dtype suffix of every kernel name, the matmul tiles,
and -- in :func:`kernel_signatures` -- the name and argument format of every kernel that
cuda.py launches.

Plain constants and small functions: no pycuda, no GPU.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

# ---------------------------------------------------------------------------------------
# Where the CUDA sources are: the one answer for the whole project (nvcc.py, cuda_probe.py
# and the tests import it from here).  The sources live in the repository's top-level
# kernels/ folder; a wheel ships them inside the package as dlkit/_kernels/ (see
# [tool.setuptools.package-dir] in pyproject.toml).  A source checkout and an editable
# install (make test, make lab) use kernels/ in place.
# ---------------------------------------------------------------------------------------
KERNELS_SEARCH_PATH: tuple[Path, ...] = (
    Path(__file__).resolve().parents[1] / "_kernels",   # installed from a wheel
    Path(__file__).resolve().parents[2] / "kernels",    # source checkout / editable install
)
KERNEL_HEADER = "common.cuh"


def _find_kernels_dir(search_path: tuple[Path, ...] = KERNELS_SEARCH_PATH) -> Path | None:
    for candidate in search_path:
        if (candidate / KERNEL_HEADER).is_file():
            return candidate
    return None


#: The folder with ``kernels/*.cu`` and ``common.cuh``.  Importing never fails: when no
#: candidate of :data:`KERNELS_SEARCH_PATH` has the sources this is the checkout's
#: ``kernels/``, and :func:`kernels_dir` (called where the kernels are compiled) raises.
KERNELS_DIR: Path = _find_kernels_dir() or KERNELS_SEARCH_PATH[-1]


def kernels_dir() -> Path:
    """:data:`KERNELS_DIR`, or ``FileNotFoundError`` saying every place that was searched."""
    if (KERNELS_DIR / KERNEL_HEADER).is_file():
        return KERNELS_DIR
    looked = [KERNELS_DIR, *(p for p in KERNELS_SEARCH_PATH if p != KERNELS_DIR)]
    raise FileNotFoundError(
        "dlkit's CUDA kernel sources (kernels/*.cu, common.cuh) were not found; looked in: "
        + ", ".join(str(p) for p in looked)
        + ". Install dlkit from its repository (pip install . or pip install -e .).")


KERNEL_FILES: tuple[str, ...] = ("elementwise", "reduce", "softmax_xent", "matmul")
# BEGIN WITHHELD: the fused optimizer steps (kernels/optim.cu) are not in the student kit
KERNEL_FILES += ("optim",)
# END WITHHELD
MAX_DIMS = 6              # DLKIT_MAX_DIMS in kernels/common.cuh
LAYOUT_FIELDS = 2 + 5 * MAX_DIMS   # ndim, size, shape[6], strides[4][6]  (int64 each)
BLOCK = 256               # threads per block of the element-wise kernels

#: dtype -> kernel name suffix and the pycuda (struct) format character of one scalar.
SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64",
          np.dtype(np.int64): "i64", np.dtype(np.bool_): "u8"}
SCALAR_FORMAT = {"f32": "f", "f64": "d", "i64": "q", "u8": "B"}

# ---------------------------------------------------------------------------------------
# Kernel names and argument formats.  Every launch goes through CudaBackend._kernel(), which
# refuses a name not listed here; tests/test_kernels_compile.py checks that each listed name
# is an extern "C" kernel of its .cu file with exactly these parameter types.
# Format characters (pycuda's prepared-call struct format): P pointer, q int64, i int32,
# f float, d double, B unsigned char, 256s the 256-byte Layout struct passed by value.
# ---------------------------------------------------------------------------------------
UNARY_OPS = ("neg", "exp", "log", "tanh", "sqrt", "sigmoid", "relu")
BINARY_OPS = ("add", "sub", "mul", "div", "pow", "maximum")
COMPARE_OPS = ("eq", "ne", "gt", "ge", "lt", "le")
INT_UNARY_OPS = ("neg",)
INT_BINARY_OPS = ("add", "sub", "mul", "maximum")
REDUCE_OPS = ("sum", "max", "min")
_LAYOUT = f"{8 * LAYOUT_FIELDS}s"
_FORMAT_ITEM = re.compile(r"(\d*)([PqifdB]|s)")


def format_items(fmt: str) -> list[tuple[int, str]]:
    """The arguments a prepared-call format describes, as (count, code) pairs: ``"256sPPqf"``
    gives ``[(256, "s"), (1, "P"), (1, "P"), (1, "q"), (1, "f")]`` (count is the byte length
    of an ``s`` item, 1 otherwise)."""
    return [(int(n) if n else 1, c) for n, c in _FORMAT_ITEM.findall(fmt)]


def kernel_signatures() -> dict[str, dict[str, str]]:
    """``{file stem: {kernel name: prepared-call format}}`` for every kernel cuda.py launches."""
    ew: dict[str, str] = {}
    for sfx in ("f32", "f64"):
        t = SCALAR_FORMAT[sfx]
        ew.update({f"unary_{op}_{sfx}": _LAYOUT + "PP" for op in UNARY_OPS})
        ew.update({f"binary_{op}_{sfx}": _LAYOUT + "PPP" + 2 * t for op in BINARY_OPS})
    ew.update({f"unary_{op}_i64": _LAYOUT + "PP" for op in INT_UNARY_OPS})
    ew.update({f"binary_{op}_i64": _LAYOUT + "PPPqq" for op in INT_BINARY_OPS})
    for sfx, t in SCALAR_FORMAT.items():
        ew.update({f"cmp_{op}_{sfx}": _LAYOUT + "PPP" + 2 * t for op in COMPARE_OPS})
        ew[f"where_{sfx}"] = _LAYOUT + "PPPP" + 2 * t
        ew[f"fill_{sfx}"] = "Pq" + t
        ew[f"one_hot_{sfx}"] = "PPqq"
        ew.update({f"cast_{sfx}_{dst}": _LAYOUT + "PP" for dst in SCALAR_FORMAT})
    red: dict[str, str] = {}
    for sfx in ("f32", "f64", "i64"):
        for op in REDUCE_OPS:
            red[f"reduce_rows_{op}_{sfx}"] = "PPqqq"
            red[f"reduce_mid_{op}_{sfx}"] = "PPqqq"
        red[f"argmax_rows_{sfx}"] = "PPqq"
    soft: dict[str, str] = {}
    mm: dict[str, str] = {}
    opt: dict[str, str] = {}
    for sfx in ("f32", "f64"):
        t = SCALAR_FORMAT[sfx]
        soft[f"logsumexp_rows_{sfx}"] = "PPqq"
        soft[f"log_softmax_rows_{sfx}"] = "PPqq"
        # BEGIN WITHHELD: fused cross-entropy gradient and optimizer steps (not in the student kit)
        soft[f"softmax_xent_rows_{sfx}"] = "PPPPqq" + t
        opt[f"sgd_step_{sfx}"] = "PPPq" + 4 * t + "ii"
        opt[f"adam_step_{sfx}"] = "PPPPq" + 7 * t + "i"
        # END WITHHELD
    for name in MATMUL_TILES:
        mm[name] = "PPP" + 9 * "q"
    signatures = {"elementwise": ew, "reduce": red, "softmax_xent": soft, "matmul": mm}
    if opt:
        signatures["optim"] = opt
    return signatures


#: matmul kernel name -> (BM, BN) tile; see kernels/matmul.cu.
MATMUL_TILES = {"matmul_128x128_f32": (128, 128), "matmul_64x64_f32": (64, 64),
                "matmul_64x64_f64": (64, 64)}
MATMUL_THREADS = 256
