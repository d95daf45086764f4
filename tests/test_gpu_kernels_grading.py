"""06_gpu_kernels is graded by behaviour, and student CUDA C never reaches the trusted process.

* every CORRECT variant of tests/mutants/06_gpu_kernels.py keeps full marks (the mutants, which
  must all lose points, are driven by tests/test_autograder_checks.py);
* hostile kernel sources -- a digraph ``%:include``, a trigraph, a lone ``\\r`` before
  ``#include``, ``asm(".incbin ...")``, includes of ``/dev/zero`` and of a file of the grader's --
  score 0, the message shown to the student holds none of the grader's bytes, and nothing is left
  running afterwards;
* the emulator runner itself: guard pages and canaries on both sides, a capped compiler log,
  a kernel that never ends is stopped;
* one submission through the real sandboxed harness.

The kernels are compiled and run in the grading sandbox (autograder/cudaemu/grading.py); these
tests need a C++ compiler and skip without one.
"""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from autograder.cudaemu import grading
from tests.test_autograder_checks import base_answers, grade_local

pytestmark = pytest.mark.skipif(grading.compiler() is None, reason="no C++ compiler (g++, c++ or clang++)")

AID = "06_gpu_kernels"
CORRECT = importlib.import_module("tests.mutants.06_gpu_kernels").CORRECT
SPEC = {"name": "saxpy", "params": [["i", "int"], ["f", "float"], ["P", "const float*"], ["P", "float*"]]}
GOOD = ('extern "C" __global__ void saxpy(int n, float a, const float* x, float* y)\n'
        "{ int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) y[i] = a * x[i] + y[i]; }\n")


def _kernel_cell(source: str) -> str:
    return f"SAXPY_KERNEL = {source!r}\n"


def _grade(name: str, cell: str) -> dict:
    cells = dict(base_answers(AID))
    cells[name] = cell
    return grade_local(AID, cells, only=name)[name]


@pytest.mark.parametrize("name,description", [(n, d) for n, v in CORRECT.items() for d in v])
def test_correct_variant_keeps_full_marks(name, description):
    r = _grade(name, CORRECT[name][description])
    assert r["score"] == r["max"] > 0, f"{name} ({description}) lost points: {r['failures']}"


# ---------------------------------------------------------------------------------------------
# hostile sources
# ---------------------------------------------------------------------------------------------
def _sandbox_processes(wait: float = 5.0) -> list[str]:
    """Live (not zombie) processes under the uid of a sandbox THIS test process started, as
    'pid uid comm', after giving SIGKILLed ones up to ``wait`` seconds to go (Sandbox uids are
    100000 + (trusted pid << 6 | counter); other sessions' sandboxes are not ours to count)."""
    deadline = time.monotonic() + wait
    while True:
        out = subprocess.run(["ps", "-eo", "pid=,uid=,stat=,comm="], capture_output=True, text=True).stdout
        left = []
        for line in out.splitlines():
            parts = line.split(None, 3)
            if (len(parts) == 4 and int(parts[1]) >= 100_000 and (int(parts[1]) - 100_000) >> 6 == os.getpid()
                    and not parts[2].startswith("Z")):
                left.append(line.strip())
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file of the grader's (root-only), which must never show in anything a student sees."""
    path = tmp_path / "grader-secret.txt"
    path.write_text("GRADER_SECRET_9f3c1b = 1;\n" * 4)
    os.chmod(path, 0o600)
    return path


def _payloads(secret: Path) -> dict[str, str]:
    s = str(secret)
    return {
        "digraph %:include of a grader file": f'%:include "{s}"\n' + GOOD,
        "digraph include of /etc/shadow": "%:include </etc/shadow>\n" + GOOD,
        "trigraph ??=include": f'??=include "{s}"\n' + GOOD,
        "lone carriage return before #include": f'int dummy;\r#include "{s}"\n' + GOOD,
        "#include of a grader file": f'#include "{s}"\n' + GOOD,
        "#include of the hidden checks": '#include "/work/main/autograder/06_gpu_kernels/reference.py"\n' + GOOD,
        "asm .incbin of a grader file": f'asm(".incbin \\"{s}\\"");\n' + GOOD,
        "#include </dev/zero>": "#include </dev/zero>\n" + GOOD,
        "asm .incbin /dev/zero": 'asm(".incbin \\"/dev/zero\\"");\n' + GOOD,
    }


@pytest.mark.parametrize("which", ["digraph %:include of a grader file", "digraph include of /etc/shadow",
                                   "trigraph ??=include", "lone carriage return before #include",
                                   "#include of a grader file", "#include of the hidden checks",
                                   "asm .incbin of a grader file", "#include </dev/zero>",
                                   "asm .incbin /dev/zero"])
