"""What the notebook tests share: where notebooks are, and the graded names of notebooks/GRADED.md."""
from __future__ import annotations

import functools
import re
from pathlib import Path

from dlkit import student

ROOT = Path(__file__).resolve().parents[1]


def nb_path(aid: str) -> Path:
    return ROOT / "notebooks" / aid / f"{aid}.ipynb"


@functools.cache
def notebook(aid: str) -> dict:
    """The parsed source notebook (cached: tests must not modify it)."""
    return student.read_notebook(nb_path(aid))


@functools.cache
def graded_md_names() -> dict[str, list[str]]:
    """Graded names per assignment, in table order, from the first table of notebooks/GRADED.md."""
    names: dict[str, list[str]] = {}
    current = None
    text = (ROOT / "notebooks" / "GRADED.md").read_text(encoding="utf-8")
    for line in text.split("## dlkit pieces")[0].splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cols) < 2:
            continue
        if cols[0] and cols[0] != "assignment":
            current = cols[0]
        m = re.match(r"`([A-Za-z_][A-Za-z0-9_]*)`", cols[1])
        if current and m:
            names.setdefault(current, []).append(m.group(1))
    return names
