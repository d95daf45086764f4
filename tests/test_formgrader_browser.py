"""A hostile submission opened in the REAL formgrader, in headless Chromium, as the logged-in TA.

The batch grades a submission full of script payloads (tests/adversarial/formgrader_xss.py);
a Jupyter server with nbgrader's formgrader serves the course; Chromium (driven by playwright,
the system's /usr/bin/chromium) logs in with the server's token and opens the submission's
formgrader page.  No payload may run: no ``window.__pwned_<n>`` global, no ``pwned_<n>.txt``
written through ``/api/contents``.  A control submission whose autograded copy is replaced by
the raw submitted notebook (what the autograder used to copy) proves the payloads and the
detection work: there they do run.

Needs the system packages ``chromium`` (Debian: ``apt-get install chromium``) and the Python
package ``playwright`` (its bundled browsers are not used); skips with the reason otherwise.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "adversarial"))

import course  # noqa: E402
from reaper import stop_process_group  # noqa: E402
from formgrader_xss import PAYLOADS, xss_notebook  # noqa: E402

ID = course.ASSIGNMENT
CHROMIUM = os.environ.get("DLKIT_CHROMIUM", "/usr/bin/chromium")
TOKEN = "ta-token-for-tests"
#: where the screenshots go (default: the test's temporary folder) - look at them
SHOTS = os.environ.get("DLKIT_FORMGRADER_SCREENSHOTS")


def _requirements() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install playwright)"
    try:
        import nbgrader.server_extensions.formgrader  # noqa: F401
    except ImportError as exc:
        return f"nbgrader's formgrader cannot be imported: {exc}"
    return None


pytestmark = pytest.mark.skipif(_requirements() is not None, reason=str(_requirements()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """A graded course (hostile + control + honest) served by jupyter server with formgrader."""
    base = tmp_path_factory.mktemp("formgrader")
    checks = course.make_checks(base / "checks")
    cdir = base / "course"
    course.write_notebook(cdir / "source" / ID / f"{ID}.ipynb", course.CORRECT)
    hostile = json.dumps(xss_notebook(), indent=1)
    for student in ("mallory", "control"):
        path = cdir / "submitted" / student / ID / f"{ID}.ipynb"
        path.parent.mkdir(parents=True)
        path.write_text(hostile, encoding="utf-8")
    course.write_notebook(cdir / "submitted" / "honest" / ID / f"{ID}.ipynb", course.CORRECT)
    proc = subprocess.run([sys.executable, "-m", "autograder", "batch", "--course-dir", str(cdir),
                           "--assignment", ID, "--checks-root", str(checks), "--no-progress"],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the control: what formgrader would get if the submitted file were copied as it is
    shutil.copyfile(cdir / "submitted" / "control" / ID / f"{ID}.ipynb",
                    cdir / "autograded" / "control" / ID / f"{ID}.ipynb")
    (cdir / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.root = {str(cdir)!r}\nc.CourseDirectory.course_id = 'dlkit'\n",
        encoding="utf-8")
    port = _free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(base / "jupyter-config"),
               JUPYTER_RUNTIME_DIR=str(base / "jupyter-runtime"), HOME=str(base))
    log = open(base / "server.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={cdir}", "--allow-root",
         "--ServerApp.jpserver_extensions={'nbgrader.server_extensions.formgrader': True}"],
        cwd=str(cdir), env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=1).read()
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail("jupyter server exited:\n" + (base / "server.log").read_text()[-3000:])
                time.sleep(0.2)
        from nbgrader.api import Gradebook
        with Gradebook(f"sqlite:///{cdir / 'gradebook.db'}") as gb:
            ids = {s: gb.find_submission_notebook(ID, ID, s).id for s in ("mallory", "control", "honest")}
        yield {"url": url, "course": cdir, "ids": ids, "base": base}
    finally:
        stop_process_group(server)
        log.close()


def _visit(served: dict, student: str, shot: Path) -> dict:
    """Open the student's formgrader page as the TA; what ran, what was written, what rendered."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(f"{served['url']}/formgrader?token={TOKEN}")          # the TA logs in
            page.goto(f"{served['url']}/formgrader/submissions/{served['ids'][student]}/", wait_until="load")
            page.wait_for_timeout(2500)                                       # onload / fetch time
            for link in page.query_selector_all("a#jslink"):                  # a TA clicking a link
                try:
                    link.click(timeout=1000)
                except Exception:  # noqa: BLE001 - a sanitized link may be unclickable
                    pass
            page.wait_for_timeout(500)
            ran = page.evaluate(f"[{','.join(str(n) for n in PAYLOADS)}].filter(n => window['__pwned_' + n])")
            page.screenshot(path=str(shot), full_page=True)
            rendered = {"answer": page.locator("text=def scale").count(),
                        "score_inputs": page.locator("input.score").count(),
                        "status": page.title()}
        finally:
            browser.close()
    written = sorted(p.name for p in served["course"].glob("pwned_*.txt"))
    for p in served["course"].glob("pwned_*.txt"):
        p.unlink()
    return {"ran": ran, "written": written, **rendered}


def test_control_payloads_run_on_the_raw_notebook(served: dict) -> None:
    """Without sanitizing, the payloads do run with the TA's session (the detection works)."""
    seen = _visit(served, "control", Path(SHOTS or served["base"]) / "control.png")
    print(f"control (raw notebook): payloads that ran {seen['ran']}, files written {seen['written']}")
    assert seen["ran"], seen
    assert seen["written"], f"no payload managed a PUT /api/contents with the TA's session: {seen}"


def test_no_student_script_runs_in_formgrader(served: dict) -> None:
    shot = Path(SHOTS or served["base"]) / "mallory.png"
    seen = _visit(served, "mallory", shot)
    print(f"screenshot: {shot}")
    assert seen["answer"] >= 1 and seen["score_inputs"] >= 5, f"formgrader did not render the notebook: {seen}"
    assert seen["ran"] == [], f"student script ran in formgrader: payloads {seen['ran']}"
    assert seen["written"] == [], f"student script wrote files with the TA's session: {seen['written']}"


def test_hostile_submission_still_graded_on_its_answers(served: dict) -> None:
    r = json.loads((served["course"] / "autograded" / "mallory" / ID / "results.json").read_text())
    assert r["score"] == r["max_score"] == course.MAX_SCORE, r
