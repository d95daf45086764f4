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
from hostile import children_holding_memory  # noqa: E402
from autograder import api  # noqa: E402
from autograder import wire  # noqa: E402
from autograder.base import graded_names  # noqa: E402
from autograder.cells import analyze_cell  # noqa: E402
from autograder.sandbox import Limits, Sandbox, WorkerCrashed, WorkerTimeout, tree_cpu_seconds  # noqa: E402


# ------------------------------------------------------------------------------------ api
def test_check_records_info_and_validates() -> None:
    @api.check("matmul_vjp", points=2, timeout=4)
    def test_x(student):  # noqa: ANN001
        pass
    assert api.check_info(test_x) == api.CheckInfo("matmul_vjp", 2.0, 4.0, 4.0)   # declared: CPU too

    @api.check("f", points=1)
    def test_y(student):  # noqa: ANN001
        pass

    @api.check("f", points=1, timeout=30, cpu=2)
    def test_z(student):  # noqa: ANN001
        pass
    assert api.check_info(test_y) == api.CheckInfo("f", 1.0, api.DEFAULT_TIMEOUT, api.DEFAULT_CPU)
    assert api.check_info(test_z) == api.CheckInfo("f", 1.0, 30.0, 2.0)
    for bad in ({"function": "not a name", "points": 1}, {"function": "f", "points": 0},
                {"function": "f", "points": True}, {"function": "f", "points": 1, "cpu": 0},
                {"function": "f", "points": 1, "cpu": True}):
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
    assert names["matmul_gradient"] == "01_autodiff_backprop"
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


# ------------------------------------------------ h2: bounded parsing, clocks, budgets, isolation
from autograder import cells as harness  # noqa: E402  (cell analysis and imports policies)
from autograder.cells import analyze_cells  # noqa: E402
from autograder.session import StudentProxy, Submission  # noqa: E402


def test_analyze_cells_turns_parse_bombs_into_cell_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parse bombs cost their own cell (with a reason), never the grader; honest cells are fine."""
    import IPython.core.inputtransformer2 as it2
    monkeypatch.setattr(it2, "TRANSFORM_LOOP_LIMIT", 5)     # inherited by the forked analyser
    honest = "def ok(x):\n    return x\n"
    cells = {
        "memory": "x = " + "-" * 100_000 + "1\n",
        "recursion": "y = a" + ".b" * 60_000 + "\n",
        "never_converges": "x = %ls\n" * 12 + honest.replace("ok", "nc"),
        "too_big": "#" * (harness.MAX_CELL_CHARS + 1),
        "magic_ok": "%time q = 1\n" + honest.replace("ok", "mo"),
        "ok": honest,
    }
    out = analyze_cells(cells, cell_s=2.0, total_s=30.0)
    assert list(out) == list(cells)
    assert "MemoryError" in out["memory"].syntax_error
    assert "RecursionError" in out["recursion"].syntax_error
    assert "RuntimeError" in out["never_converges"].syntax_error
    assert "limit" in out["too_big"].syntax_error
    assert out["magic_ok"].syntax_error is None and "mo" in out["magic_ok"].defines
    assert "get_ipython" in out["magic_ok"].source
    assert out["ok"].syntax_error is None and out["ok"].defines == {"ok"}


def test_analyze_cells_stops_a_slow_transform_at_the_cell_limit() -> None:
    """30 magics in a ~200 kB cell keep IPython's transform busy for seconds (39 s once): the cell
    gets its own time limit, with IPython's real loop limit (a lowered one could end it first)."""
    cells = {"slow": "%time y = 1\n" * 30 + "z = 1\n" * 15_000, "ok": "def ok(x):\n    return x\n"}
    out = analyze_cells(cells, cell_s=1.0, total_s=30.0)
    assert "longer than 1 s" in out["slow"].syntax_error
    assert out["ok"].syntax_error is None and out["ok"].defines == {"ok"}


