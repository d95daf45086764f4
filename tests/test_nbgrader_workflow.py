"""The TA workflow is nbgrader's own, end to end, on the fixture assignment (tests/adversarial/course.py).

generate_assignment → release_assignment → two students fetch and submit through the exchange
(one after the due date) → collect (+ one submission unpacked by hand, no timestamp) →
``nbgrader autograde`` → formgrader in headless Chromium (scores and check messages per cell)
→ generate_feedback (messages, no staff notes) → release_feedback → export (CSV = results.json).

The course's ``nbgrader_config.py`` runs the kit's own config file (the repository's) and only
points it at this course folder and the fixture checks.  Student code must never run outside
the sandbox: every submission holds a plain code cell (and answer-cell code) that would write a
marker file if a kernel executed it; a control run with nbgrader's stock ``Execute`` shows the
marker does get written there.  The scores ``nbgrader autograde`` records are those the batch
(``make grade``) records for the same submissions, hostile ones included.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "adversarial"))

import course  # noqa: E402
from reaper import stop_process_group  # noqa: E402
import hostile  # noqa: E402

ID = course.ASSIGNMENT
BIN = Path(sys.executable).parent
#: a subset of the adversarial suite (all of it: DLKIT_NBGRADER_HOSTILE=all, slow)
HOSTILE = ("sys_exit_at_import", "os_exit_in_function", "monkeypatch_numpy_and_builtins",
           "read_hidden_files", "write_fake_results", "infinite_loop", "pickle_payload",
           "ipython_hooks_and_magics", "conftest_and_sitecustomize_beside_notebook",
           "locked_cells_deleted_and_edited", "wrong_assignment", "answer_cell_deleted",
           "mutates_inputs", "env_detection", "malformed_json", "not_nbformat_4")


def _env(base: Path, home: Path) -> dict:
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", HOME=str(home),
                JUPYTER_CONFIG_DIR=str(home / ".jupyter"), JUPYTER_DATA_DIR=str(home / ".local"),
                JUPYTER_RUNTIME_DIR=str(home / ".runtime"), PYTHONPATH=str(ROOT))


def nbgrader(cwd: Path, env: dict, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / "nbgrader"), *args], cwd=str(cwd), env=env, capture_output=True,
                          text=True, timeout=900)
    if ok:
        assert proc.returncode == 0, f"nbgrader {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def course_config(cdir: Path, checks: Path, exchange: Path, *, stock_execute: bool = False) -> None:
    """The kit's nbgrader_config.py, pointed at this course (what a course copy of the kit does)."""
    text = (f"exec(compile(open({str(ROOT / 'nbgrader_config.py')!r}).read(), 'nbgrader_config.py', 'exec'))\n"
            f"c.CourseDirectory.root = {str(cdir)!r}\n"
            "c.CourseDirectory.source_directory = 'source'\n"
            f"c.Exchange.root = {str(exchange)!r}\n"
            f"c.DlkitGrader.checks_root = {str(checks)!r}\n"
            "c.DlkitGrader.submission_s = 60\n")
    if stock_execute:      # the control: nbgrader's own autograde steps
        text += ("c.Autograde.autograde_preprocessors = ['nbgrader.preprocessors.Execute', "
                 "'nbgrader.preprocessors.SaveAutoGrades']\n")
    (cdir / "nbgrader_config.py").write_text(text, encoding="utf-8")


def marker_cells(marker: Path) -> dict[str, str]:
    """Correct answers, but ``scale``'s cell also writes ``marker`` at top level when executed."""
    write = f"open({str(marker)!r}, 'w').write('executed outside the sandbox')\n"
    return course.with_cells(scale="try:\n    " + write + "except OSError:\n    pass\n" + hostile.SCALE_OK)