def test_hostile_kernel_scores_zero_leaks_nothing_leaves_nothing(which, secret):
    t0 = time.monotonic()
    r = _grade("SAXPY_KERNEL", _kernel_cell(_payloads(secret)[which]))
    elapsed = time.monotonic() - t0
    assert r["score"] == 0, f"{which} scored {r['score']}"
    text = "\n".join(r["failures"])
    assert "GRADER_SECRET" not in text and "root:" not in text and "ANSWERS" not in text, text
    assert len(text) < 12_000, "compiler output must be capped"
    assert elapsed < 3 * (grading.REQUEST_TIMEOUT_S + 10)
    assert _sandbox_processes() == []


def test_compiler_output_is_capped():
    long_name = "u" * 1000
    src = "\n".join(f"int f{i}() {{ return {long_name}{i}; }}" for i in range(15)) + "\n" + GOOD
    assert len(src) < grading.MAX_SOURCE_CHARS
    run = grading.run_kernel(src, SPEC, [])
    assert run["status"] == "compile_error"
    assert len(run["log"]) <= grading.LOG_CAP + 100


def test_source_limits_before_anything_runs():
    assert grading.run_kernel("x" * (grading.MAX_SOURCE_CHARS + 1), SPEC, [])["status"] == "too_long"
    assert grading.run_kernel(b"bytes", SPEC, [])["status"] == "not_text"


