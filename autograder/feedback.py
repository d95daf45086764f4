"""Per-student feedback files in nbgrader's layout.

nbgrader's ``release_feedback`` publishes ``feedback/<student>/<assignment>/<notebook>.html``
and reads ``timestamp.txt`` and ``submission_secret.txt`` beside it (their bytes, as the batch
read them safely from the submission, are written here), so ``nbgrader release_feedback`` /
``fetch_feedback`` work unchanged on what we write.  The page shows each check's result and
message; ``staff_notes`` (internal check errors) are never included.

Every file is written fresh by :func:`atomic_write` (this process's umask, never through a link)
and text that cannot be encoded (e.g. a lone surrogate in a student's exception message) is
escaped (:func:`printable`), never a crash.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

__all__ = ["render_html", "write_feedback", "atomic_write", "printable"]


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


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem} table{border-collapse:collapse;margin:1rem 0} td,th{padding:.25rem .6rem;
border-bottom:1px solid #ddd;text-align:left} .passed{color:#17672d}.failed,.error{color:#a4161a}
.skipped,.not{color:#7a5c00} pre{background:#f6f6f6;padding:.6rem;white-space:pre-wrap;
overflow-wrap:anywhere;border-left:3px solid #ccc}
"""


def render_html(results: dict[str, Any], student: str, notebook: str) -> str:
    """The feedback page for one graded notebook."""
    e = html.escape
    rows = []
    for name, f in results.get("functions", {}).items():
        rows.append(f"<tr><td><code>{e(name)}</code></td><td>{f['score']:g} / {f['max_score']:g}</td></tr>")
    checks = []
    for t in results.get("tests", []):
        status = t.get("status", "passed" if t["score"] == t["max_score"] else "failed")
        body = f"<pre>{e(t['output'])}</pre>" if t.get("output") else ""
        checks.append(f"<li><span class='{e(status.split()[0])}'>{e(status.upper())}</span> "
                      f"{t['score']:g}/{t['max_score']:g} &mdash; {e(t['name'])}{body}</li>")
    overall = f"<pre>{e(results['output'])}</pre>" if results.get("output") else ""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Feedback: {e(notebook)}</title>"
            f"<style>{_STYLE}</style></head><body>"
            f"<h1>{e(results.get('assignment', ''))} &mdash; {e(notebook)}</h1>"
            f"<p>Student: <b>{e(student)}</b>. Autograded score: <b>{results['score']:g} / "
            f"{results['max_score']:g}</b> (hidden checks; manual grading may add to this).</p>"
            f"{overall}<table><tr><th>function</th><th>points</th></tr>{''.join(rows)}</table>"
            f"<h2>Checks</h2><ul>{''.join(checks)}</ul></body></html>")


def write_feedback(feedback_dir: Path, results: dict[str, Any], student: str, notebook: str,
                   files: dict[str, bytes] | None = None) -> Path:
    """Write ``feedback_dir/<notebook>.html`` and ``files`` (nbgrader's timestamp/secret files:
    name -> bytes already read from the submission by :func:`autograder.safefile.read_file`)."""
    path = feedback_dir / f"{notebook}.html"
    atomic_write(path, render_html(results, student, notebook))
    for name, data in (files or {}).items():
        atomic_write(feedback_dir / name, data)
    return path