def student_edit(path: Path, answers: dict[str, str], marker: Path) -> None:
    """What a student does in the fetched notebook: fill the answer cells; add a cell of their own."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in answers and cell["metadata"]["nbgrader"].get("solution"):
            cell["source"] = answers[gid]
    nb["cells"].append({"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                        "source": f"open({str(marker)!r}, 'w').write('a plain cell ran')\n"})
    path.write_text(json.dumps(nb), encoding="utf-8")


@pytest.fixture(scope="module")
def workflow(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("workflow")
    marker = base / "MARKER-student-code-ran"
    checks = course.make_checks(base / "checks")
    exchange = base / "exchange"
    exchange.mkdir(mode=0o777)
    cdir = base / "course"
    course.write_notebook(cdir / "source" / ID / f"{ID}.ipynb", course.CORRECT)
    course_config(cdir, checks, exchange)
    ta = _env(base, base / "ta")
    nbgrader(cdir, ta, "generate_assignment", ID)
    nbgrader(cdir, ta, "release_assignment", ID)
    # the student kit travels through the exchange too, as its own "assignment" `kit`
    from autograder.kit import student_dlkit
    student_dlkit(cdir / "release" / "kit")
    shutil.copy(ROOT / "pyproject.toml", cdir / "release" / "kit" / "pyproject.toml")
    nbgrader(cdir, ta, "release_assignment", "kit")
    # two students fetch and submit through the exchange: alice on time, bob after the due date
    answers = {"alice": course.CORRECT, "bob": course.with_cells(scale="def scale(x, a):\n    return x\n")}
    stamps = {}
    for name in ("alice", "bob"):
        home = base / name
        home.mkdir()
        (home / "nbgrader_config.py").write_text(
            f"c = get_config()\nc.Exchange.root = {str(exchange)!r}\nc.CourseDirectory.course_id = 'dlkit'\n")
        env = dict(_env(base, home), USER=name, LOGNAME=name)
        nbgrader(home, env, "fetch_assignment", ID)
        nbgrader(home, env, "fetch_assignment", "kit")
        student_edit(home / ID / f"{ID}.ipynb", marker_cells(marker) if name == "bob" else answers[name], marker)
        if name == "bob":    # bob's scale is also wrong
            nb = json.loads((home / ID / f"{ID}.ipynb").read_text())
            for cell in nb["cells"]:
                if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "scale":
                    cell["source"] = cell["source"].replace("return x * a", "return x")
            (home / ID / f"{ID}.ipynb").write_text(json.dumps(nb))
        nbgrader(home, env, "submit", ID, "--student", name)
        stamps[name] = datetime.now(timezone.utc)
    due = stamps["alice"]            # alice submitted before it, bob after
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{cdir / 'gradebook.db'}") as gb:
        gb.update_or_create_assignment(ID, duedate=due.replace(tzinfo=None))
    nbgrader(cdir, ta, "collect", ID)
    # carol's submission came through the LMS: unpacked by hand, no timestamp or secret
    course.write_notebook(cdir / "submitted" / "carol" / ID / f"{ID}.ipynb",
                          course.with_cells(vjp="def vjp(A, B, G):\n    return G @ B.T, A @ G\n"))
    auto = nbgrader(cdir, ta, "autograde", ID)
    return {"base": base, "course": cdir, "checks": checks, "marker": marker, "ta": ta,
            "autograde": auto, "exchange": exchange}


def test_students_fetch_the_kit_through_the_exchange(workflow: dict) -> None:
    kit = workflow["base"] / "alice" / "kit"
    assert (kit / "pyproject.toml").is_file() and (kit / "dlkit" / "student.py").is_file()
    assert (kit / "dlkit" / "_graded.py").is_file()


def _gradebook(cdir: Path) -> dict:
    from autograder.gradebook import dump_gradebook
    return dump_gradebook(f"sqlite:///{cdir / 'gradebook.db'}", ID)


def test_autograde_runs_no_student_code_outside_the_sandbox(workflow: dict) -> None:
    assert not workflow["marker"].exists(), "a student's cell ran outside the sandbox"
    log = workflow["autograde"].stderr
    assert "with the sandboxed hidden checks (no kernel)" in log and "Kernel" not in log, log[-3000:]


def test_control_stock_nbgrader_executes_student_code(workflow: dict, tmp_path: Path) -> None:
    """The marker proof works: nbgrader's own Execute step does run the student's cells."""
    cdir = tmp_path / "course"
    shutil.copytree(workflow["course"], cdir, ignore=shutil.ignore_patterns("autograded", "feedback"))
    course_config(cdir, workflow["checks"], workflow["exchange"], stock_execute=True)
    marker = workflow["marker"]
    nbgrader(cdir, workflow["ta"], "autograde", ID, "--student", "bob", ok=False)
    try:
        assert marker.exists(), "control failed: stock nbgrader autograde did not run the student's cell"
    finally:
        marker.unlink(missing_ok=True)


def test_scores_equal_the_batch_and_late_penalty_applied(workflow: dict, tmp_path: Path) -> None:
    cdir = workflow["course"]
    book = _gradebook(cdir)
    assert set(book) == {"alice", "bob", "carol"}
    assert all(v == (pytest.approx(course.POINTS[k.split("/test_")[1]]), None, False)
               for k, v in book["alice"].items())
    assert book["bob"][f"{ID}/test_scale"][0] == 0 and book["carol"][f"{ID}/test_vjp"][0] == 0
    # the batch (make grade) on the same submissions, into its own gradebook: the same scores
    other = tmp_path / "course"
    shutil.copytree(cdir, other, ignore=shutil.ignore_patterns("autograded", "feedback", "gradebook.db"))
    proc = subprocess.run([sys.executable, "-m", "autograder", "batch", "--course-dir", str(other),
                           "--assignment", ID, "--checks-root", str(workflow["checks"]), "--no-progress"],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _gradebook(other) == book
    for name in book:
        ours = json.loads((cdir / "autograded" / name / ID / "results.json").read_text())
        theirs = json.loads((other / "autograded" / name / ID / "results.json").read_text())
        assert ours["tests"] == theirs["tests"]
    # nbgrader's LateSubmissionPlugin (penalty "zero") took bob's points; alice is on time
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{cdir / 'gradebook.db'}") as gb:
        bob, alice = gb.find_submission(ID, "bob"), gb.find_submission(ID, "alice")
        assert bob.total_seconds_late > 0 and alice.total_seconds_late == 0
        assert bob.late_submission_penalty == pytest.approx(bob.score) and bob.score == course.MAX_SCORE - 2
        assert alice.late_submission_penalty in (0, None)


def test_generate_feedback_shows_messages_never_staff_notes(workflow: dict) -> None:
    cdir, ta = workflow["course"], workflow["ta"]
    nbgrader(cdir, ta, "generate_feedback", ID)
    for name in ("alice", "bob", "carol"):
        fb = cdir / "feedback" / name / ID
        page = (fb / f"{ID}.html").read_text(encoding="utf-8")
        assert "Hidden checks for scale" in page and "Autograder (sandboxed hidden checks)" in page
        assert not (fb / "results.json").exists() and "staff_notes" not in page
        assert sorted(p.name for p in fb.iterdir()) == [f"{ID}.html", "submission_secret.txt", "timestamp.txt"]
    assert "scale(x, 2.5) is wrong" in (cdir / "feedback" / "bob" / ID / f"{ID}.html").read_text()
    assert "vjp" in (cdir / "feedback" / "carol" / ID / f"{ID}.html").read_text()
    # release_feedback: the exchange route, and carol's hand-unpacked submission does not crash it
    nbgrader(cdir, ta, "release_feedback", ID)
    released = list((workflow["exchange"] / "dlkit" / "feedback").glob("*.html"))
    assert len(released) == 3, released


def test_export_matches_results(workflow: dict) -> None:
    cdir, ta = workflow["course"], workflow["ta"]
    out = cdir / "grades.csv"
    nbgrader(cdir, ta, "export", "--to", str(out))
    rows = {r["student_id"]: r for r in csv.DictReader(out.open())}
    for name in ("alice", "bob", "carol"):
        r = json.loads((cdir / "autograded" / name / ID / "results.json").read_text())
        assert float(rows[name]["raw_score"]) == pytest.approx(r["score"])
        assert float(rows[name]["max_score"]) == pytest.approx(r["max_score"])
    assert float(rows["bob"]["score"]) == 0 and float(rows["alice"]["score"]) == course.MAX_SCORE


def test_hostile_submissions_score_as_in_the_batch(tmp_path: Path) -> None:
    names = sorted(hostile.CASES) if os.environ.get("DLKIT_NBGRADER_HOSTILE") == "all" else HOSTILE
    checks = course.make_checks(tmp_path / "checks", timeout=3.0)
    cdir = tmp_path / "course"
    course.write_notebook(cdir / "source" / ID / f"{ID}.ipynb", course.CORRECT)
    course_config(cdir, checks, tmp_path / "exchange")
    for name in names:
        case = hostile.CASES[name]
        folder = cdir / "submitted" / name / ID
        folder.mkdir(parents=True)
        (folder / f"{ID}.ipynb").write_text(hostile.notebook_text(case, [str(checks)]), encoding="utf-8")
        for fname, text in case.files.items():
            (folder / fname).write_text(text, encoding="utf-8")
    ta = _env(tmp_path, tmp_path / "ta")
    nbgrader(cdir, ta, "generate_assignment", ID)
    batch = tmp_path / "batch"
    shutil.copytree(cdir, batch)
    nbgrader(cdir, ta, "autograde", ID)
    proc = subprocess.run([sys.executable, "-m", "autograder", "batch", "--course-dir", str(batch),
                           "--assignment", ID, "--checks-root", str(checks), "--no-progress"],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours, theirs = _gradebook(cdir), _gradebook(batch)
    assert set(ours) == set(names)
    differ = {name: (ours[name], theirs[name]) for name in names if ours[name] != theirs[name]}
    assert not differ, differ
    assert not any(Path(m).exists() for m in ("/tmp/dlkit-hostile-conftest-ran", "/tmp/dlkit-hostile-sitecustomize-ran"))


def _formgrader_requirements() -> str | None:
    if not Path(os.environ.get("DLKIT_CHROMIUM", "/usr/bin/chromium")).is_file():
        return "no Chromium (Debian: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed"
    return None


@pytest.mark.skipif(_formgrader_requirements() is not None, reason=str(_formgrader_requirements()))
def test_formgrader_shows_scores_and_messages_per_cell(workflow: dict) -> None:
    """The TA's view: formgrader's Autograde button grades in the sandbox (same scores, no student
    code run), and formgrader (headless Chromium) shows each cell's autograded score and the
    checks' messages (answer-cell comments and the test cells' output)."""
    import socket
    import time
    import urllib.request
    from nbgrader.api import Gradebook
    from playwright.sync_api import sync_playwright
    cdir, base = workflow["course"], workflow["base"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "ta-token-for-tests"
    log = open(base / "formgrader.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={cdir}", "--allow-root",
         "--ServerApp.jpserver_extensions={'nbgrader.server_extensions.formgrader': True}"],
        cwd=str(cdir), env=workflow["ta"], stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    seen = {}
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1).read()
                break
            except OSError:
                assert server.poll() is None, (base / "formgrader.log").read_text()[-3000:]
                time.sleep(0.2)
        # formgrader's "Autograde" button (its API) on bob: the same scores, no student code run
        before = _gradebook(cdir)
        req = urllib.request.Request(f"{url}/formgrader/api/submission/{ID}/bob/autograde", data=b"",
                                     method="POST", headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(req, timeout=600) as r:
            answer = json.loads(r.read())
        assert answer["success"], answer
        assert "sandboxed hidden checks (no kernel)" in answer.get("log", ""), answer
        assert _gradebook(cdir) == before and not workflow["marker"].exists()
        with Gradebook(f"sqlite:///{cdir / 'gradebook.db'}") as gb:
            ids = {s: gb.find_submission_notebook(ID, ID, s).id for s in ("alice", "bob")}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=os.environ.get("DLKIT_CHROMIUM", "/usr/bin/chromium"),
                                        args=["--no-sandbox"])
            try:
                page = browser.new_page()
                page.goto(f"{url}/formgrader?token={token}")
                for student, sid in ids.items():
                    page.goto(f"{url}/formgrader/submissions/{sid}/", wait_until="load")
                    page.wait_for_selector("textarea#scale-comment", timeout=30_000)
                    page.wait_for_timeout(1500)            # formgrader fills scores/comments by fetch
                    seen[student] = {
                        "scores": {g: page.get_attribute(f"input.score#test_{g}", "placeholder")
                                   for g in course.POINTS},
                        "comment": page.get_attribute("textarea#scale-comment", "placeholder"),
                        "text": page.inner_text("body"),
                    }
                    page.screenshot(path=str(base / f"formgrader-{student}.png"), full_page=True)
            finally:
                browser.close()
    finally:
        stop_process_group(server)
        log.close()
    book = _gradebook(cdir)
    for student, view in seen.items():
        for g, shown in view["scores"].items():
            assert shown is not None and float(shown) == pytest.approx(book[student][f"{ID}/test_{g}"][0]), (student, g, shown)
        assert view["comment"].startswith("Hidden checks for scale"), view["comment"]
        assert "Autograder (sandboxed hidden checks)" in view["text"]
    assert "scale(x, 2.5) is wrong" in seen["bob"]["comment"] and "scale(x, 2.5) is wrong" in seen["bob"]["text"]
    assert float(seen["bob"]["scores"]["scale"]) == 0 and "[PASS]" in seen["alice"]["comment"]


def test_student_validates_before_submitting(workflow: dict, tmp_path: Path) -> None:
    """``nbgrader validate`` on a student's notebook (the student's own machine, the student's config)."""
    home = workflow["base"] / "alice"
    env = dict(_env(workflow["base"], home), USER="alice", LOGNAME="alice")
    proc = nbgrader(home, env, "validate", f"{ID}/{ID}.ipynb", ok=False)
    assert "Success! Your notebook passes all the tests." in proc.stdout + proc.stderr, proc.stdout[-2000:]
    broken = tmp_path / f"{ID}.ipynb"
    shutil.copy(home / ID / f"{ID}.ipynb", broken)
    nb = json.loads(broken.read_text())
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "scale":
            cell["source"] = "raise NotImplementedError()\n"
    broken.write_text(json.dumps(nb))
    proc = nbgrader(tmp_path, env, "validate", broken.name, ok=False)
    assert "VALIDATION FAILED" in proc.stdout + proc.stderr, proc.stdout[-2000:]


