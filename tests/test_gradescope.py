"""`python -m autograder gradescope ID`: the zip's run_autograder grades a Gradescope-shaped
submission folder with the sandboxed checks and writes results.json in Gradescope's schema."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "adversarial"))

import course  # noqa: E402

ID = course.ASSIGNMENT


@pytest.fixture(scope="module")
def autograder_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """/autograder as Gradescope lays it out: the zip unpacked into source/, run_autograder
    copied to the root, the student's files in submission/, results/ for results.json."""
    base = tmp_path_factory.mktemp("gradescope")
    checks = course.make_checks(base / "checks")
    zpath = base / "autograder.zip"
    proc = subprocess.run([sys.executable, "-m", "autograder", "gradescope", ID, "--out", str(zpath),
                           "--checks-root", str(checks)], cwd=str(ROOT), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    root = base / "autograder"
    with zipfile.ZipFile(zpath) as zf:
        names = zf.namelist()
        assert {"setup.sh", "run_autograder"} <= set(names)
        assert f"autograder/{ID}/test_fixture.py" in names
        assert not any(n.startswith("autograder/0") for n in names), "other assignments' checks"
        for info in zf.infolist():          # zipfile drops modes: restore them as unzip does
            zf.extract(info, root / "source")
            mode = info.external_attr >> 16
            if mode & 0o111:
                os.chmod(root / "source" / info.filename, mode & 0o777)
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    (root / "results").mkdir()
    return root


def run_autograder(root: Path, files: dict[str, str]) -> dict:
    sub = root / "submission"
    if sub.exists():
        shutil.rmtree(sub)
    for name, text in files.items():
        (sub / name).parent.mkdir(parents=True, exist_ok=True)
        (sub / name).write_text(text, encoding="utf-8")
    (root / "results" / "results.json").unlink(missing_ok=True)
    script = root / "run_autograder"
    assert os.stat(script).st_mode & stat.S_IXUSR
    proc = subprocess.run([str(script)], cwd=str(root), capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, GRADESCOPE_ROOT=str(root), DLKIT_PYTHON=sys.executable))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((root / "results" / "results.json").read_text())


def _schema(r: dict) -> None:
    assert isinstance(r["score"], float) and isinstance(r["tests"], list)
    assert "staff_notes" not in json.dumps(r)
    for t in r["tests"]:
        assert t["status"] in ("passed", "failed") and set(t) >= {"name", "score", "max_score", "output"}
        assert isinstance(t["extra_data"], dict)


def test_correct_submission_full_marks(autograder_root: Path) -> None:
    r = run_autograder(autograder_root, {f"{ID}.ipynb": json.dumps(course.notebook(course.CORRECT))})
    _schema(r)
    assert r["score"] == course.MAX_SCORE and all(t["status"] == "passed" for t in r["tests"])
    assert r["extra_data"]["assignment"] == ID and r["extra_data"]["max_score"] == course.MAX_SCORE


def test_wrong_answer_and_marker_never_written(autograder_root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    cells = course.with_cells(scale=f"try:\n    open({str(marker)!r}, 'w').write('x')\nexcept OSError:\n    pass\n"
                                    "def scale(x, a):\n    return x\n")
    r = run_autograder(autograder_root, {f"some_folder/{ID}.ipynb": json.dumps(course.notebook(cells))})
    _schema(r)
    assert r["score"] == course.MAX_SCORE - 2
    failed = [t for t in r["tests"] if t["status"] == "failed"]
    assert failed and all(t["extra_data"]["function"] == "scale" for t in failed)
    assert "scale(x, 2.5) is wrong" in failed[0]["output"]
    assert not marker.exists()


def test_no_notebook_scores_zero_with_reason(autograder_root: Path) -> None:
    r = run_autograder(autograder_root, {"answers.txt": "I forgot the notebook"})
    _schema(r)
    assert r["score"] == 0 and f"upload {ID}.ipynb" in r["output"]
