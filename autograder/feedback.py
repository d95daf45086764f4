"""Check messages for nbgrader's channels, and safe file writing.

The kit no longer writes its own feedback pages: the checks' messages become nbgrader comments
on the answer cells and the output of the autograder-tests cells (:func:`check_messages`,
:func:`cell_output_text`; written by ``nbgrader autograde`` through
:mod:`autograder.preprocessors` and by the batch through :mod:`autograder.gradebook`), so
formgrader shows them and ``nbgrader generate_feedback`` renders them into ``feedback/``.
``staff_notes`` (internal check errors) are never included.

Every file is written fresh by :func:`atomic_write` (this process's umask, never through a link)
and text that cannot be encoded (e.g. a lone surrogate in a student's exception message) is
escaped (:func:`printable`), never a crash.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["check_messages", "cell_output_text", "atomic_write", "printable"]


def printable(text: str) -> str:
    """``text`` with whatever UTF-8 cannot encode (lone surrogates) escaped as ``\\udcff``."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``path`` via a new temporary file and ``os.replace`` (never a half-written file).

    The temporary file is created exclusively and without following links, with this
    process's default permissions; text is UTF-8 with unencodable characters escaped.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "backslashreplace")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.unlink()                       # a leftover of a killed run
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _status_word(t: dict[str, Any]) -> str:
    status = t.get("status") or ("passed" if t["score"] == t["max_score"] else "failed")
    return "PASS" if status == "passed" else status.upper()


def check_messages(results: dict[str, Any]) -> dict[str, str]:
    """``{function: comment}``: what the hidden checks say about each graded function.

    Stored as the nbgrader comment (``auto_comment``) of the function's answer cell, so formgrader
    shows it beside the cell and ``nbgrader generate_feedback`` renders it.  Built from the
    student-facing ``output`` of each check only: ``staff_notes`` never reach a comment.  A
    message about the whole submission (``results["output"]``) heads every comment.
    """
    per: dict[str, list[str]] = {}
    for t in results.get("tests", []):
        per.setdefault(t.get("function", ""), []).append(t)
    overall = printable(results.get("output") or "")
    out: dict[str, str] = {}
    for function, tests in per.items():
        f = results.get("functions", {}).get(function, {})
        lines = [f"Hidden checks for {function}: {f.get('score', 0):g} / {f.get('max_score', 0):g} points"]
        if overall:
            lines.append(overall)
        for t in tests:
            lines.append(f"[{_status_word(t)}] {t['name']} ({t['score']:g}/{t['max_score']:g})")
            if t.get("output") and t["output"] != results.get("output"):
                lines += ["    " + ln for ln in printable(t["output"]).splitlines()[:40]]
        out[function] = "\n".join(lines)
    return out


def cell_output_text(results: dict[str, Any], function: str, cell_score: float, cell_max: float) -> str:
    """The output shown under the autograder-tests cell ``test_<function>`` (formgrader, feedback)."""
    text = check_messages(results).get(function, "")
    return f"Autograder (sandboxed hidden checks): {cell_score:g} / {cell_max:g} points\n{text}\n"


def show_check_results(nb: Any, results: dict[str, Any], scores: dict[str, float],
                       cell_max: dict[str, float]) -> Any:
    """Set the outputs of ``nb``'s autograder-tests cells (an nbformat notebook, changed in place)
    to the checks' results, as formgrader and nbgrader's feedback show a cell's output; every
    other code cell's outputs are cleared (nothing in the notebook was executed)."""
    from nbformat import v4
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        cell["outputs"] = []
        cell["execution_count"] = None
        gid = ((cell.get("metadata") or {}).get("nbgrader") or {}).get("grade_id")
        if gid in scores and gid in cell_max:
            text = cell_output_text(results, gid[len("test_"):], scores[gid], cell_max[gid])
            cell["outputs"] = [v4.new_output("stream", name="stdout", text=text)]
    return nb


def ensure_release_files(folder: Path) -> None:
    """``timestamp.txt`` and ``submission_secret.txt`` in an autograded folder, written when the
    submission lacked them (unpacked by hand from an LMS download), so that ``nbgrader
    generate_feedback`` copies them to ``feedback/`` and ``nbgrader release_feedback`` does not
    crash.  The timestamp is then the grading time (never used for late penalties: those use the
    gradebook's submission time, set only from a submitted ``timestamp.txt``); the secret is
    random (no student holds it, so such feedback goes back through the LMS, not
    ``fetch_feedback``).  Files already there are kept (reruns change nothing)."""
    import datetime
    import secrets
    folder = Path(folder)
    if not (folder / "timestamp.txt").is_file():
        now = datetime.datetime.now(datetime.timezone.utc)
        atomic_write(folder / "timestamp.txt", now.strftime("%Y-%m-%d %H:%M:%S.%f UTC"))
    if not (folder / "submission_secret.txt").is_file():
        atomic_write(folder / "submission_secret.txt", secrets.token_hex(16))
