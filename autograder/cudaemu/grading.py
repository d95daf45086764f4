"""Trusted side: compile and run a student's CUDA kernel in a sandbox, on the CPU emulator.

:func:`run_kernel` never compiles, preprocesses or parses the student's text here.  It starts a
fresh :class:`autograder.sandbox.Sandbox` that holds NO student Python and no grader file, with
the C++ toolchain mounted read-only (``toolchain=True``), the sandbox's memory / process / CPU
limits and a wall-clock deadline; the driver (``launcher.py`` + ``sandbox_driver.py``) compiles
the kernel there (the compiler in a process group of its own, killed on overrun), launches it for
every case on guard-paged buffers, and returns plain data.  The sandbox, and everything it
started, is killed when the call ends.  Every field of the reply is checked before use.
"""
from __future__ import annotations

import hashlib
import shutil
import time
from collections import OrderedDict
from typing import Any

import numpy as np

from .. import worker as wire
from ..sandbox import Limits, Sandbox, SandboxError, SandboxStartError, WorkerTimeout
from . import HERE, runtime_sources

__all__ = ["run_kernel", "compiler", "nvcc", "gpu_usable", "MAX_SOURCE_CHARS", "KernelRun", "ResultCache"]

#: Longest kernel source accepted (a SAXPY kernel is a few hundred characters).
MAX_SOURCE_CHARS = 20_000
#: Compiler output kept in the sandbox and shown to the student at most.
LOG_CAP = 4_000
#: Budgets: the compiler's own (inside), and the whole request (compile + every launch).
COMPILE_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 45.0
#: Limits of the kernel sandbox: the compiler runs under them (per process: address space,
#: CPU seconds; for the sandbox uid: processes), and the tmpfs root caps what it can write.
KERNEL_LIMITS = dict(cpu_s=60, memory_mb=1536, nproc=16, fsize_mb=16, nofile=64, tmpfs_mb=128)

KernelRun = dict   # {"status": ..., "log": str, "runs": [...], "reason": str}


def compiler() -> str | None:
    """The host C++ compiler the sandbox runs (g++, else c++, else clang++), or None."""
    return shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


