"""The autograder harness: check API, wire format, sandbox, `grade` CLI, real assignments."""
from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "adversarial"))

import course  # noqa: E402
from autograder import api  # noqa: E402
from autograder import worker as wire  # noqa: E402
from autograder.harness import analyze_cell, graded_names  # noqa: E402
from autograder.sandbox import Limits, Sandbox, WorkerCrashed, WorkerTimeout  # noqa: E402


# ------------------------------------------------------------------------------------ api
def test_check_records_info_and_validates() -> None:
    @api.check("matmul_vjp", points=2, timeout=4)
    def test_x(student):  # noqa: ANN001
        pass
    assert api.check_info(test_x) == api.CheckInfo("matmul_vjp", 2.0, 4.0)
    for bad in ({"function": "not a name", "points": 1}, {"function": "f", "points": 0},
                {"function": "f", "points": True}):
        with pytest.raises(ValueError):
            api.check(**bad)


def test_expect_array_rejects_what_is_not_a_plain_finite_array() -> None:
    class Sub(np.ndarray):
        pass
    good = np.ones((2, 3))
    assert api.expect_array(good, shape=(2, 3)) is good
    cases = [(good.view(Sub), "numpy.ndarray"), ([[1.0]], "list"), (None, "return statement"),
             (good.astype(int), "dtype"), (good.T, "shape (3, 2)"), (np.full((2, 3), np.nan), "NaN"),
             (np.ones((1, 2, 3)), "shape")]
    for value, words in cases:
        with pytest.raises(api.CheckFailure, match=words.replace("(", r"\(").replace(")", r"\)")):
            api.expect_array(value, shape=(2, 3), dtype_kind="f", name="dA")
    assert api.expect_array(np.ones((5, 3)), shape=(None, 3)).shape == (5, 3)


def test_expect_scalar_kinds() -> None:
    assert api.expect_scalar(3, "float") == 3.0
    assert api.expect_scalar(3, "int") == 3
    for value, kind in ((True, "int"), (2.0, "int"), ("1", "float"), (np.ones(1), "float"), (1, "bool"),
                        (float("inf"), "float")):
        with pytest.raises(api.CheckFailure):
            api.expect_scalar(value, kind)


def test_fail_message_and_diagnose() -> None:
    G, B = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    wrong = G @ B
    hint = api.diagnose(wrong, {"shape mismatch raises": lambda: G @ G, "forgot the transpose": lambda: G @ B})
    assert hint == "forgot the transpose"
    assert api.diagnose(wrong + 1, {"forgot the transpose": G @ B}) is None
    with pytest.raises(api.CheckFailure) as info:
        api.fail("dA is wrong", got=wrong, expected=wrong + 1, hint=hint)
    text = str(info.value)
    assert "dA is wrong" in text and "(2, 4)" in text and "max abs error: 1" in text
    assert "Your result matches a known mistake: forgot the transpose" in text


# ------------------------------------------------------------------------------- wire format
def test_codec_round_trip_keeps_types() -> None:
    value = {"a": (np.arange(6).reshape(2, 3), [1, 2.5, True, None, "s"]), 3: np.zeros((0, 2), bool),
             "f": np.asfortranarray(np.ones((2, 3), np.float32)), "n": float("nan")}
    blobs: list[bytes] = []
    out = wire.decode(json.loads(json.dumps(wire.encode(value, blobs))), blobs)
    assert type(out["a"]) is tuple and type(out["a"][0]) is np.ndarray
    assert out["a"][0].dtype == np.int64 and np.array_equal(out["a"][0], value["a"][0])
    assert out["a"][1][:4] == [1, 2.5, True, None] and type(out["a"][1][2]) is bool
    assert out[3].shape == (0, 2) and out["f"].dtype == np.float32 and np.isnan(out["n"])
    assert wire.encode(np.float32(1.5), []) == 1.5 and type(wire.encode(np.int64(2), [])) is int


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_codec_refuses_non_plain_data() -> None:
    for bad in (np.array([1, None], dtype=object), np.matrix([[1.0]]), {1, 2}, b"bytes", object(),
                np.random.default_rng(0), {(1, 2): 3}):
        with pytest.raises(wire.EncodeError):
            wire.encode(bad, [])
    rng = wire.decode(wire.encode(np.random.default_rng(5), [], allow_rng=True), [], allow_rng=True)
    assert rng.random() == np.random.default_rng(5).random()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=True)
    return buf.getvalue()