def test_analyze_cell_errors_in_the_transform_are_not_chained_crashes() -> None:
    """The IPython transform runs outside the ``except SyntaxError`` handler and any error in it
    becomes the cell's syntax_error (it used to escape as MemoryError / RuntimeError)."""
    import IPython.core.inputtransformer2 as it2
    old = it2.TRANSFORM_LOOP_LIMIT
    it2.TRANSFORM_LOOP_LIMIT = 3
    try:
        cell = analyze_cell("c", "x = %ls\n" * 8)
    finally:
        it2.TRANSFORM_LOOP_LIMIT = old
    assert cell.syntax_error and "RuntimeError" in cell.syntax_error and not cell.defines


def test_closure_of_a_12000_cell_chain_is_linear() -> None:
    n = 12_000
    cells = {f"k{i}": (f"k{i} = k{i - 1}\n" if i else "k0 = 0\n") for i in range(n)}
    cells["top"] = f"def top():\n    return k{n - 1}\n"
    sub = Submission(cells, None, Limits())
    try:
        need = sub.closure(["top"])
        assert len(need) == n + 1 and need[0] == "k0" and need[-1] == "top"
        assert sub.closure(["top"]) == need                      # memoised
        assert sub.cells_defining(f"k{n - 1}") == [f"k{n - 1}"]
    finally:
        sub.close()


def _info(timeout: float) -> api.CheckInfo:
    return api.CheckInfo("f", 1.0, timeout)


def test_check_clock_starts_when_the_sandbox_is_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that takes longer to (re)start than a check's whole budget costs that check
    nothing: the honest answer passes after a previous check's timeout killed the worker."""
    cells = {"spin": "def spin():\n    while True:\n        pass\n",
             "honest": "import time\ndef honest(x):\n    time.sleep(0.4)\n    return x + 1\n"}
    sub = Submission(cells, None, Limits())
    real_start = Sandbox.start

    def slow_start(self: Sandbox) -> dict:
        time.sleep(1.5)                 # longer than the honest check's budget below
        return real_start(self)

    monkeypatch.setattr(Sandbox, "start", slow_start)
    try:
        with pytest.raises(api.StudentTimeout, match="time limit of 1 s"):
            StudentProxy(sub, _info(1.0)).call("spin")
        assert sub.sandbox is None          # killed; the next call restarts it (slowly)
        for _ in range(2):
            assert StudentProxy(sub, _info(1.0)).call("honest", 41) == 42
        assert sub.workers_started == 2
    finally:
        sub.close()


def test_cpu_budget_stops_a_loop_early_and_spares_code_that_waits() -> None:
    """A check's default budgets are 1 s of CPU time and 5 s of wall time: a spinning loop is
    stopped after about 1 s (not 5), code that sleeps 1.5 s (no CPU) still passes, and a
    function that timed out before gets 0.2 s of CPU in later checks."""
    cells = {"spin": "def spin():\n    while True:\n        pass\n",
             "nap": "import time\ndef nap():\n    time.sleep(1.5)\n    return 'rested'\n"}
    sub = Submission(cells, None, Limits())
    info = _info(api.DEFAULT_TIMEOUT)        # the default budgets: 5 s of wall, 1 s of CPU
    try:
        if tree_cpu_seconds(os.getpid()) is None:
            pytest.skip("/proc cannot tell CPU time here: only wall clocks apply")
        with pytest.raises(api.StudentTimeout, match=r"spin\(...\) used up this check's 1 s of CPU time"):
            StudentProxy(sub, info).call("spin")
        with pytest.raises(api.StudentTimeout, match=r"within the 0.2 s of CPU time it gets after running out"):
            StudentProxy(sub, info).call("spin")
        assert StudentProxy(sub, info).call("nap") == "rested"
    finally:
        sub.close()