def nvcc() -> str | None:
    """nvcc ($NVCC, else on PATH, else /usr/local/cuda/bin/nvcc), or None."""
    import os
    for candidate in (os.environ.get("NVCC"), shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def gpu_usable() -> bool:
    """Whether kernels can also be launched on a GPU here: NVIDIA device nodes, the driver
    library and nvcc.  ``DLKIT_KERNEL_DEVICE=emulator`` turns the GPU off, ``=gpu`` insists."""
    import ctypes
    import os
    from ..sandbox import gpu_device_nodes
    wanted = os.environ.get("DLKIT_KERNEL_DEVICE", "auto")
    if wanted == "emulator":
        return False
    if not gpu_device_nodes() or nvcc() is None:
        return False
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def _driver_source() -> str:
    parts = []
    for name in ("launcher.py", "sandbox_driver.py"):
        text = (HERE / name).read_text(encoding="utf-8")
        parts.append("\n".join(line for line in text.splitlines() if not line.startswith("from __future__")))
    return "from __future__ import annotations\n\n" + "\n\n".join(parts)


def _bad(status: str, reason: str, log: str = "") -> KernelRun:
    return {"status": status, "reason": reason, "log": log, "runs": []}


def _validate(value: Any, cases: list[dict], n_pointers: int) -> KernelRun:
    """The driver's reply, type-checked field by field against what was sent."""
    if type(value) is not dict or value.get("status") not in ("ran", "compile_error", "compile_timeout",
                                                               "no_kernel", "unavailable"):
        return _bad("invalid", "the kernel sandbox sent a malformed reply")
    log = value.get("log")
    log = log[:LOG_CAP + 100] if type(log) is str else ""
    runs = value.get("runs")
    if value["status"] != "ran":
        return {"status": value["status"], "reason": "", "log": log, "runs": []}
    if type(runs) is not list or len(runs) != len(cases):
        return _bad("invalid", "the kernel sandbox sent a malformed reply", log)
    out = []
    for run, case in zip(runs, cases):
        sent = [a["buffer"] for a in case["args"] if isinstance(a, dict)]
        if (type(run) is not dict or type(run.get("code")) is not int or type(run.get("message")) is not str
                or type(run.get("buffers")) is not list or len(run["buffers"]) != n_pointers
                or type(run.get("overwritten")) is not list or len(run["overwritten"]) != n_pointers
                or not all(type(c) is int and c >= 0 for c in run["overwritten"])
                or not all(type(b) is np.ndarray and b.shape == s.shape and b.dtype == s.dtype
                           for b, s in zip(run["buffers"], sent))
                or run.get("fault_arg") is not None and type(run["fault_arg"]) is not int
                or run.get("fault_offset") is not None and type(run["fault_offset"]) is not int):
            return _bad("invalid", "the kernel sandbox sent a malformed reply", log)
        out.append({"code": run["code"], "message": run["message"][:500], "buffers": run["buffers"],
                    "overwritten": run["overwritten"], "fault_arg": run.get("fault_arg"),
                    "fault_offset": run.get("fault_offset")})
    return {"status": "ran", "reason": "", "log": log, "runs": out}


def run_kernel(source: Any, spec: dict, cases: list[dict], *, timeout: float = REQUEST_TIMEOUT_S,
               limits: Limits | None = None, isolate: bool = True, device: str = "emulator") -> KernelRun:
    """Compile ``source`` (the student's CUDA C, untrusted text) and launch kernel ``spec["name"]``
    once per case, all inside one fresh sandbox; returns a checked :data:`KernelRun`.

    ``spec``: ``{"name": "saxpy", "params": [[code, C type], ...]}`` with code ``"i"``, ``"f"``,
    ``"q"``, ``"d"`` (scalars) or ``"P"`` (a device buffer).  A case: ``{"grid": [gx, gy, gz],
    "block": [bx, by, bz], "args": [scalar or {"buffer": ndarray}, ...], "at_end": bool}``
    (``at_end``: buffers end at their guard page, else start right after one).

    ``status``: ``"ran"`` (``runs``: per case the launch code -- 0 ok, 2 bad launch, 3 barrier
    misuse, 4 memory fault --, the message, the buffers after the launch, canary bytes
    overwritten around each buffer, and which argument a fault hit), or one of
    ``compile_error`` / ``compile_timeout`` (``log``: the compiler's capped output),
    ``no_kernel``, ``too_long``, ``not_text``, ``timeout``, ``crashed``, ``unavailable``,
    ``invalid``.

    ``device="gpu"``: compile with nvcc (to PTX, inside the sandbox, under its own address-space
    limit) and launch on the GPU through the driver library, with canary bytes around every
    buffer (a GPU has no guard pages).  NOT YET RUN ON A DEVICE (see the README); any failure
    to set the device up is ``unavailable``, and callers then use the emulator.
    """
    if type(source) is not str:
        return _bad("not_text", f"the kernel must be a str of CUDA C source, not {type(source).__name__}")
    if len(source) > MAX_SOURCE_CHARS:
        return _bad("too_long", f"the kernel source has {len(source)} characters (at most {MAX_SOURCE_CHARS})")
    cxx = compiler()
    if cxx is None and device == "emulator":
        return _bad("unavailable", "no C++ compiler (g++, c++ or clang++) on the grading machine")
    n_pointers = sum(1 for code, _ in spec["params"] if code == "P")
    options = {"cxx": cxx or "", "compile_timeout": min(COMPILE_TIMEOUT_S, 0.6 * timeout), "log_cap": LOG_CAP,
               "device": device}
    if device == "gpu":
        if nvcc() is None:
            return _bad("unavailable", "nvcc is not installed")
        options["nvcc"] = nvcc()
        # The CUDA driver reserves far more address space than RLIMIT_AS would allow; nvcc,
        # which reads the student's text, gets its own limit inside (compile_memory_mb).
        limits = limits or Limits(**dict(KERNEL_LIMITS, memory_mb=1 << 26))
    blobs: list[bytes] = []
    args = wire.encode([runtime_sources(), source, spec, cases, options], blobs)
    kwargs = wire.encode({}, blobs)
    sandbox = Sandbox(None, limits or Limits(**KERNEL_LIMITS), isolate=isolate, toolchain=True,
                      gpu=device == "gpu")
    try:
        try:
            sandbox.start()
        except SandboxStartError as exc:
            return _bad("unavailable", f"the kernel sandbox did not start: {exc}")
        message = {"op": "run", "source": _driver_source(), "entry": "entry", "args": args, "kwargs": kwargs}
        try:
            reply, out = sandbox.request(message, blobs, time.monotonic() + timeout)
        except WorkerTimeout:
            return _bad("timeout", f"compiling and running the kernel took longer than {timeout:g} s")
        except SandboxError as exc:
            return _bad("crashed", f"the process running the kernel died: {exc}")
        if type(reply) is not dict or reply.get("ok") is not True:
            err = reply.get("error") if type(reply) is dict else None
            what = f"{err.get('type')}: {str(err.get('message'))[:300]}" if type(err) is dict else "no reply"
            return _bad("crashed", f"the kernel run failed ({what})")
        try:
            value = wire.decode(reply.get("value"), out, max_elements=1 << 22)
        except wire.ProtocolError as exc:
            return _bad("invalid", f"the kernel sandbox sent a malformed reply ({exc})")
        return _validate(value, cases, n_pointers)
    finally:
        sandbox.close()


class ResultCache:
    """A few recent :func:`run_kernel` results, keyed by everything that determines them (the
    source and the cases), so the checks of one submission compile and run its kernel once."""

    def __init__(self, size: int = 32) -> None:
        self.size, self.items = size, OrderedDict()

    @staticmethod
    def key(source: str, spec: dict, cases: list[dict]) -> str:
        h = hashlib.sha256(source.encode("utf-8", "surrogatepass"))
        h.update(repr(spec).encode())
        for case in cases:
            for a in case["args"]:
                h.update(a["buffer"].tobytes() if isinstance(a, dict) else repr(a).encode())
            h.update(repr((case["grid"], case["block"], case.get("at_end"))).encode())
        return h.hexdigest()

    def get(self, source: Any, spec: dict, cases: list[dict], **kw: Any) -> KernelRun:
        if type(source) is not str:
            return run_kernel(source, spec, cases, **kw)
        k = self.key(source, spec, cases) + "/" + str(kw.get("device", "emulator"))
        if k not in self.items:
            result = run_kernel(source, spec, cases, **kw)
            if result["status"] == "unavailable":
                return result                 # the machine's problem, not the source's
            self.items[k] = result
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        self.items.move_to_end(k)
        return self.items[k]