def test_student_lab_has_student_tools_not_instructor_tools(tmp_path: Path) -> None:
    """The release's jupyter-config (``make lab`` puts it on JUPYTER_CONFIG_PATH): formgrader's
    server extension off and its lab plugins (formgrader, create assignment, course list)
    disabled; the assignment list and validate stay."""
    import socket
    import time
    import urllib.error
    import urllib.request
    from autograder.release import write_student_jupyter_config
    config = write_student_jupyter_config(tmp_path / "release")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(_env(tmp_path, tmp_path / "student"), JUPYTER_CONFIG_PATH=str(config))
    server = subprocess.Popen(
        [str(BIN / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         "--IdentityProvider.token=t", f"--ServerApp.root_dir={tmp_path}", "--allow-root"],
        cwd=str(tmp_path), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"{url}{path}{'&' if '?' in path else '?'}token=t", timeout=10) as r:
                return r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, ""
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{url}/api/status?token=t", timeout=1).read()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-3000:]
                time.sleep(0.2)
        assert get("/formgrader")[0] == 404                       # no instructor server extension
        assert get("/assignments?course_id=dlkit")[0] == 200      # the student's assignment list
        status, page = get("/lab")
        assert status == 200
        import re
        found = re.search(r'<script[^>]*id="jupyter-config-data"[^>]*>(.*?)</script>', page, re.S)
        assert found, page[:2000]
        data = json.loads(found.group(1))
        disabled = data.get("disabledExtensions")
        disabled = set(disabled) if isinstance(disabled, list) else {k for k, v in (disabled or {}).items() if v}
        assert {"@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                "@jupyter/nbgrader:course-list"} <= disabled, disabled
        assert not {"@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:validate-assignment"} & disabled
    finally:
        stop_process_group(server)


def test_sandbox_limits_come_from_nbgrader_config(tmp_path: Path) -> None:
    from autograder.base import HarnessError
    from autograder.budgets import limits_from_config
    from autograder.sandbox import Limits
    assert limits_from_config(tmp_path) == Limits()
    (tmp_path / "nbgrader_config.py").write_text(
        "c = get_config()\nc.DlkitGrader.memory_mb = 2048\nc.DlkitGrader.submission_s = 90.5\n")
    got = limits_from_config(tmp_path)
    assert (got.memory_mb, got.submission_s, got.cpu_s) == (2048, 90.5, Limits().cpu_s)
    assert limits_from_config(ROOT) == Limits()        # the kit's own config sets none
    # the traits' own section, as nbgrader autograde reads it (DlkitGrader inherits them)
    (tmp_path / "nbgrader_config.py").write_text(
        "c = get_config()\nc.SandboxBudgets.cpu_s = 9\nc.SandboxBudgets.nproc = 5\nc.DlkitGrader.nproc = 6\n")
    got = limits_from_config(tmp_path)
    assert (got.cpu_s, got.nproc) == (9, 6)
    from traitlets.config.loader import PyFileConfigLoader

    from autograder.preprocessors import DlkitGrader
    nbgrader_sees = DlkitGrader(config=PyFileConfigLoader("nbgrader_config.py", path=str(tmp_path)).load_config())
    assert nbgrader_sees.limits() == got
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\nc.DlkitGrader.memory_mb = 'lots'\n")
    with pytest.raises(HarnessError, match="memory_mb"):
        limits_from_config(tmp_path)


def test_sandbox_limits_are_read_without_nbgrader(tmp_path: Path) -> None:
    """The batch's client and its pool processes learn the budgets without importing nbgrader,
    nbconvert or nbformat (about 1.8 s of CPU before a Dask batch could send its first submission)."""
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\nc.DlkitGrader.cpu_s = 7\n")
    code = ("import sys; from autograder.budgets import limits_from_config; "
            f"assert limits_from_config({str(tmp_path)!r}).cpu_s == 7; "
            "print(sorted(m for m in ('nbgrader', 'nbconvert', 'nbformat') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