def test_function_that_killed_its_worker_gets_short_budgets_later() -> None:
    """A memory bomb or exit costs one crash, not one per check: later checks of that function get
    0.2 s of CPU (a quick answer on another input still passes)."""
    cells = {"boom": "import os\ndef boom(n):\n    if n:\n        os._exit(3)\n    s = 0\n"
                     "    for i in range(10 ** 8):\n        s += i\n    return s\n",
             "fine": "import os\ndef fine(n):\n    if n:\n        os._exit(3)\n    return 7\n"}
    sub = Submission(cells, None, Limits())
    info = _info(api.DEFAULT_TIMEOUT)        # the default budgets: 5 s of wall, 1 s of CPU
    try:
        if tree_cpu_seconds(os.getpid()) is None:
            pytest.skip("/proc cannot tell CPU time here")
        for name in ("boom", "fine"):
            with pytest.raises(api.StudentCrash):
                StudentProxy(sub, info).call(name, 1)
        with pytest.raises(api.StudentTimeout, match="0.2 s of CPU time it gets after running out of time or crashing"):
            StudentProxy(sub, info).call("boom", 0)
        assert StudentProxy(sub, info).call("fine", 0) == 7
    finally:
        sub.close()


def test_cpu_budget_is_the_same_on_a_loaded_grader() -> None:
    """An honest function using ~0.2-0.4 s of CPU passes a 1 s CPU budget while twelve CPU hogs
    compete for the cores, each in a session of its own (the sandbox has its own session, and the
    kernel's autogroups would otherwise shield it from hogs in ours), so that its wall time is
    several times its CPU time (over 1 s on 2 cores): the same answer, the same grade, however
    loaded the grader is."""
    n = 8_000_000
    cells = {"work": f"def work():\n    s = 0\n    for i in range({n}):\n        s += i\n    return s\n"}
    sub = Submission(cells, None, Limits())
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
            for _ in range(12)]
    try:
        if tree_cpu_seconds(os.getpid()) is None:
            pytest.skip("/proc cannot tell CPU time here")
        time.sleep(0.3)                                  # the hogs are running
        assert StudentProxy(sub, api.CheckInfo("f", 1.0, 60.0, 1.0)).call("work") == sum(range(n))
    finally:
        for h in hogs:
            h.kill()
            h.wait()
        sub.close()


def test_tree_cpu_seconds_counts_live_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time\nt = time.process_time()\n"
                              "while time.process_time() - t < 0.6: pass\ninput()"],
                             stdin=subprocess.PIPE)
    try:
        before = tree_cpu_seconds(os.getpid())
        if before is None:
            pytest.skip("/proc cannot tell CPU time here")
        deadline = time.monotonic() + 30
        while (tree_cpu_seconds(child.pid) or 0) < 0.5 and time.monotonic() < deadline:
            time.sleep(0.05)
        mine = tree_cpu_seconds(os.getpid())
        assert mine is not None and mine - before >= 0.4     # the child's CPU counts in my tree
    finally:
        child.kill()
        child.wait()
    assert tree_cpu_seconds(2 ** 22 + 12345) is None          # no such process


def test_submission_budget_bounds_the_whole_grading() -> None:
    cells = {"slow": "import time\ndef slow():\n    time.sleep(1.0)\n    return 1\n"}
    sub = Submission(cells, None, Limits(submission_s=2.5))
    outcomes = []
    try:
        for _ in range(4):
            try:
                outcomes.append(StudentProxy(sub, _info(5.0)).call("slow"))
            except api.StudentTimeout as exc:
                outcomes.append(str(exc))
    finally:
        sub.close()
    assert outcomes[0] == 1
    assert all("whole submission (2.5 s)" in o for o in outcomes[-2:]), outcomes


