"""The sandbox budgets a course sets in its ``nbgrader_config.py``, read without nbgrader.

``c.DlkitGrader.memory_mb = 2048``, ``c.DlkitGrader.submission_s = 120``, ... configure both
``nbgrader autograde`` (the :class:`autograder.preprocessors.DlkitGrader` preprocessor inherits
these traits from :class:`SandboxBudgets`) and ``make grade`` / ``python -m autograder batch``
(:func:`limits_from_config`).  Reading them costs traitlets alone: importing nbgrader, nbconvert
and nbformat to learn seven numbers took about 1.8 s of CPU, before a Dask batch could send its first
submission and in every process of the local pool.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from traitlets import Float, Integer, TraitError
from traitlets.config import Configurable

from .base import HarnessError

__all__ = ["SandboxBudgets", "limits_from_config", "LIMIT_TRAITS"]

#: sandbox limits (fields of :class:`autograder.sandbox.Limits`) settable as ``c.DlkitGrader.<name>``
LIMIT_TRAITS = ("memory_mb", "submission_s", "cpu_s", "nproc", "fsize_mb", "tmpfs_mb", "start_timeout_s")


class SandboxBudgets(Configurable):
    """The budgets of every sandbox that grades a submission (None: the kit's default)."""

    memory_mb = Integer(None, allow_none=True, help="memory of the whole sandbox tree (MB)").tag(config=True)
    submission_s = Float(None, allow_none=True, help="wall budget of one submission's grading (s)").tag(config=True)
    cpu_s = Integer(None, allow_none=True, help="CPU seconds of each sandbox process").tag(config=True)
    nproc = Integer(None, allow_none=True, help="processes/threads of the sandbox").tag(config=True)
    fsize_mb = Integer(None, allow_none=True, help="largest file the sandbox may write (MB)").tag(config=True)
    tmpfs_mb = Integer(None, allow_none=True, help="size of the sandbox's scratch folders (MB)").tag(config=True)
    start_timeout_s = Float(None, allow_none=True, help="sandbox start timeout (s)").tag(config=True)

    def limits(self) -> Any:
        from .sandbox import Limits
        given = {k: getattr(self, k) for k in LIMIT_TRAITS if getattr(self, k) is not None}
        return Limits(**given)


def limits_from_config(course_dir: str | os.PathLike) -> Any:
    """The sandbox :class:`~autograder.sandbox.Limits` set in ``course_dir/nbgrader_config.py``
    (``c.DlkitGrader.<limit>``); the defaults where it sets none (what ``make grade`` uses).

    A config that does not load gives the defaults (nbgrader itself reports it); a budget of the
    wrong type raises :class:`~autograder.base.HarnessError` naming the setting."""
    from .sandbox import Limits
    path = Path(course_dir) / "nbgrader_config.py"
    if not path.is_file():
        return Limits()
    from traitlets.config.loader import PyFileConfigLoader
    try:
        cfg = PyFileConfigLoader(path.name, path=str(path.parent)).load_config()
    except Exception:  # noqa: BLE001 - a broken config: nbgrader itself reports it
        return Limits()
    given: dict[str, Any] = {}
    for name in ("SandboxBudgets", "DlkitGrader"):     # as traitlets applies them: the subclass wins
        section = cfg[name] if name in cfg else {}
        given.update((k, section[k]) for k in LIMIT_TRAITS if k in section)
    try:
        return SandboxBudgets(**given).limits()
    except (TraitError, TypeError, ValueError) as exc:
        raise HarnessError(f"{path}: a c.DlkitGrader budget is not valid: {exc}") from None
