"""Hidden checks for 06_gpu_kernels.

Points: grid_size 2, tiled_matmul 3, SAXPY_KERNEL 3.

SAXPY_KERNEL is CUDA C *text*.  It is fetched from the sandbox as a string and then:

* analysed statically here (signature, extern "C", global index, bounds check, y = a*x + y);
* compiled with ``nvcc --ptx`` (dlkit.backend.nvcc) in the grader process when nvcc is installed:
  nvcc only compiles, it never runs the code, and sources with preprocessor directives
  (``#include`` could read grader files into the error log) are refused before nvcc sees them;
  without nvcc that check is skipped (scores 0: install the CUDA toolkit on the grading machine).
  The kernel is never *run*: no GPU is assumed, and running untrusted native code in the grader
  is out of the question.  Wrong arithmetic that compiles (forgetting ``+ y``, an index without
  ``blockIdx``) is caught by the static check only.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from autograder.api import load_reference, check, diagnose, expect_array, expect_scalar, fail


ref = load_reference(__file__)


# -- grid_size -----------------------------------------------------------------------------------

@check("grid_size", points=1)
def test_grid_size_values(student):
    for n, bs in [(1, 128), (128, 128), (129, 128), (1000, 256), (1024, 256), (7, 1), (0, 32), (1, 1),
                  (10**9 + 7, 1024), (255, 256), (257, 256)]:
        got = expect_scalar(student.call("grid_size", n, bs), "int", name=f"grid_size({n}, {bs})")
        want = ref.grid_size(n, bs)
        if got != want:
            known = {n // bs: "floor division drops the last, partly filled block; use ceiling division",
                     n // bs + 1: "n // block_size + 1 (or (n + block_size) // block_size) launches one block "
                                  "too many when n is a multiple; use (n + block_size - 1) // block_size"}
            hint = "n = 0 needs 0 blocks" if n == 0 else known.get(got)
            fail(f"grid_size({n}, {bs}) is wrong (ceil(n / block_size)).", got=got, expected=want, hint=hint)


_RAISES = '''
def entry(n, bs):
    try:
        result = grid_size(n, bs)
    except ValueError as exc:
        return ["ValueError", str(exc)[:500]]
    except Exception as exc:
        return [type(exc).__name__, str(exc)[:500]]
    return ["returned", repr(result)[:100]]
'''


@check("grid_size", points=1)
def test_grid_size_rejects_invalid(student):
    for n, bs in [(-1, 128), (10, 0), (10, -4), (-5, -5)]:
        kind, message = student.run(_RAISES, "entry", n, bs)
        if kind != "ValueError":
            what = f"returned {message}" if kind == "returned" else f"raised {kind}: {message}"
            fail(f"grid_size({n}, {bs}) should raise ValueError (n < 0 or block_size < 1), but {what}.")


# -- tiled_matmul --------------------------------------------------------------------------------

def _check_tiled(student, m, k, n, tile, seed):
    rng = np.random.default_rng(seed)
    A, B = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    case = f"A ({m}, {k}), B ({k}, {n}), tile = {tile}"
    got = student.call("tiled_matmul", A, B) if tile is None else student.call("tiled_matmul", A, B, tile=tile)
    t = 16 if tile is None else tile
    want = A @ B
    got = expect_array(got, shape=(m, n), dtype_kind="f", name=f"C for {case}")
    if not np.allclose(got, want, rtol=1e-9, atol=1e-9):
        fail(f"tiled_matmul is wrong for {case}.", got=got, expected=want, hint=diagnose(got, {
            "the remainder tiles were dropped (shapes that are not multiples of tile need a last, smaller tile)":
                lambda: ref.tiled_matmul_no_remainder(A, B, t),
            "the last partial tile of the inner dimension k was dropped":
                lambda: ref.tiled_matmul_no_k_remainder(A, B, t),
            "the k tiles were not accumulated (C tile = only the last partial product; use +=)":
                lambda: ref.tiled_matmul_last_k_tile(A, B, t),
        }))


@check("tiled_matmul", points=1)
def test_tiled_matmul_multiples_of_tile(student):
    _check_tiled(student, 32, 48, 16, None, 0)
    _check_tiled(student, 8, 8, 8, 4, 1)


@check("tiled_matmul", points=1)
def test_tiled_matmul_remainders(student):
    _check_tiled(student, 33, 17, 20, None, 2)
    _check_tiled(student, 10, 9, 6, 4, 3)
    _check_tiled(student, 5, 3, 7, 16, 4)


@check("tiled_matmul", points=1)
def test_tiled_matmul_edge_cases(student):
    _check_tiled(student, 1, 1, 1, None, 5)
    _check_tiled(student, 7, 40, 1, 8, 6)
    _check_tiled(student, 3, 5, 2, 1, 7)
    _check_tiled(student, 20, 3, 35, 16, 8)


# -- SAXPY_KERNEL --------------------------------------------------------------------------------

_FETCH = '''
def entry():
    try:
        src = SAXPY_KERNEL
    except NameError:
        return ["not a string", "undefined name"]
    if not isinstance(src, str):
        return ["not a string", type(src).__name__]
    return ["ok", src[:20000]]
'''


def _source(student):
    kind, src = student.run(_FETCH, "entry")
    if kind != "ok":
        fail(f"SAXPY_KERNEL should be a Python string holding CUDA C source; it is a {src}.")
    return src


def _signature(src):
    sig = ref.saxpy_signature(src)
    if sig is None:
        plain = re.search(r"__global__\s+void\s+saxpy\s*\(", ref.strip_comments(src))
        if plain and not re.search(r'extern\s+"C"', src):
            fail('the kernel must be declared extern "C": without it C++ mangles the name and the launcher '
                 "cannot find `saxpy` in the compiled module.",
                 hint='missing extern "C"')
        fail('SAXPY_KERNEL must define exactly: extern "C" __global__ void saxpy(int n, float a, '
             "const float* x, float* y)  (same parameter order and types).")
    return sig


@check("SAXPY_KERNEL", points=1)
def test_saxpy_signature_and_bounds_check(student):
    src = _source(student)
    n, a, x, y = _signature(src)
    if not ref.has_bounds_check(src, n):
        fail(f"the kernel has no bounds check: the grid is rounded up to whole blocks, so threads with "
             f"index >= {n} exist and must not touch memory. Guard the body with `if (i < {n})`.",
             hint="no bounds check (compiles, but writes past the end when n is not a multiple of the block)")
    body = ref.strip_comments(src)
    if re.search(rf"if\s*\(\s*\w+\s*<=\s*{re.escape(n)}\s*\)", body):
        fail(f"the bounds check uses <=: index {n} itself is one past the end. Use `i < {n}`.")


@check("SAXPY_KERNEL", points=1)
def test_saxpy_index_and_arithmetic(student):
    src = _source(student)
    n, a, x, y = _signature(src)
    body = ref.strip_comments(src)
    if not all(word in body for word in ("blockIdx", "blockDim", "threadIdx")):
        fail("the global index must combine the block and the thread: i = blockIdx.x * blockDim.x + threadIdx.x "
             "(threadIdx.x alone makes every block work on the first blockDim elements).")
    ya, xa = re.escape(y), re.escape(x)
    idx = r"\[\s*(\w+)\s*\]"
    assign = re.search(rf"{ya}{idx}\s*=\s*([^;]*);", body)
    plus_assign = re.search(rf"{ya}{idx}\s*\+=\s*([^;]*);", body)
    ok = False
    if plus_assign and re.search(rf"\b{re.escape(a)}\b", plus_assign.group(2)) and re.search(rf"\b{xa}\s*\[", plus_assign.group(2)):
        ok = True
    if assign:
        rhs = assign.group(2)
        ok = ok or (re.search(rf"\b{re.escape(a)}\b", rhs) is not None and re.search(rf"\b{xa}\s*\[", rhs) is not None
                    and re.search(rf"\b{ya}\s*\[", rhs) is not None)
    if not ok:
        fail(f"the kernel must compute {y}[i] = {a} * {x}[i] + {y}[i] (SAXPY updates y in place: "
             f"`{y}[i] = {a} * {x}[i]` forgets the old {y}).")


_DIRECTIVE = re.compile(r"^\s*#", re.M)


@check("SAXPY_KERNEL", points=1, timeout=120)
def test_saxpy_compiles_with_nvcc(student):
    from dlkit.backend import nvcc
    src = _source(student)
    if _DIRECTIVE.search(src):
        fail("SAXPY_KERNEL must not use preprocessor directives (#include, #define, ...): the kernel needs none, "
             "and the grader refuses to compile them.")
    if not nvcc.nvcc_available():
        pytest.skip("nvcc is not installed on the grading machine; the compile check cannot run")
    result = nvcc.compile_ptx(src, arch="sm_80", timeout=90.0, filename="saxpy.cu")
    if not result.ok:
        log = result.first_lines(8)
        fail("SAXPY_KERNEL does not compile with nvcc:\n" + log)
    if "saxpy" not in result.entries:
        fail(f"the compiled module has no kernel named `saxpy` (found {result.entries}); declare it "
             'extern "C" so that its name is not mangled.', hint='missing extern "C"')