def test_import_policies_per_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    """Contract B: a numpy-policy cell cannot import scipy or os, nor see dlkit or another
    cell's forbidden modules; it can use helpers other cells define."""
    table = harness.import_policies()
    monkeypatch.setattr(harness, "import_policies", lambda: dict(table, wide=table["dlkit"] + ("os",)))
    cells = {"helper": "import os\ndef helper(x):\n    return x * 2\n",
             "f": "def f(x):\n    return helper(x) + 1\n",
             "g": "def g():\n    import scipy\n    return 1\n",
             "h": "def h():\n    return os.getpid()\n",
             "k": "def k():\n    return dlkit\n",
             "top": "import subprocess\ndef top():\n    return 1\n"}
    pol = {"helper": "wide", "f": "numpy", "g": "numpy", "h": "numpy", "k": "numpy", "top": "numpy"}
    sub = Submission(cells, None, Limits(), policies=pol)
    try:
        assert StudentProxy(sub, _info(5)).call("f", 3) == 7
        with pytest.raises(api.StudentError, match=r"g may import only numpy, math.*imports policy `numpy`.*it imported scipy"):
            StudentProxy(sub, _info(5)).call("g")
        with pytest.raises(api.StudentError, match="NameError"):
            StudentProxy(sub, _info(5)).call("h")
        with pytest.raises(api.StudentError, match="NameError"):
            StudentProxy(sub, _info(5)).call("k")
        with pytest.raises(api.StudentError, match="top may import only .* it imported subprocess"):
            StudentProxy(sub, _info(5)).call("top")
    finally:
        sub.close()


def test_graded_md_imports_column_and_defaults(tmp_path: Path) -> None:
    md = tmp_path / "GRADED.md"
    md.write_text("| assignment | name | signature | imports |\n|---|---|---|---|\n"
                  "| 99_fixture | `scale` | `(x, a)` | `numpy` |\n| | `vjp` | `(A, B, G)` | dlkit |\n"
                  "| | `count` | `(w)` | |\n")
    assert harness.graded_import_policies(md) == {"scale": "numpy", "vjp": "dlkit"}
    pol = harness.cell_policies(["scale", "vjp", "count", "extra"], md)
    assert pol == {"scale": "numpy", "vjp": "dlkit", "count": "dlkit", "extra": "dlkit"}
    assert harness.cell_policies(["other"], md) == {"other": None}       # not a listed assignment
    table = harness.import_policies()
    assert "dlkit" in table["dlkit"] and "dlkit" not in table["numpy"] and "numpy" in table["numpy"]


def test_cli_grade_enforces_graded_md_import_policy(tmp_path: Path) -> None:
    """End to end: GRADED.md says `scale` is numpy-only; importing os there costs scale only."""
    md = tmp_path / "GRADED.md"
    md.write_text("| assignment | name | signature | imports |\n|---|---|---|---|\n"
                  "| 99_fixture | `scale` | `(x, a)` | `numpy` |\n| | `count` | `(w)` | `numpy` |\n")
    checks = course.make_checks(tmp_path / "checks")
    nb = course.write_notebook(tmp_path / "nb.ipynb", course.with_cells(
        scale="import os\ndef scale(x, a):\n    return x * a\n"))
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", "--assignment", course.ASSIGNMENT,
                           "--checks-root", str(checks), str(nb), "--json", str(out)], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, DLKIT_GRADED_MD=str(md)))
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    assert r["functions"]["scale"]["score"] == 0
    assert r["score"] == course.MAX_SCORE - course.POINTS["scale"]
    text = " ".join(t["output"] for t in r["tests"] if t["function"] == "scale")
    assert "imports policy `numpy`" in text and "it imported os" in text


def _full_isolation(sb: Sandbox) -> bool:
    return sb.isolation.get("isolation") in ("namespaces(root)", "bwrap")


def test_sandbox_has_its_own_pids(sandbox: Sandbox) -> None:
    if not _full_isolation(sandbox):
        pytest.skip(f"no namespaces here: {sandbox.isolation}")
    src = ("def pids(grader):\n    import os\n    try:\n        os.kill(grader, 0)\n        seen = True\n"
           "    except ProcessLookupError:\n        seen = False\n"
           "    return [os.getpid(), seen, sorted(int(p) for p in os.listdir('/proc') if p.isdigit())]\n")
    reply, (pid, seen, listed) = _call(sandbox, src, "pids", os.getpid())
    assert reply["ok"] and pid <= 8 and not seen and len(listed) <= 4, (pid, seen, listed)