def test_npy_loader_rejects_pickles_and_lies() -> None:
    with pytest.raises(wire.ProtocolError, match="not allowed"):
        wire.npy_load(_npy(np.array([{"x": 1}], dtype=object)))
    good = _npy(np.arange(4.0))
    with pytest.raises(wire.ProtocolError, match="data length"):
        wire.npy_load(good[:-8])
    with pytest.raises(wire.ProtocolError):
        wire.npy_load(b"\x80\x04K\x1a.")  # a bare pickle
    with pytest.raises(wire.ProtocolError, match="limit"):
        wire.npy_load(good, max_elements=3)
    arr = wire.npy_load(_npy(np.arange(4, dtype=">i4")))
    assert arr.dtype == np.dtype("int32") and arr.flags.writeable and arr.tolist() == [0, 1, 2, 3]
    deep: list = [0]
    for _ in range(60):
        deep = [deep]
    for node in ({"$t": "nd", "b": 5}, {"$t": "pickle"}, {"$t": "rng", "state": {}}, deep):
        with pytest.raises(wire.ProtocolError):
            wire.decode(node, [good])


# ----------------------------------------------------------------------------------- sandbox
@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    sb = Sandbox(None, Limits(start_timeout_s=60))
    sb.start()
    yield sb
    sb.close()


