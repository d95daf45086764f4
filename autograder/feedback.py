"""Per-student feedback files in nbgrader's layout.

nbgrader's ``release_feedback`` publishes ``feedback/<student>/<assignment>/<notebook>.html``
and reads ``timestamp.txt`` and ``submission_secret.txt`` beside it (copied here from the
submission, when present), so ``nbgrader release_feedback`` / ``fetch_feedback`` work unchanged
on what we write.  The page shows each check's result and message; ``staff_notes`` (internal
check errors) are never included.
"""
from __future__ import annotations

import html
import os
import shutil
from pathlib import Path
from typing import Any

__all__ = ["render_html", "write_feedback", "atomic_write"]


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``path`` via a temporary file and ``os.replace`` (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(tmp, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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


def write_feedback(feedback_dir: Path, submitted_dir: Path, results: dict[str, Any], student: str,
                   notebook: str) -> Path:
    """Write ``feedback_dir/<notebook>.html`` (+ nbgrader's timestamp/secret files)."""
    path = feedback_dir / f"{notebook}.html"
    atomic_write(path, render_html(results, student, notebook))
    for name in ("timestamp.txt", "submission_secret.txt"):
        src = submitted_dir / name
        if src.is_file():
            tmp = feedback_dir / f".{name}.tmp"
            shutil.copyfile(src, tmp)
            os.replace(tmp, feedback_dir / name)
    return path