def test_memory_budget_holds_for_the_whole_tree() -> None:
    """Three children touching 200 MB each cannot all hold it at once in a 400 MB sandbox.

    Each child reports once it holds its 200 MB; what counts is how many of those are still
    alive at the end.  (Counting reports alone raced under load: the OOM killer may take a child
    after it reported, so three reports arrive while at most two children ever held memory.)"""
    src = children_holding_memory("hold()", 200, sleep_s=10, wait_s=3, returns="held")
    with Sandbox(None, Limits(memory_mb=400)) as sb:
        assert sb.isolation["memory"].startswith(("cgroup", "no memory cgroup: at most 1 process")), sb.isolation
        try:
            reply, held = _call(sb, src, "hold")
        except WorkerCrashed:           # the OOM killer chose the worker itself
            held = 0
        assert held is None or held < 3, (held, sb.isolation)


@pytest.mark.parametrize("mode", ["auto", "landlock", "bwrap"])
def test_contract_c_toolchain_and_read_only_dirs(tmp_path: Path, mode: str) -> None:
    """Code inside the sandbox compiles and runs C++ with the toolchain mounted read-only, and
    reads (never writes) an extra read-only directory, in every isolation mode."""
    import shutil
    from autograder.sandbox import bwrap_path
    if shutil.which("g++") is None:
        pytest.skip("no g++ on this machine")
    if mode == "bwrap" and bwrap_path() is None:
        pytest.skip("bwrap not installed")
    packs = tmp_path / "packs"
    packs.mkdir()
    (packs / "00_x.py").write_text("VALUE = 7\n")
    src = ("def build(code, packs):\n    import subprocess, os\n"
           "    open('t.cpp', 'w').write(code)\n"
           "    cc = subprocess.run(['g++', '-O0', 't.cpp', '-o', 't'], capture_output=True, text=True)\n"
           "    if cc.returncode:\n        return ['compile failed', cc.stderr[-500:]]\n"
           "    run = subprocess.run(['./t'], capture_output=True, text=True)\n"
           "    try:\n        open(os.path.join(packs, 'new.py'), 'w')\n        wrote = True\n"
           "    except OSError:\n        wrote = False\n"
           "    return [run.stdout, open(os.path.join(packs, '00_x.py')).read(), wrote, os.environ.get('DLKIT_PACKS')]\n")
    code = "#include <cstdio>\nint main() { std::printf(\"%d\\n\", 6 * 7); }\n"
    with Sandbox(None, toolchain=True, ro_dirs={"/opt/packs": str(packs)}, mode=mode,
                 env={"DLKIT_PACKS": "/opt/packs"}) as sb:
        reply, value = _call(sb, src, "build", code, sb.path_inside("/opt/packs"), timeout=60)
        assert reply["ok"], reply
        assert value == ["42\n", "VALUE = 7\n", False, sb.path_inside("/opt/packs")], value
        assert sb.isolation["processes"] >= 4
    assert not (packs / "new.py").exists()


def test_bwrap_mode_gives_the_same_private_root() -> None:
    from autograder.sandbox import bwrap_path
    if bwrap_path() is None:
        pytest.skip("bwrap not installed (apt-get install bubblewrap)")
    with Sandbox(None, mode="bwrap") as sb:
        if sb.isolation.get("isolation") != "bwrap":
            pytest.skip(f"bwrap could not isolate here: {sb.isolation}")
        src = ("def look(repo):\n    import os\n    return [os.path.exists(repo), os.getpid() <= 8, os.listdir('/'),\n"
               "            os.listdir('/root') if os.path.isdir('/root') else []]\n")
        reply, (repo, small_pid, top, in_root) = _call(sb, src, "look", str(ROOT))
        assert reply["ok"] and not repo and small_pid
        assert "home" not in top, top
        runtime = sys.base_prefix.split("/")[2:3] if sys.base_prefix.startswith("/root/") else []
        assert in_root == runtime, in_root      # only the Python runtime, when it lives there


