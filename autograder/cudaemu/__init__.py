"""Run CUDA C on the CPU: the emulator the grader uses for students' kernels.

``cuda_emu.h`` supplies ``threadIdx``, ``__syncthreads`` and friends so that a kernel source is
compiled UNCHANGED by the host C++ compiler; ``runtime.cpp`` runs every thread of a block as a
fiber, blocks one after another, and gives every "device" buffer a guard page, so the first
element read or written past a buffer faults and becomes a report naming the kernel and thread.
``launcher.py`` is its ctypes front end (stdlib only).

Who uses it:

* the grader (``autograder/06_gpu_kernels``): :mod:`autograder.cudaemu.grading` starts a
  sandbox with the C++ toolchain mounted read-only, sends the student's source, these files and
  ``sandbox_driver.py`` into it, and the driver compiles and launches the kernel THERE; only
  plain data (the buffers after each launch, a capped compiler log) comes back.  Student text is
  never compiled, preprocessed or parsed by the trusted process;
* the project's parity tests (``tests/cudaemu``), which build dlkit's own ``kernels/*.cu``
  against the same runtime.

It checks values, bounds and barrier use; not speed, nor races only real parallelism shows.
"""
from __future__ import annotations

from pathlib import Path

from .launcher import BAD_LAUNCH, BARRIER_MISUSE, MEMORY_FAULT, OK, UNKNOWN_KERNEL, Emulator

__all__ = ["HERE", "RUNTIME_FILES", "runtime_sources", "Emulator",
           "OK", "UNKNOWN_KERNEL", "BAD_LAUNCH", "BARRIER_MISUSE", "MEMORY_FAULT"]

HERE = Path(__file__).resolve().parent
#: What a build needs besides the kernel source (all of it plain text, none of it secret).
RUNTIME_FILES = ("cuda_emu.h", "registry.h", "runtime.cpp")


def runtime_sources() -> dict[str, str]:
    """``{file name: text}`` of the emulator runtime, to be written next to a kernel."""
    return {name: (HERE / name).read_text(encoding="utf-8") for name in RUNTIME_FILES}
