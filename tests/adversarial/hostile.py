"""Hostile submissions for the fixture assignment, with the outcome each must get.

Each case: ``cells`` (answer cells; the correct ones except where the case replaces them) or
``raw`` (the notebook file's text), optional ``files`` written beside the notebook in the
submission folder, ``zero``: the functions that must score 0 (all others must get full marks),
and ``says``: a substring the output of a zeroed function's checks must contain (the "clear
reason").  ``{SECRET_PATHS}`` in a cell is replaced by a list of absolute paths the sandbox must
not be able to read (hidden checks, source notebook, gradebook, other students' submissions).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from course import CORRECT, notebook, with_cells


@dataclass
class Case:
    cells: dict[str, str] | None = None
    raw: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    zero: tuple[str, ...] = ()
    says: str = ""
    needs: str = ""          # "network" / "filesystem" / "pids": skip when the sandbox could not isolate it
    notebook_kwargs: dict = field(default_factory=dict)


SCALE_OK = "def scale(x, a):\n    return x * a\n"

CASES: dict[str, Case] = {
    # -- exiting ------------------------------------------------------------------------------
    "sys_exit_at_import": Case(with_cells(scale="import sys\nsys.exit(0)\n" + SCALE_OK),
                               zero=("scale",), says="SystemExit"),
    "os_exit_at_import": Case(with_cells(scale="import os\nos._exit(0)\n" + SCALE_OK),
                              zero=("scale",), says="crashed"),
    "os_exit_in_a_cell_that_also_imports_numpy": Case(with_cells(
        count="import numpy as np\nimport os\nos._exit(0)\n"), zero=("count",), says="crashed"),
    "os_exit_in_function": Case(with_cells(count="def count(widths):\n    import os\n    os._exit(0)\n"),
                                zero=("count",), says="crashed"),
    "sys_exit_in_function": Case(with_cells(vjp="def vjp(A, B, G):\n    raise SystemExit(0)\n"),
                                 zero=("vjp",), says="SystemExit"),
    # -- tampering with the grader ------------------------------------------------------------
    "monkeypatch_numpy_and_builtins": Case(with_cells(scale=(
        "import numpy, builtins\n"
        "numpy.allclose = lambda *a, **k: True\n"
        "numpy.testing.assert_allclose = lambda *a, **k: None\n"
        "numpy.isfinite = lambda x: numpy.ones(numpy.shape(x), bool)\n"
        "builtins.isinstance = lambda *a: True\n"
        "builtins.type = lambda *a: numpy.ndarray\n"
        "def scale(x, a):\n    return x\n")), zero=("scale",), says="scale(x, 2.5) is wrong"),
    "redefine_test_helpers": Case(with_cells(scale=(
        "def fail(*a, **k):\n    pass\n"
        "def expect_array(x, *a, **k):\n    return x\n"
        "def check(*a, **k):\n    return lambda f: f\n"
        "class CheckFailure(Exception):\n    pass\n"
        "def scale(x, a):\n    return x + 1\n")), zero=("scale",), says="wrong"),
    "read_hidden_files": Case(with_cells(scale=(
        "def scale(x, a):\n"
        "    import os, glob\n"
        "    found = []\n"
        "    for p in {SECRET_PATHS}:\n"
        "        try:\n"
        "            with open(p) as fh:\n"
        "                found.append(fh.read(10))\n"
        "        except OSError:\n"
        "            pass\n"
        "    import sys\n"
        "    skip = tuple(p for p in sys.path if p) + ('/usr', '/proc', '/sys', '/dev')\n"
        "    secret = {'test_fixture.py', 'gradebook.db', '99_fixture.ipynb', 'GRADED.md', 'reference.py',\n"
        "              'harness.py', 'results.json'}\n"
        "    for root, dirs, files in os.walk('/'):\n"
        "        if root.startswith(skip):\n"
        "            dirs[:] = []\n"
        "            continue\n"
        "        found += [os.path.join(root, f) for f in files if f in secret]\n"
        "    return x * a if not found else x * 0 + len(found)\n")),
        zero=(), needs="filesystem"),
    "write_fake_results": Case(with_cells(scale=(
        "def scale(x, a):\n"
        "    import json, os\n"
        "    fake = json.dumps({'score': 99, 'max_score': 8, 'tests': []})\n"
        "    for p in ['results.json', '../results.json', '/tmp/results.json'] + {SECRET_PATHS}:\n"
        "        try:\n"
        "            d = os.path.dirname(p) or '.'\n"
        "            with open(os.path.join(d, 'results.json'), 'w') as fh:\n"
        "                fh.write(fake)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return x\n")), zero=("scale",), says="wrong"),
    # -- resources ----------------------------------------------------------------------------
    "infinite_loop": Case(with_cells(scale="def scale(x, a):\n    while True:\n        pass\n"),
                          zero=("scale",), says="did not finish"),
    "infinite_loop_at_import": Case(with_cells(init="while True:\n    pass\n"),
                                    zero=("init",), says="did not finish"),
    "memory_bomb": Case(with_cells(count="def count(widths):\n    x = bytearray(1 << 40)\n    return 26\n"),
                        zero=("count",), says="MemoryError"),
    "memory_bomb_numpy": Case(with_cells(count=(
        "def count(widths):\n    blocks = []\n    while True:\n        blocks.append(np.empty(1 << 24))\n")),
        zero=("count",), says="MemoryError"),
    "fork_bomb": Case(with_cells(vjp=(
        "def vjp(A, B, G):\n    import os\n    while True:\n        os.fork()\n")), zero=("vjp",)),
    "gigantic_print": Case(with_cells(count=(
        "def count(widths):\n    import sys\n    sys.stdout.write('x' * 50_000_000)\n    print('y' * 10_000_000)\n"
        "    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))\n")), zero=()),
    "gigantic_raw_output": Case(with_cells(count=(
        "def count(widths):\n    import os\n    for _ in range(64):\n        os.write(1, b'z' * (1 << 20))\n"
        "    return 26\n")), zero=("count",), says="File too large"),
    "network_access": Case(with_cells(scale=(
        "def scale(x, a):\n    import socket\n    for host in [('1.1.1.1', 53), ('8.8.8.8', 53), ('93.184.216.34', 80)]:\n"
        "        try:\n            s = socket.create_connection(host, timeout=1)\n            s.close()\n"
        "            return x * 0\n        except OSError:\n            pass\n    return x * a\n")),
        zero=(), needs="network"),
    # -- returning hostile values -------------------------------------------------------------
    "ndarray_subclass": Case(with_cells(scale=(
        "class Liar(np.ndarray):\n    def __eq__(self, other):\n        return True\n"
        "    def __array_finalize__(self, obj):\n        pass\n"
        "def scale(x, a):\n    return (x * 0).view(Liar)\n")), zero=("scale",), says="subclass"),
    "eq_always_true": Case(with_cells(vjp=(
        "class Same:\n    def __eq__(self, other):\n        return True\n    shape = (3, 4)\n"
        "def vjp(A, B, G):\n    return Same(), Same()\n")), zero=("vjp",), says="not plain data"),
    "nan_result": Case(with_cells(scale="def scale(x, a):\n    return x * float('nan')\n"),
                       zero=("scale",), says="NaN"),
    "empty_result": Case(with_cells(scale="def scale(x, a):\n    return np.empty((0,))\n"),
                         zero=("scale",), says="shape"),
    "broadcastable_wrong_shape": Case(with_cells(scale="def scale(x, a):\n    return (x * a)[None]\n"),
                                      zero=("scale",), says="shape"),
    "object_dtype_array": Case(with_cells(scale="def scale(x, a):\n    return np.array([x * a, None], dtype=object)\n"),
                               zero=("scale",), says="dtype"),
    "pickle_payload": Case(with_cells(count=(
        "import pickle\nclass Boom:\n    def __reduce__(self):\n        return (print, ('pwned',))\n"
        "def count(widths):\n    return pickle.dumps(Boom())\n")), zero=("count",), says="not plain data"),
    "forged_pickle_frame": Case(with_cells(count=(
        "def count(widths):\n    import io, json, os, struct, pickle\n"
        "    blob = pickle.dumps(26)\n"
        "    head = json.dumps({'ok': True, 'value': {'$t': 'nd', 'b': 0}, '_blobs': [len(blob)]}).encode()\n"
        "    frame = struct.pack('>I', len(head)) + head + blob\n"
        "    for fd in range(3, 64):\n        try:\n            os.write(fd, frame)\n        except OSError:\n            pass\n"
        "    import time\n    time.sleep(30)\n")), zero=("count",)),
    "pytest_skip_and_exit": Case(with_cells(
        count="def count(widths):\n    import pytest\n    pytest.skip('not today')\n",
        vjp="def vjp(A, B, G):\n    import pytest\n    pytest.exit('bye', returncode=0)\n"),
        zero=("count", "vjp")),
    "skip_exception_lookalike": Case(with_cells(count=(
        "class Skipped(BaseException):\n    pass\n"
        "def count(widths):\n    raise Skipped('skip me')\n")), zero=("count",), says="Skipped"),
    # -- notebook/IPython tricks --------------------------------------------------------------
    "ipython_hooks_and_magics": Case(with_cells(scale=(
        "ip = get_ipython()\n"
        "ip.events.register('post_run_cell', lambda *a: None)\n"
        "ip.input_transformers_post.append(lambda lines: ['scale = lambda x, a: x\\n'])\n"
        "%time y = 1\n"
        "!echo hi\n" + SCALE_OK)), zero=()),
    "frame_and_gc_peeking": Case(with_cells(vjp=(
        "def vjp(A, B, G):\n    import gc, sys\n    cands = [o for o in gc.get_objects() if type(o) is np.ndarray\n"
        "             and o.shape == (3, 4) and o is not A]\n"
        "    f = sys._getframe()\n    while f is not None:\n"
        "        cands += [v for v in f.f_locals.values() if type(v) is np.ndarray and v.shape == (3, 4) and v is not A]\n"
        "        f = f.f_back\n"
        "    dA = cands[0] if cands else A\n    return dA, np.zeros((4, 5))\n")), zero=("vjp",)),
    "replace_np_random": Case(with_cells(init=(
        "np.random.seed(7)\nnp.random.default_rng = lambda *a, **k: None\n"
        "def init(n, m, generator=None):\n    return 0.5 * (2 * np.random.random((n, m)) - 1)\n")),
        zero=("init",), says="init draws are wrong"),
    "mutates_inputs": Case(with_cells(scale="def scale(x, a):\n    x *= a\n    return x\n"), zero=()),
    "env_detection": Case(with_cells(scale=(
        "def scale(x, a):\n    import os\n"
        "    allowed = {'PATH', 'LANG', 'LC_ALL', 'OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS',\n"
        "               'MPLBACKEND', 'DLKIT_BACKEND', 'PYTHONHASHSEED', 'PYTHONDONTWRITEBYTECODE', 'HOME', 'TMPDIR'}\n"
        "    leaky = [k for k in os.environ if k not in allowed]\n"
        "    leaky += [v for v in os.environ.values() if 'autograder' in v or 'checks' in v or 'submitted' in v]\n"
        "    return x * a if not leaky else x * 0\n")), zero=()),
    "conftest_and_sitecustomize_beside_notebook": Case(
        with_cells(scale="def scale(x, a):\n    return x\n"),
        files={"conftest.py": "open('/tmp/dlkit-hostile-conftest-ran', 'w').write('x')\n"
                              "import pytest\n@pytest.fixture\ndef student():\n    raise SystemExit\n",
               "sitecustomize.py": "open('/tmp/dlkit-hostile-sitecustomize-ran', 'w').write('x')\n",
               "usercustomize.py": "open('/tmp/dlkit-hostile-sitecustomize-ran', 'w').write('x')\n"},
        zero=("scale",), says="wrong"),
    # -- notebook structure ---------------------------------------------------------------------
    "locked_cells_deleted_and_edited": Case(cells=CORRECT, notebook_kwargs={"with_tests": False, "extra": [
        {"cell_type": "markdown", "metadata": {"nbgrader": {"locked": True, "grade_id": "intro", "solution": False,
                                                            "grade": False}}, "source": "EDITED locked cell"}]}),
    "malformed_json": Case(raw='{"cells": [ {"cell_type": "code", ', zero=("scale", "vjp", "Counter", "init", "count"),
                           says="not valid notebook JSON"),
    "not_nbformat_4": Case(raw=json.dumps({"nbformat": 3, "worksheets": [], "cells": []}),
                           zero=("scale", "vjp", "Counter", "init", "count"), says="nbformat"),
    "wrong_assignment": Case(cells={"topological_order": "def topological_order(output):\n    return [output]\n",
                                    "exp_gradient": "def exp_gradient(self, out_grad, node):\n    return (out_grad * node,)\n"},
                             zero=("scale", "vjp", "Counter", "init", "count"), says="01_autodiff_backprop"),
    "answer_cell_deleted": Case(with_cells(count=None), zero=("count",), says="no answer cell"),
    # -- self-consistent cheats -----------------------------------------------------------------
    "constant_forward_zero_backward": Case(with_cells(
        vjp="def vjp(A, B, G):\n    return np.zeros_like(A), np.zeros_like(B)\n",
        scale="def scale(x, a):\n    return np.ones_like(x)\n"), zero=("vjp", "scale"), says="wrong"),
    "deterministic_initializer_right_moments": Case(with_cells(init=(
        "def init(n, m, generator=None):\n"
        "    u = (np.arange(n * m) + 0.5) / (n * m)\n    return (0.5 * (2 * u - 1)).reshape(n, m)\n")),
        zero=("init",), says="init draws are wrong"),
    "stateless_counter": Case(with_cells(Counter=(
        "class Counter:\n    def __init__(self, start):\n        self.start = start\n"
        "    def step(self):\n        return self.start * 2\n")), zero=("Counter",), says="keep its state"),
    # -- a legitimate cross-cell dependency must keep working -----------------------------------
    "helper_from_other_cell": Case(with_cells(
        count="def count(widths):\n    return _pairs(widths)\n",
        scale="def _pairs(w):\n    return sum(a * b + b for a, b in zip(w[:-1], w[1:]))\n" + SCALE_OK), zero=()),
}


# -- h2's payloads (issue 10 items 6-9): resources of the whole tree, PIDs, parse bombs ----------
SLEEPER = "777.25"    # children of escaped_children_are_killed run `sleep 777.25`: none may survive
MAGICS_200KB = ("%time y = 1\n" * 30 + "z = 1\n" * 32_000)[:199_000 - len(SCALE_OK) - 1] + "\n" + SCALE_OK
CHAIN = 12_000

def children_holding_memory(signature: str, mb: int, *, sleep_s: float, wait_s: float, returns: str) -> str:
    """Source of a function ``signature`` that forks three children, each touching ``mb`` MB and
    reporting once it holds it; ``held`` is how many reported AND are still alive after up to
    ``wait_s`` seconds (counting reports alone races: the OOM killer may take a child after it
    reported); the function returns the expression ``returns``."""
    return (
        f"def {signature}:\n"
        "    import os, time\n"
        "    r, w = os.pipe()\n"
        "    kids = []\n"
        "    for _ in range(3):\n"
        "        try:\n"
        "            pid = os.fork()\n"
        "        except OSError:\n"
        "            break\n"
        "        if pid == 0:\n"
        "            try:\n"
        f"                block = b'x' * ({mb} << 20)\n"
        "                os.write(w, b'1')\n"
        f"                time.sleep({sleep_s})\n"
        "            finally:\n"
        "                os._exit(0)\n"
        "        kids.append(pid)\n"
        "    os.close(w)\n"
        "    got, t0 = b'', time.time()\n"
        "    os.set_blocking(r, False)\n"
        f"    while len(got) < 3 and time.time() - t0 < {wait_s}:\n"
        "        try:\n"
        "            got += os.read(r, 8) or b''\n"
        "        except BlockingIOError:\n"
        "            time.sleep(0.05)\n"
        "    alive = sum(1 for p in kids if os.waitpid(p, os.WNOHANG) == (0, 0))\n"
        "    held = min(len(got), alive)\n"
        f"    return {returns}\n")


H2_CASES: dict[str, Case] = {
    # memory: three children each touching 600 MB would hold 1.8 GB against the 1536 MB budget of
    # the whole tree (each is under its own 1536 MB RLIMIT_AS): only a per-tree limit stops it;
    # the answer is right only if all three held their memory at once (still alive at the end:
    # the OOM killer may take a child after it reported).
    "memory_held_by_children": Case(with_cells(count=children_holding_memory(
        "count(widths)", 600, sleep_s=20, wait_s=2.5,
        returns="sum(a * b + b for a, b in zip(widths[:-1], widths[1:])) if held >= 3 else -held")),
        zero=("count",)),
    # children that leave the process group and the session, then exec a recognisable sleep: the
    # answer is right, so full marks, but nothing may be left running after the batch.
    "escaped_children_are_killed": Case(with_cells(vjp=(
        "def vjp(A, B, G):\n"
        "    import os\n"
        "    for _ in range(8):\n"
        "        try:\n"
        "            if os.fork() == 0:\n"
        "                try:\n"
        "                    os.setsid()\n"
        "                    if os.fork() == 0:\n"
        f"                        os.execv('/bin/sleep', ['sleep', '{SLEEPER}'])\n"
        "                finally:\n"
        "                    os._exit(0)\n"
        "        except OSError:\n"
        "            break\n"
        "    return G @ B.T, A.T @ G\n")), zero=()),
    "fork_bomb_at_import": Case(with_cells(init=(
        "import os\n"
        "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        pass\n")), zero=("init",)),
    # PID probing: the answer is right only if the sandbox sees few processes (a PID namespace)
    "pid_probe": Case(with_cells(scale=(
        "def scale(x, a):\n"
        "    import os\n"
        "    seen = []\n"
        "    for pid in range(1, 1 << 15):\n"
        "        try:\n"
        "            os.kill(pid, 0)\n"
        "            seen.append(pid)\n"
        "        except ProcessLookupError:\n"
        "            pass\n"
        "        except PermissionError:\n"
        "            seen.append(pid)\n"
        "    try:\n"
        "        listed = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "    except OSError:\n"
        "        listed = []\n"
        "    few = len(seen) <= 8 and len(listed) <= 8 and os.getppid() in (0, 1)\n"
        "    return x * a if few else x * 0\n")), zero=(), needs="pids"),
    # parse bombs: each cell scores 0 for what it defines, with the reason; nothing else moves
    "parse_bomb_memory": Case(with_cells(scale="x = " + "-" * 100_000 + "1\n" + SCALE_OK),
                              zero=("scale",), says="cannot run"),
    "parse_bomb_recursion": Case(with_cells(vjp="y = a" + ".b" * 60_000 + "\n"
                                            "def vjp(A, B, G):\n    return G @ B.T, A.T @ G\n"),
                                 zero=("vjp",), says="cannot run"),
    "parse_bomb_deep_brackets_and_magic": Case(with_cells(
        vjp="%time q = 1\nx = " + "[" * 5000 + "]" * 5000 + "\ndef vjp(A, B, G):\n    return G @ B.T, A.T @ G\n"),
        zero=("vjp",), says="cannot run"),
    "parse_bomb_30_magics_200kB": Case(with_cells(scale=MAGICS_200KB), zero=("scale",), says="cannot run"),
    "parse_bomb_transform_never_converges": Case(with_cells(Counter=(
        "x = %ls\n" * 520 + "class Counter:\n    def __init__(self, start):\n        self.value = start\n"
        "    def step(self):\n        self.value = self.value * 2\n        return self.value\n")),
        zero=("Counter",), says="cannot run"),
    # 12,000 answer cells, each using the previous one: linear, so the honest count (which needs
    # all of them) still gets full marks within the budgets
    "chain_12000_cells": Case(dict(
        {f"k{i}": (f"k{i} = k{i - 1}\n" if i else "k0 = 0\n") for i in range(CHAIN)},
        **dict(CORRECT, count=(f"def count(widths):\n    return k{CHAIN - 1} + "
                               "sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))\n"))),
        zero=(), notebook_kwargs={"with_tests": False}),
    # an infinite loop first, an honest function in the next check: the restart after the
    # timeout costs the honest check nothing (its clock starts when the sandbox is ready)
    "infinite_loop_then_honest": Case(with_cells(
        scale="def scale(x, a):\n    while True:\n        pass\n",
        vjp="import time\ndef vjp(A, B, G):\n    time.sleep(2.0)\n    return G @ B.T, A.T @ G\n"),
        zero=("scale",), says="did not finish"),
}


def notebook_text(case: Case, secret_paths: list[str]) -> str:
    if case.raw is not None:
        return case.raw
    cells = {k: v.replace("{SECRET_PATHS}", repr(secret_paths)) for k, v in (case.cells or {}).items()}
    return json.dumps(notebook(cells, **case.notebook_kwargs), indent=1)


CASES.update(H2_CASES)
#: cases graded twice (the second time with --force): every score must be the same
# memory_held_by_children is not here: which of its processes the kernel's OOM killer picks (a
# child, or the worker in the middle of another function's check) depends on timing, so its other
# functions' points may differ between two runs; what is deterministic (count scores 0, nothing
# left running) is asserted on the main batch.
RERUN = ("infinite_loop_then_honest", "pid_probe",
         "escaped_children_are_killed", "parse_bomb_memory", "fork_bomb")