UNPRIVILEGED = r'''
import json, sys, time
sys.path.insert(0, sys.argv[1])
from autograder.sandbox import Sandbox
out = {}
import os
for mode in ("auto", "landlock", "broken_bwrap"):
    if mode == "broken_bwrap":     # a bwrap that cannot start (e.g. user namespaces refused)
        os.environ["DLKIT_BWRAP"] = "/bin/false"
    with Sandbox(None, mode="auto" if mode == "broken_bwrap" else mode) as sb:
        deadline = time.monotonic() + 30
        src = ("def probe(repo):\n    import os\n"
               "    try:\n        open(repo).read(1)\n        repo_read = True\n    except OSError:\n        repo_read = False\n"
               "    return {'uid': os.getuid(), 'repo_read': repo_read}\n")
        sb.request({"op": "exec", "cells": [["probe", src]]}, [], deadline)
        from autograder import wire
        blobs = []
        a = wire.encode([sys.argv[1] + "/autograder/api.py"], blobs)
        reply, b = sb.request({"op": "call", "name": "probe", "args": a}, blobs, deadline)
        out[mode] = {"isolation": sb.isolation, "probe": wire.decode(reply.get("value"), b)}
print(json.dumps(out))
'''


@pytest.fixture
def request_cleanup() -> list[Path]:
    import shutil
    folders: list[Path] = []
    yield folders
    for f in folders:
        shutil.rmtree(f, ignore_errors=True)


def test_grader_run_as_an_unprivileged_user(request_cleanup: list[Path]) -> None:
    """The grader as `nobody` (no root, no capabilities): bwrap gives full isolation through a user
    namespace when installed, and the Landlock fallback says exactly what it gives."""
    import shutil
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        pytest.skip("needs root to set up a `nobody` grader (unshare, setpriv)")
    from autograder.sandbox import bwrap_path
    import tempfile
    # a folder `nobody` can read (pytest's own tmp folders are private to root)
    tmp_path = Path(tempfile.mkdtemp(prefix="dlkit-unpriv-", dir="/tmp"))
    request_cleanup.append(tmp_path)
    tmp_path.chmod(0o755)
    script = tmp_path / "unpriv.py"
    script.write_text(UNPRIVILEGED)
    script.chmod(0o644)
    # The runtime may live under /root (pyenv): show it to `nobody` through a private mount namespace.
    prefix = sys.base_prefix
    keep = tmp_path / "keep"
    keep.mkdir()
    setup = "set -e\n"
    if prefix.startswith("/root/"):
        setup += (f"mount --bind {prefix} {keep}\nmount -t tmpfs -o mode=755 tmpfs /root\n"
                  f"mkdir -p {prefix}\nmount --bind {keep} {prefix}\n")
    setup += (f"exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all "
              f"env -i PATH=/usr/bin:/bin HOME=/tmp {sys.executable} {script} {ROOT}\n")
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", setup],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and "Permission denied" in proc.stderr and "repository" not in proc.stderr:
        pytest.skip(f"cannot run the grader as nobody here: {proc.stderr[-800:]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    auto, landlock = out["auto"], out["landlock"]
    assert auto["probe"]["uid"] == 65534 and not auto["probe"]["repo_read"], auto
    if bwrap_path() is not None and auto["isolation"]["isolation"] != "bwrap":
        pytest.fail(f"bwrap is installed but the unprivileged grader got {auto['isolation']}")
    if bwrap_path() is not None:
        iso = auto["isolation"]
        assert iso["pids"].startswith("private") and iso["network"].startswith("off"), iso
    assert landlock["isolation"]["isolation"] in ("landlock", "none"), landlock
    assert landlock["isolation"]["pids"] == "host PIDs visible"
    if landlock["isolation"]["isolation"] == "landlock":
        assert not landlock["probe"]["repo_read"]
    broken = out["broken_bwrap"]["isolation"]     # falls back, and says so
    assert broken["isolation"] == "landlock" and broken["bwrap"].startswith("failed"), broken
    for r in (auto, landlock):     # never claims a memory cgroup nobody may create
        assert r["isolation"]["memory"].startswith("no memory cgroup"), r