def _call(sb: Sandbox, source: str, name: str, *args, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    reply, _ = sb.request({"op": "exec", "cells": [[name, source]]}, [], deadline)
    assert reply["ok"] and not reply["errors"], reply
    blobs: list[bytes] = []
    a = wire.encode(list(args), blobs)
    reply, out = sb.request({"op": "call", "name": name, "args": a}, blobs, deadline)
    return reply, (wire.decode(reply["value"], out) if reply.get("ok") else None)


def test_sandbox_environment_is_scrubbed_and_repo_invisible(sandbox: Sandbox) -> None:
    src = ("def probe():\n    import os, sys\n"
           "    def can_import(m):\n        try:\n            __import__(m)\n            return True\n"
           "        except ImportError:\n            return False\n"
           "    return {'env': dict(os.environ), 'cwd': os.getcwd(), 'path': list(sys.path),\n"
           "            'autograder': can_import('autograder'), 'tests': can_import('tests'),\n"
           "            'repo': os.path.exists(%r), 'stdin': sys.stdin is None or sys.stdin.read() == ''}\n"
           % str(ROOT / "autograder" / "api.py"))
    reply, info = _call(sandbox, src, "probe")
    assert reply["ok"], reply
    assert not info["autograder"] and not info["tests"]
    assert not any(str(ROOT) in p for p in info["path"])
    assert set(info["env"]) <= {"PATH", "LANG", "LC_ALL", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                "MKL_NUM_THREADS", "MPLBACKEND", "DLKIT_BACKEND", "PYTHONHASHSEED",
                                "PYTHONDONTWRITEBYTECODE", "HOME", "TMPDIR"}
    assert info["env"]["HOME"] == info["cwd"]
    isolated = sandbox.isolation.get("filesystem", "").startswith(("private", "Landlock"))
    if isolated:
        assert not info["repo"]
    assert info["stdin"]


def test_unprivileged_fallback_confines_files_with_landlock(tmp_path: Path) -> None:
    """Without namespaces (e.g. no CAP_SYS_ADMIN, or not root) Landlock still hides the repo."""
    secret = tmp_path / "secret.txt"
    secret.write_text("hidden")
    with Sandbox(None, namespaces=False) as sb:
        if not sb.isolation.get("filesystem", "").startswith("Landlock"):
            pytest.skip(f"Landlock unavailable here: {sb.isolation}")
        src = ("def peek(paths):\n    out = []\n    for p in paths:\n        try:\n"
               "            out.append(open(p).read())\n        except OSError as e:\n"
               "            out.append(type(e).__name__)\n"
               "    open('scratch-ok.txt', 'w').write('fine')\n    return out\n")
        reply, value = _call(sb, src, "peek", [str(secret), str(ROOT / "autograder" / "api.py")])
        assert reply["ok"], reply
        assert value == ["PermissionError", "PermissionError"]


def test_sandbox_student_exceptions_are_data(sandbox: Sandbox) -> None:
    reply, _ = _call(sandbox, "def boom(x):\n    return 1 / x\n", "boom", 0)
    assert not reply["ok"] and reply["error"]["type"] == "ZeroDivisionError"
    assert "answer cell boom, line 2" in reply["error"]["traceback"]
    reply, value = _call(sandbox, "def ok(x):\n    return x + 1\n", "ok", np.arange(3))
    assert reply["ok"] and value.tolist() == [1, 2, 3]     # the worker survived


def test_sandbox_timeout_kills_worker() -> None:
    with Sandbox(None) as sb:
        sb.request({"op": "exec", "cells": [["spin", "def spin():\n    while True:\n        pass\n"]]}, [],
                   time.monotonic() + 30)
        t0 = time.monotonic()
        with pytest.raises(WorkerTimeout):
            sb.request({"op": "call", "name": "spin", "args": []}, [], time.monotonic() + 1.0)
        assert time.monotonic() - t0 < 20
        assert not sb.alive
        with pytest.raises(WorkerCrashed):
            sb.request({"op": "ping"}, [], time.monotonic() + 5)


def test_sandbox_kills_escaped_processes() -> None:
    if os.geteuid() != 0:
        pytest.skip("killing by uid needs root (the sandbox then runs under its own uid)")
    with Sandbox(None) as sb:
        reply, pid = _call(sb, ("def escape():\n    import os, time\n    pid = os.fork()\n"
                                "    if pid == 0:\n        os.setsid()\n        time.sleep(600)\n        os._exit(0)\n"
                                "    return pid\n"), "escape")
        assert reply["ok"], reply
        host_pids = [p for p in os.listdir("/proc") if p.isdigit()]
        victims = [p for p in host_pids if _uid_of(p) == sb._uid]
        assert victims, "the escaped child should be running under the sandbox uid"
    alive = [p for p in os.listdir("/proc") if p.isdigit() and _uid_of(p) == sb._uid and _state(p) not in "ZX"]
    assert not alive, "processes of the sandbox uid survived close()"


def _state(pid: str) -> str:
    """The process state letter ('Z': zombie, already dead), 'X' when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def _uid_of(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


# ------------------------------------------------------------------------------ static parts
def test_analyze_cell_defines_uses_and_magics() -> None:
    cell = analyze_cell("f", "import numpy as np\nfrom math import sqrt\nX: int = 1\ndef f(a):\n    return helper(a)\n"
                             "class K:\n    pass\nif True:\n    g = 2\n")
    assert {"np", "sqrt", "X", "f", "K", "g"} <= cell.defines and "helper" in cell.uses
    magic = analyze_cell("m", "%time y = 1\n!ls\ndef m():\n    return 1\n")
    assert magic.syntax_error is None and "m" in magic.defines and "get_ipython" in magic.source
    assert analyze_cell("s", "def s(:\n").syntax_error.startswith("SyntaxError")


def test_graded_md_maps_names_to_assignments() -> None:
    names = graded_names()
    if not names:
        pytest.skip("notebooks/GRADED.md not present")
    assert names["matmul_vjp"] == "01_autodiff_backprop"
    assert names["broadcast_shape"] == "00_arrays_broadcasting"


# ------------------------------------------------------------------------------------- CLI
def _grade(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "grade", *args], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=300)


def test_cli_grade_fixture_full_and_partial(tmp_path: Path) -> None:
    checks = course.make_checks(tmp_path / "checks")
    good = course.write_notebook(tmp_path / "good.ipynb", course.CORRECT)
    part = course.write_notebook(tmp_path / "part.ipynb", course.with_cells(
        vjp="def vjp(A, B, G):\n    return 2 * G @ B.T, A.T @ G\n"))
    out = tmp_path / "r.json"
    proc = _grade("--assignment", course.ASSIGNMENT, "--checks-root", str(checks), str(good), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    assert r["score"] == r["max_score"] == course.MAX_SCORE
    assert {"name", "score", "max_score", "output"} <= set(r["tests"][0])
    assert "8 / 8" in proc.stdout
    proc = _grade("--assignment", course.ASSIGNMENT, "--checks-root", str(checks), str(part), "--json", str(out))
    r = json.loads(out.read_text())
    assert proc.returncode == 0 and r["score"] == course.MAX_SCORE - 2
    assert r["functions"]["vjp"] == {"score": 0.0, "max_score": 2.0}
    vjp_out = [t["output"] for t in r["tests"] if t["function"] == "vjp"][0]
    assert "dA" in vjp_out and ("shape" in vjp_out or "wrong" in vjp_out)


def test_cli_grade_harness_errors_exit_nonzero(tmp_path: Path) -> None:
    checks = course.make_checks(tmp_path / "checks")
    nb = course.write_notebook(tmp_path / "nb.ipynb", course.CORRECT)
    proc = _grade("--assignment", "nope", "--checks-root", str(checks), str(nb))
    assert proc.returncode == 2 and "unknown assignment" in proc.stderr
    proc = _grade("--assignment", course.ASSIGNMENT, "--checks-root", str(checks), str(tmp_path / "missing.ipynb"))
    assert proc.returncode == 2 and "cannot read submission" in proc.stderr
    broken = tmp_path / "broken"
    (broken / course.ASSIGNMENT).mkdir(parents=True)
    (broken / course.ASSIGNMENT / "test_broken.py").write_text("import no_such_module\n")
    proc = _grade("--assignment", course.ASSIGNMENT, "--checks-root", str(broken), str(nb))
    assert proc.returncode == 2 and "could not be loaded" in proc.stderr


# ------------------------------------------------------------------- a real assignment, end to end
def _real_assignments() -> list[str]:
    out = []
    for folder in sorted((ROOT / "autograder").glob("[0-9][0-9]_*")):
        if any(folder.glob("test_*.py")) and (ROOT / "notebooks" / folder.name / f"{folder.name}.ipynb").is_file():
            out.append(folder.name)
    return out


def test_real_assignment_reference_full_marks_and_stubs_zero(tmp_path: Path) -> None:
    ids = _real_assignments()
    if not ids:
        pytest.skip("no assignment has both hidden checks and a notebook yet")
    from dlkit import student as nbparse
    from tests.nbcontract import stub_solutions
    assignment = ids[0]
    source = ROOT / "notebooks" / assignment / f"{assignment}.ipynb"
    out = tmp_path / "ref.json"
    proc = _grade("--assignment", assignment, str(source), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    assert r["score"] == r["max_score"] > 0, json.dumps(r, indent=1)[:3000]
    nb = nbparse.read_notebook(source)
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = stub_solutions(src)
    stub = tmp_path / "stub.ipynb"
    stub.write_text(json.dumps(nb))
    proc = _grade("--assignment", assignment, str(stub), "--json", str(out))
    r = json.loads(out.read_text())
    assert proc.returncode == 0 and r["score"] == 0, json.dumps(r, indent=1)[:3000]
    assert "NotImplementedError" in " ".join(t["output"] for t in r["tests"])
