"""Hidden checks for 06_gpu_kernels: every piece is graded by what it DOES.

Points: grid_size 2, tiled_matmul 3, SAXPY_KERNEL 3.

* ``grid_size``: values (incl. n = 0, exact multiples, huge n) and ValueError on bad input.
* ``tiled_matmul``: run on matrices readable only tile by tile (see ``_TILED_DRIVER``): the
  result, that every read is one aligned tile (so ``A @ B`` / ``np.dot`` / ``np.asarray(A)`` on
  the whole matrix score 0), that every tile is read, and ValueError for mismatched shapes.
* ``SAXPY_KERNEL``: CUDA C, compiled and RUN inside a sandbox on the CPU emulator at sizes
  1, 17, 1000, 1025 with exact, over-sized and odd launch configurations; guard pages and
  canaries catch any access outside x and y.  The source text is never compiled, preprocessed
  or parsed in this (trusted) process, and no regular expression awards or removes points.
"""
from __future__ import annotations

import numpy as np
import pytest

from autograder import cudaemu  # noqa: F401 - the emulator's home (runtime sources)
from autograder.api import load_reference, check, diagnose, expect_array, expect_scalar, fail
from autograder.cudaemu import grading as kernels
from autograder.cudaemu.grading import ResultCache


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
    # the point is for rejecting ONLY what is invalid: a function that raises for everything
    # (or answers valid input wrongly) earns nothing here
    for n, bs in [(5, 4), (0, 32), (256, 256)]:
        kind, message = student.run(_RAISES, "entry", n, bs)
        want = repr(ref.grid_size(n, bs))
        if kind != "returned" or message != want:
            what = f"returned {message}" if kind == "returned" else f"raised {kind}: {message}"
            fail(f"grid_size({n}, {bs}) is valid input and should return {want}, but {what}; "
                 "rejecting input is only right for n < 0 or block_size < 1.")
    for n, bs in [(-1, 128), (10, 0), (10, -4), (-5, -5)]:
        kind, message = student.run(_RAISES, "entry", n, bs)
        if kind != "ValueError":
            what = f"returned {message}" if kind == "returned" else f"raised {kind}: {message}"
            fail(f"grid_size({n}, {bs}) should raise ValueError (n < 0 or block_size < 1), but {what}.")


# -- tiled_matmul --------------------------------------------------------------------------------
# The student's function gets A and B as matrices that can only be READ ONE TILE AT A TIME, as a
# CUDA block reads device memory into shared tiles: ``A[i0:i0+tile, k0:k0+tile]`` with i0, k0
# multiples of ``tile`` (clipped at the edges) returns a private copy of that tile; any other
# read (a row, a column, a misaligned block, the whole matrix through np.asarray / A @ B /
# np.dot) and any write raises, and is recorded.  So ``tiled_matmul = lambda A, B, tile=16: A @ B``
# scores 0, and a correct result means the product was assembled from tile products.
_TILED_DRIVER = '''
class TileOnlyMatrix:
    """A (rows, cols) matrix readable only tile by tile: M[r0:r0+tile, c0:c0+tile], r0 and c0
    multiples of tile (clipped at the edges); each read returns a private copy."""

    __array_priority__ = 10_000

    def __init__(self, data, tile, name, log):
        self.shape, self.dtype, self.ndim, self.size = data.shape, data.dtype, 2, data.size
        self._read = _make_reader(data, tile, name, log)

    def __getitem__(self, key):
        return self._read(key)

    def __setitem__(self, key, value):
        raise _refuse("writes into", self)

    def __array__(self, *args, **kwargs):
        raise _refuse("converts to an array all of", self)

    def __matmul__(self, other):
        raise _refuse("multiplies all of", self)

    __rmatmul__ = __matmul__

    def __iter__(self):
        raise _refuse("iterates over the rows of", self)

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        return f"<TileOnlyMatrix {self.shape}>"


def _refuse(what, matrix):
    matrix._read(None)   # records the violation
    return TypeError(f"tiled_matmul {what} an input matrix at once; read it one tile at a time, "
                     "M[r0:r0 + tile, c0:c0 + tile] with r0, c0 multiples of tile (see the task)")


def _make_reader(data, tile, name, log):
    rows, cols = data.shape

    def read(key):
        if key is None:
            log["violations"].append(f"{name}: whole-matrix access")
            return None
        if type(key) is not tuple or len(key) != 2 or not all(type(k) is slice for k in key):
            log["violations"].append(f"{name}[{key!r:.60}]")
            raise TypeError(f"tiled_matmul read {name}[{key!r:.60}]; read whole tiles only: "
                            f"{name}[r0:r0 + tile, c0:c0 + tile]")
        (r0, r1, rs), (c0, c1, cs) = key[0].indices(rows), key[1].indices(cols)
        ok = (rs == 1 and cs == 1 and r0 % tile == 0 and c0 % tile == 0 and r0 < rows and c0 < cols
              and r1 == min(r0 + tile, rows) and c1 == min(c0 + tile, cols))
        if not ok:
            log["violations"].append(f"{name}[{r0}:{r1}, {c0}:{c1}]")
            raise TypeError(f"tiled_matmul read {name}[{r0}:{r1}, {c0}:{c1}], which is not one tile "
                            f"(tile = {tile}): read {name}[r0:r0 + tile, c0:c0 + tile] with r0, c0 "
                            "multiples of tile")
        log[name].append([r0 // tile, c0 // tile])
        return data[r0:r1, c0:c1].copy()

    return read


def entry(A, B, tile, pass_tile):
    log = {"A": [], "B": [], "violations": []}
    t = 16 if tile is None else tile
    a, b = TileOnlyMatrix(A.copy(), t, "A", log), TileOnlyMatrix(B.copy(), t, "B", log)
    C = tiled_matmul(a, b, tile=tile) if pass_tile else tiled_matmul(a, b)
    return {"C": C, "A": log["A"], "B": log["B"], "violations": log["violations"][:20]}
'''


