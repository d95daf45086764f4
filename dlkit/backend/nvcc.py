"""Compile CUDA C source to PTX with ``nvcc``, without a GPU.

Used by the kernel tests (every ``kernels/*.cu`` must compile), by the GPU notebook to check a
student's kernel before it runs, and by the autograder.  Only the CUDA *toolkit* is needed:
``nvcc --ptx`` compiles for a virtual architecture and never talks to a driver.

    >>> from dlkit.backend import nvcc
    >>> if nvcc.nvcc_available():
    ...     result = nvcc.compile_ptx('extern "C" __global__ void k(float* x) { x[0] = 1; }')
    ...     assert result.ok and result.entries == ["k"]
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .cuda_kernels import KERNELS_DIR  # noqa: F401  (re-exported; defined in one place only)

__all__ = ["CompileResult", "nvcc_path", "nvcc_available", "compile_ptx", "compile_file",
           "ptx_entries", "KERNELS_DIR"]

_ENTRY = re.compile(r"^\s*(?:\.visible\s+|\.weak\s+)?\.entry\s+([A-Za-z_$][\w$]*)\s*\(", re.M)


@dataclass(frozen=True)
class CompileResult:
    """Outcome of one ``nvcc --ptx`` run.

    ``ok``: nvcc exited 0 (and produced PTX).  ``log``: nvcc's stderr + stdout (warnings and
    errors, empty on a clean compile).  ``ptx``: the PTX text ("" on failure).  ``command``: the
    argument list that ran.  ``entries``: names of the ``__global__`` kernels in the PTX (as a
    launcher sees them: unmangled for ``extern "C"`` kernels, C++-mangled otherwise).
    """

    ok: bool
    log: str
    ptx: str
    command: tuple[str, ...] = ()
    entries: list[str] = field(default_factory=list)

    def first_lines(self, n: int = 8) -> str:
        """The first ``n`` non-empty lines of the log (for short error messages)."""
        lines = [line for line in self.log.splitlines() if line.strip()]
        return "\n".join(lines[:n])


def nvcc_path() -> str | None:
    """Path of the ``nvcc`` that would run (``$NVCC``, else PATH, else /usr/local/cuda/bin)."""
    env = os.environ.get("NVCC")
    if env and shutil.which(env):
        return shutil.which(env)
    found = shutil.which("nvcc")
    if found:
        return found
    fallback = Path("/usr/local/cuda/bin/nvcc")
    return str(fallback) if fallback.is_file() and os.access(fallback, os.X_OK) else None


def nvcc_available() -> bool:
    """True when an ``nvcc`` executable can be found (a GPU is not needed)."""
    return nvcc_path() is not None


def ptx_entries(ptx: str) -> list[str]:
    """Names of the kernels (``.entry`` directives) defined in PTX text, in order."""
    return _ENTRY.findall(ptx)


def compile_ptx(source: str, arch: str = "sm_80", *, werror: bool = False,
                include_dirs: Sequence[str | os.PathLike] = (), options: Sequence[str] = (),
                timeout: float | None = 120.0, filename: str = "kernel.cu") -> CompileResult:
    """Compile CUDA C ``source`` to PTX for ``arch`` (e.g. ``"sm_80"``, ``"sm_90"``).

    Runs ``nvcc --ptx -arch=ARCH [-Werror all-warnings] [-I DIR ...] OPTIONS`` on a copy of the
    source in a fresh temporary directory (deleted afterwards).  ``werror=True`` turns every
    warning into an error (the project's own kernels are held to that).  A compiler error, a
    timeout, or an unsupported ``arch`` gives ``ok=False`` with the reason in ``log``; nothing
    is raised for bad *source*.  ``timeout=None`` waits for nvcc however long it takes.

    Raises ``FileNotFoundError`` when nvcc is not installed (check :func:`nvcc_available`).
    """
    nvcc = nvcc_path()
    if nvcc is None:
        raise FileNotFoundError("nvcc not found (install the CUDA toolkit or set $NVCC)")
    with tempfile.TemporaryDirectory(prefix="dlkit-nvcc-") as tmp:
        src = Path(tmp) / filename
        out = Path(tmp) / (Path(filename).stem + ".ptx")
        src.write_text(source)
        cmd = [nvcc, "--ptx", f"-arch={arch}", "-o", str(out)]
        if werror:
            cmd += ["-Werror", "all-warnings"]
        for d in include_dirs:
            cmd += ["-I", str(d)]
        cmd += [*options, str(src)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL, cwd=tmp)
        except subprocess.TimeoutExpired:
            return CompileResult(False, f"nvcc timed out after {timeout:g} s", "", tuple(cmd))
        log = (proc.stderr + proc.stdout).replace(tmp + os.sep, "")
        if proc.returncode != 0 or not out.is_file():
            return CompileResult(False, log or f"nvcc exited with status {proc.returncode}",
                                 "", tuple(cmd))
        ptx = out.read_text()
        return CompileResult(True, log, ptx, tuple(cmd), ptx_entries(ptx))


def compile_file(path: str | os.PathLike, arch: str = "sm_80", *, werror: bool = False,
                 include_dirs: Sequence[str | os.PathLike] = (), options: Sequence[str] = (),
                 timeout: float | None = 120.0) -> CompileResult:
    """:func:`compile_ptx` on a ``.cu`` file; its own directory is on the include path."""
    path = Path(path)
    return compile_ptx(path.read_text(), arch, werror=werror,
                       include_dirs=[path.parent, *include_dirs], options=options,
                       timeout=timeout, filename=path.name)