def _case(n, block, grid, at_end, a=2.5, seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    return {"grid": [grid, 1, 1], "block": [block, 1, 1], "at_end": at_end,
            "args": [n, a, {"buffer": x}, {"buffer": y}]}


def test_runner_values_guard_pages_and_canaries():
    cases = [_case(1000, 256, 4, True), _case(17, 8, 3, True), _case(17, 8, 3, False),
             _case(1, 1, 1, False)]
    ok = grading.run_kernel(GOOD, SPEC, cases)
    assert ok["status"] == "ran", ok
    for case, run in zip(cases, ok["runs"]):
        x, y = case["args"][2]["buffer"], case["args"][3]["buffer"]
        assert run["code"] == 0 and run["overwritten"] == [0, 0]
        assert np.array_equal(run["buffers"][0], x)
        assert np.allclose(run["buffers"][1], np.float32(2.5) * x + y, rtol=1e-6)
    unguarded = GOOD.replace("if (i < n) ", "")
    bad = grading.run_kernel(unguarded, SPEC, cases)["runs"]
    # buffers at the upper guard page: the first read past x faults and names x (argument 2)
    assert bad[1]["code"] == 4 and bad[1]["fault_arg"] == 2 and bad[1]["fault_offset"] == 4 * 17
    # buffers after the lower guard page: the writes past y land on the canary
    assert bad[2]["code"] == 0 and bad[2]["overwritten"][1] == 4 * (24 - 17)
    below = GOOD.replace("y[i] = a", "y[i - 1] = a")
    low = grading.run_kernel(below, SPEC, [_case(17, 8, 3, False)])["runs"][0]
    assert low["code"] == 4 and low["fault_arg"] == 3 and low["fault_offset"] == -4


def test_endless_kernel_is_stopped_and_killed():
    spin = GOOD.replace("if (i < n)", "while (n > 0) { volatile int k = 0; (void)k; }\n if (i < n)")
    t0 = time.monotonic()
    run = grading.run_kernel(spin, SPEC, [_case(17, 8, 3, True)], timeout=8)
    assert run["status"] == "timeout" and time.monotonic() - t0 < 20
    assert _sandbox_processes() == []


def test_a_kernel_that_forks_leaves_no_process():
    forky = ("#include <unistd.h>\n" + GOOD.replace(
        "int i =", "if (blockIdx.x == 0 && threadIdx.x == 0) { if (fork() == 0) { setsid(); sleep(300); } }\n int i ="))
    grading.run_kernel(forky, SPEC, [_case(17, 8, 3, True)], timeout=20)
    assert _sandbox_processes() == []


# ---------------------------------------------------------------------------------------------
# through the real harness
# ---------------------------------------------------------------------------------------------
def test_real_harness_digraph_payload_scores_zero_and_honest_parts_full(tmp_path, secret):
    from autograder import harness
    from autograder.release import student_dlkit
    from tests.test_autograder_checks import write_notebook
    if not hasattr(harness, "grade_notebook"):
        pytest.skip("autograder.harness has no grade_notebook")
    kit = str(student_dlkit(tmp_path / "kit"))
    cells = dict(base_answers(AID))
    cells["SAXPY_KERNEL"] = _kernel_cell(f'%:include "{secret}"\n' + GOOD)
    path = write_notebook(cells, tmp_path / "sub.ipynb")
    r = harness.grade_notebook(AID, path, student_dlkit=kit, in_process=False)
    funcs = r["functions"]
    assert funcs["SAXPY_KERNEL"]["score"] == 0
    assert funcs["grid_size"]["score"] == funcs["grid_size"]["max_score"] > 0
    assert funcs["tiled_matmul"]["score"] == funcs["tiled_matmul"]["max_score"] > 0
    import json
    assert "GRADER_SECRET" not in json.dumps(r)


def test_no_student_text_is_compiled_in_the_trusted_process(monkeypatch):
    """The checks module never calls a compiler itself: every compile goes through a sandbox."""
    import autograder.cudaemu.grading as g
    calls = []
    real_popen = subprocess.Popen

    def spy(cmd, *a, **k):
        calls.append(cmd if isinstance(cmd, str) else " ".join(map(str, cmd[:3])))
        return real_popen(cmd, *a, **k)

    monkeypatch.setattr(subprocess, "Popen", spy)
    import sys
    checks = sys.modules.get("_hidden_checks_06_gpu_kernels_test_checks")
    if checks is not None:
        checks._CACHE.items.clear()        # compile for real in this test
    r = _grade("SAXPY_KERNEL", _kernel_cell(GOOD))
    assert r["score"] == r["max"]
    compilers = [c for c in calls if any(w in c for w in ("g++", "nvcc", "cc1plus", "clang"))]
    assert not compilers, compilers
    assert shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    assert g.compiler()


@pytest.mark.skipif(grading.nvcc() is None, reason="nvcc (CUDA toolkit) not installed")
def test_gpu_path_compiles_with_nvcc_inside_the_sandbox():
    """The device path compiles with nvcc INSIDE the sandbox; on a machine without a GPU its
    launch reports ``unavailable`` (the checks then use the emulator), with a GPU it runs."""
    case = _case(17, 8, 3, True)
    good = grading.run_kernel(GOOD, SPEC, [case], device="gpu")
    assert good["status"] in ("unavailable", "ran"), good
    if good["status"] == "ran":
        run = good["runs"][0]
        x, y = case["args"][2]["buffer"], case["args"][3]["buffer"]
        assert run["code"] == 0 and run["overwritten"] == [0, 0]
        assert np.allclose(run["buffers"][1], np.float32(2.5) * x + y, rtol=1e-5)
    mangled = grading.run_kernel(GOOD.replace('extern "C" ', ""), SPEC, [case], device="gpu")
    assert mangled["status"] == "compile_error" and "linkage" in mangled["log"]
    zero = grading.run_kernel("%:include </dev/zero>\n" + GOOD, SPEC, [case], device="gpu")
    assert zero["status"] in ("compile_error", "compile_timeout")
    assert _sandbox_processes() == []


def test_fallback_sandbox_without_namespaces_compiles_and_denies_grader_files(monkeypatch, secret):
    """Where the sandbox cannot build a private root (no namespaces), Landlock still lets the
    toolchain run and keeps every grader file unreadable to it."""
    import functools
    from autograder import sandbox
    monkeypatch.setattr(grading, "Sandbox", functools.partial(sandbox.Sandbox, namespaces=False))
    case = _case(17, 8, 3, False)
    ok = grading.run_kernel(GOOD, SPEC, [case])
    assert ok["status"] == "ran" and ok["runs"][0]["code"] == 0, ok
    for payload in (f'#include "{secret}"\n', f'%:include "{secret}"\n', f'asm(".incbin \\"{secret}\\"");\n'):
        bad = grading.run_kernel(payload + GOOD, SPEC, [case])
        assert bad["status"] == "compile_error", bad
        assert "GRADER_SECRET" not in bad["log"]
    assert _sandbox_processes() == []


DO_NOTHING = {
    "SAXPY_KERNEL": {
        "empty string": 'SAXPY_KERNEL = ""\n',
        "a kernel that does nothing": _kernel_cell('extern "C" __global__ void saxpy(int n, float a, const float* x, float* y) {}\n'),
        "not a string": "SAXPY_KERNEL = 42\n",
        "bytes": "SAXPY_KERNEL = " + repr(GOOD.encode()) + "\n",
        "None": "SAXPY_KERNEL = None\n",
    },
    "tiled_matmul": {
        "returns zeros of the right shape": "def tiled_matmul(A, B, tile=16):\n    return np.zeros((A.shape[0], B.shape[1]))\n",
        "returns None": "def tiled_matmul(A, B, tile=16):\n    return None\n",
        "returns a list": "def tiled_matmul(A, B, tile=16):\n    return []\n",
        "returns A's first tile": "def tiled_matmul(A, B, tile=16):\n    return A[0:tile, 0:tile]\n",
    },
    "grid_size": {
        "returns 0": "def grid_size(n, block_size):\n    return 0\n",
        "returns None": "def grid_size(n, block_size):\n    pass\n",
    },
}


@pytest.mark.parametrize("name,description", [(n, d) for n, v in DO_NOTHING.items() for d in v])
def test_do_nothing_answers_score_zero(name, description):
    r = _grade(name, DO_NOTHING[name][description])
    assert r["score"] == 0, f"{name} ({description}) scored {r['score']}: {r['failures']}"