def _tiles(log, name: str) -> set[tuple[int, int]]:
    reads = log.get(name)
    if type(reads) is not list or not all(type(r) is list and len(r) == 2 and all(type(v) is int for v in r)
                                          for r in reads):
        fail("internal: the tile log is malformed")
    return {tuple(r) for r in reads}


def _check_tiled(student, m, k, n, tile, seed):
    rng = np.random.default_rng(seed)
    A, B = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    A0, B0 = A.copy(), B.copy()
    t = 16 if tile is None else tile
    case = f"A ({m}, {k}), B ({k}, {n}), tile = {t}" + (" (the default)" if tile is None else "")
    log = student.run(_TILED_DRIVER, "entry", A, B, tile, tile is not None)
    if type(log) is not dict or set(log) != {"C", "A", "B", "violations"}:
        fail("internal: unexpected driver result")
    if type(log["violations"]) is not list or log["violations"]:
        fail(f"tiled_matmul must read A and B one tile at a time ({case}); it read "
             f"{', '.join(map(str, log['violations'][:3]))}.")
    got = expect_array(log["C"], shape=(m, n), dtype_kind="f", name=f"C for {case}")
    if got.dtype != np.float64:
        fail(f"C for {case} has dtype {got.dtype}; float64 inputs give a float64 result.")
    want = A0 @ B0
    if not np.allclose(got, want, rtol=1e-9, atol=1e-9):
        fail(f"tiled_matmul is wrong for {case}.", got=got, expected=want, hint=diagnose(got, {
            "the remainder tiles were dropped (shapes that are not multiples of tile need a last, smaller tile)":
                lambda: ref.tiled_matmul_no_remainder(A0, B0, t),
            "the last partial tile of the inner dimension k was dropped":
                lambda: ref.tiled_matmul_no_k_remainder(A0, B0, t),
            "the k tiles were not accumulated (C tile = only the last partial product; use +=)":
                lambda: ref.tiled_matmul_last_k_tile(A0, B0, t),
        }, rtol=1e-9, atol=1e-9))
    need_a = {(i, p) for i in range(-(-m // t)) for p in range(-(-k // t))}
    need_b = {(p, j) for p in range(-(-k // t)) for j in range(-(-n // t))}
    if not need_a <= _tiles(log, "A") or not need_b <= _tiles(log, "B"):
        fail(f"tiled_matmul did not read every tile of A and B ({case}); C cannot be right "
             "without all of them.")


@check("tiled_matmul", points=1)
def test_tiled_matmul_multiples_of_tile(student):
    _check_tiled(student, 32, 48, 16, None, 0)
    _check_tiled(student, 8, 8, 8, 4, 1)


@check("tiled_matmul", points=1)
def test_tiled_matmul_remainders(student):
    _check_tiled(student, 33, 17, 20, None, 2)
    _check_tiled(student, 10, 9, 6, 4, 3)
    _check_tiled(student, 5, 3, 7, 16, 4)


_MISMATCH = '''
def entry(A, B):
    try:
        result = tiled_matmul(A, B, tile=4)
    except ValueError:
        return "ValueError"
    except Exception as exc:
        return f"raised {type(exc).__name__}: {str(exc)[:200]}"
    return "returned " + type(result).__name__
'''


@check("tiled_matmul", points=1)
def test_tiled_matmul_edge_cases(student):
    _check_tiled(student, 1, 1, 1, None, 5)
    _check_tiled(student, 7, 40, 1, 8, 6)
    _check_tiled(student, 3, 5, 2, 1, 7)
    _check_tiled(student, 20, 3, 35, 16, 8)
    outcome = student.run(_MISMATCH, "entry", np.ones((2, 3)), np.ones((4, 2)))
    if outcome != "ValueError":
        fail(f"tiled_matmul(A (2, 3), B (4, 2)) must raise ValueError (inner dimensions differ), "
             f"but it {outcome if isinstance(outcome, str) else 'did something else'}.")


# -- SAXPY_KERNEL --------------------------------------------------------------------------------
# The kernel is RUN.  Its source (a str fetched from the student's sandbox) goes into a second
# sandbox holding no student Python and no grader file, with the C++ toolchain mounted read-only;
# there it is compiled with the CUDA emulator (autograder/cudaemu) and launched on guard-paged
# buffers with canaries, for every case of ref.SAXPY_CASES; only the buffers after each launch,
# the launch status and a capped compiler log come back.  One compile and run per submission
# (cached by source), shared by the three checks.  Nothing of the text is inspected here.
_FETCH = '''
def entry(limit):
    try:
        src = SAXPY_KERNEL
    except NameError:
        return ["missing", 0, ""]
    if not isinstance(src, str):
        return ["not a string", 0, type(src).__name__]
    return ["ok", len(src), str.__str__(src)[:limit]]
'''

_CACHE = ResultCache()


def _source(student) -> str:
    reply = student.run(_FETCH, "entry", kernels.MAX_SOURCE_CHARS)
    if type(reply) is not list or len(reply) != 3 or type(reply[2]) is not str or type(reply[1]) is not int:
        fail("SAXPY_KERNEL could not be read.")
    kind, length, src = reply
    if kind == "missing":
        fail("SAXPY_KERNEL is not defined: assign the CUDA C source to SAXPY_KERNEL in its answer cell.")
    if kind != "ok":
        fail(f"SAXPY_KERNEL should be a Python string holding CUDA C source; it is a {src[:80]}.")
    if length > kernels.MAX_SOURCE_CHARS:
        fail(f"SAXPY_KERNEL has {length} characters; a SAXPY kernel needs a few hundred "
             f"(at most {kernels.MAX_SOURCE_CHARS} are accepted).")
    return src


def _cases():
    out = []
    for group, n, a, block, grid, at_end, x, y in ref.saxpy_inputs():
        out.append({"grid": [grid, 1, 1], "block": [block, 1, 1], "at_end": at_end,
                    "args": [n, a, {"buffer": x}, {"buffer": y}], "_group": group})
    return out


_CONTRACT = 'extern "C" __global__ void saxpy(int n, float a, const float* x, float* y)'


def _run(student):
    """``[(where it ran, cases, runs)]``: the emulator's runs and, where a GPU is usable and the
    kernel ran there, the GPU's (both must be right; a kernel that uses a CUDA feature the
    emulator lacks is graded on the GPU alone)."""
    src = _source(student)
    cases = _cases()
    sent = [{k: v for k, v in c.items() if k != "_group"} for c in cases]
    result = _CACHE.get(src, ref.SAXPY_SPEC, sent)
    gpu = _CACHE.get(src, ref.SAXPY_SPEC, sent, device="gpu") if kernels.gpu_usable() else None
    if gpu is not None and gpu["status"] == "ran":
        if result["status"] in ("compile_error", "no_kernel", "unavailable"):
            return [("GPU", cases, gpu["runs"])]
        _verdict(result)
        return [("CPU emulator", cases, result["runs"]), ("GPU", cases, gpu["runs"])]
    _verdict(result)
    return [("CPU emulator", cases, result["runs"])]


def _verdict(result):
    """Fail (or skip) unless the kernel compiled and ran."""
    status = result["status"]
    if status == "unavailable":
        pytest.skip(f"kernels cannot be run on this grading machine: {result['reason']}")
    if status in ("compile_error", "compile_timeout"):
        log = result["log"].strip()
        if "dlkit_contract.h" in log:
            fail("your kernel is not declared as the launcher expects:\n    " + _CONTRACT + "\n"
                 '(extern "C" keeps the name unmangled; the parameter types and their order must be '
                 "exactly these; names are yours to choose).\nCompiler output:\n" + log[:1200])
        what = "did not finish compiling in time" if status == "compile_timeout" else "does not compile"
        fail(f"SAXPY_KERNEL {what} (compiled as C++ with the CUDA emulator's definitions of "
             "threadIdx, blockIdx, blockDim, gridDim, __global__, ...).\nCompiler output:\n" + log[:1500])
    if status == "no_kernel":
        fail("the compiled kernel has no function named saxpy.")
    if status == "timeout":
        fail(f"running your kernel did not finish: {result['reason']} (an endless loop?).")
    if status != "ran":
        fail(f"your kernel could not be run: {result['reason'] or status}.")


def _hint(got, x, y, a, n, block):
    i = np.arange(n)
    correct = ref.saxpy(a, x, y)
    variants = {
        "y[i] = a * x[i]: the old y[i] is not added (SAXPY updates y in place: y = a*x + y)":
            lambda: (np.float32(a) * x).astype(np.float32),
        "y is left unchanged (nothing was added to it)": lambda: y,
        "a is used as an integer (declare it float)":
            lambda: ref.saxpy(float(int(a)), x, y),
        "only the first blockDim.x elements are updated (the index needs blockIdx.x * blockDim.x + threadIdx.x)":
            lambda: np.where(i < block, correct, y),
        "y = x + a*y (x and y swapped)": lambda: (x + np.float32(a) * y).astype(np.float32),
    }
    safe = {}
    for k, v in variants.items():
        try:
            value = v()
        except Exception:  # noqa: BLE001
            continue
        if not np.allclose(value, correct, rtol=RTOL, atol=ATOL):   # never name a mistake equal to right
            safe[k] = value
    return diagnose(got, safe, rtol=RTOL, atol=ATOL)


RTOL, ATOL = 1e-5, 1e-5


def _check_group(student, group: str):
    for device, cases, runs in _run(student):
        _check_runs(device, cases, runs, group)


def _check_runs(device: str, cases: list, runs: list, group: str):
    names = ["n", "a", "x", "y"]
    for case, run in zip(cases, runs):
        if case["_group"] != group:
            continue
        n, a = case["args"][0], case["args"][1]
        x, y = case["args"][2]["buffer"], case["args"][3]["buffer"]
        block, grid = case["block"][0], case["grid"][0]
        where = (f"n = {n}, a = {a}, launched with {grid} block(s) of {block} threads "
                 f"({grid * block} threads) on the {device}")
        if run["code"] == 4:
            arg = run["fault_arg"]
            off = run["fault_offset"]
            if arg in (2, 3) and off is not None:
                buf = names[arg]
                index = off // 4
                pos = (f"{buf}[{index}], past the end of {buf} (n = {n})" if index >= n
                       else f"{buf}[{index}], before the start of {buf}" if index < 0
                       else f"inside {buf}")
                fail(f"your kernel accessed memory outside x / y ({pos}) for {where}: "
                     f"{run['message']}. Threads whose index is >= n must not touch memory.")
            fail(f"your kernel made an invalid memory access for {where}: {run['message']}.")
        if run["code"] != 0:
            fail(f"your kernel's launch failed for {where}: {run['message']}.")
        for k, buf in ((0, "x"), (1, "y")):
            if run["overwritten"][k]:
                side = "past the end" if case["at_end"] is False else "before the start"
                fail(f"your kernel wrote {run['overwritten'][k]} byte(s) {side} of {buf} for {where}. "
                     "Threads whose index is >= n (or < 0) must not touch memory.")
        x_after, y_after = run["buffers"]
        if not np.array_equal(x_after, x):
            fail(f"your kernel changed x for {where}; SAXPY only writes y (x is const).",
                 got=x_after, expected=x)
        want = ref.saxpy(a, x, y)
        if not np.allclose(y_after, want, rtol=RTOL, atol=ATOL):
            fail(f"y after the launch is not a*x + y for {where}.", got=y_after, expected=want,
                 hint=_hint(y_after, x, y, a, n, block))


@check("SAXPY_KERNEL", points=1, timeout=90)
def test_saxpy_values_at_sizes_1_17_1000_1025(student):
    _check_group(student, "sizes")


@check("SAXPY_KERNEL", points=1, timeout=90)
def test_saxpy_threads_past_n_touch_no_memory(student):
    _check_group(student, "bounds")


@check("SAXPY_KERNEL", points=1, timeout=90)
def test_saxpy_odd_launch_configurations(student):
    _check_group(student, "configs")
