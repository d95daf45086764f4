"""What every part of the grading harness shares: its error type, paths and size limits, and
where the hidden checks and the graded names are (notebooks/GRADED.md)."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

HARNESS_VERSION = "1"
REPO = Path(__file__).resolve().parent.parent
CHECKS_ROOT = Path(__file__).resolve().parent
MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
MAX_CELL_CHARS = 200_000
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class HarnessError(Exception):
    """A problem of the grading setup (not of the submission): exit non-zero, record nothing."""


# =============================================================================================
# Locating checks and graded names
# =============================================================================================
def checks_dir(assignment: str, checks_root: str | os.PathLike | None = None) -> Path:
    """``<checks_root>/<assignment>/`` (default root: the autograder package), validated."""
    if not _ID.match(assignment or ""):
        raise HarnessError(f"invalid assignment id {assignment!r}")
    root = Path(checks_root) if checks_root is not None else CHECKS_ROOT
    folder = root / assignment
    if not folder.is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("test_*.py"))) \
            if root.is_dir() else []
        raise HarnessError(f"unknown assignment {assignment!r}: no hidden checks in {folder}"
                           + (f" (assignments with checks: {', '.join(known)})" if known else ""))
    if not any(folder.glob("test_*.py")):
        raise HarnessError(f"no hidden checks (test_*.py) in {folder}")
    return folder


def checks_fingerprint(folder: Path) -> str:
    """Hash of every file of the checks folder (a change of checks means re-grading)."""
    h = hashlib.sha256(HARNESS_VERSION.encode())
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def graded_names(graded_md: Path = REPO / "notebooks" / "GRADED.md") -> dict[str, str]:
    """``{graded name: assignment}`` from the table in notebooks/GRADED.md (empty if absent)."""
    names: dict[str, str] = {}
    try:
        text = graded_md.read_text(encoding="utf-8")
    except OSError:
        return names
    current = None
    for line in text.splitlines():
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cols) < 3 or not line.lstrip().startswith("|"):
            continue
        if _ID.match(cols[0]) and cols[0][:2].isdigit():
            current = cols[0]
        elif cols[0]:
            continue
        m = re.match(r"^`([A-Za-z_][A-Za-z0-9_]*)`$", cols[1])
        if current and m:
            names[m.group(1)] = current
    return names


def graded_md_path() -> Path:
    """notebooks/GRADED.md (``$DLKIT_GRADED_MD`` overrides it, for the grader's own tests)."""
    given = os.environ.get("DLKIT_GRADED_MD")
    return Path(given) if given else REPO / "notebooks" / "GRADED.md"


