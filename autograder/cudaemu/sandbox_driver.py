"""Trusted driver that compiles and launches a student's CUDA kernel INSIDE the sandbox.

Self-contained (stdlib + numpy): :mod:`autograder.cudaemu.grading` sends this text, preceded by
``launcher.py``'s, to a sandbox started with the C++ toolchain mounted read-only and without any
student Python in it; the worker runs ``entry(...)`` there.  Only plain data comes back: a status,
the compiler's log (capped here, capped again by the trusted side) and, per launch, the buffers
after it and where a fault happened.  The trusted side checks every value it gets.
"""
from __future__ import annotations

import os
import signal
import subprocess
import tempfile

# Empty stand-ins for the CUDA headers a kernel may include out of habit (the emulator's
# cuda_emu.h, force-included, provides what they would).
STUB_HEADERS = ("cuda_runtime.h", "cuda.h", "device_launch_parameters.h", "cuda_runtime_api.h")
CANARY = 0xA5


def _cdecl(params: list) -> str:
    return ", ".join(ctype for _, ctype in params)


def _thunk(name: str, params: list) -> str:
    args = []
    for k, (code, ctype) in enumerate(params):
        if code == "P":
            args.append(f"({ctype})*(void**)a[{k}]")
        else:
            args.append(f"*({ctype}*)a[{k}]")
    return (f'#include "kernel.cu"\n'
            f'#include "dlkit_contract.h"\n'
            f'#include "registry.h"\n'
            f"namespace {{\n"
            f"void dlkit_thunk(void** a) {{ {name}({', '.join(args)}); }}\n"
            f'Registrar dlkit_registrar("{name}", dlkit_thunk);\n'
            f"}}  // namespace\n")


def _compile(cxx: str, work: str, timeout: float, log_cap: int) -> tuple[str, str]:
    """Build kernel.so in ``work``; returns (status, log).  The compiler runs in a process group
    of its own, killed whole when it overruns ``timeout``."""
    log_path = os.path.join(work, "compile.log")
    cmd = [cxx, "-std=c++17", "-O1", "-fPIC", "-shared", "-w", "-fmax-errors=10",
           "-I", work, "-I", os.path.join(work, "include"), "-include", os.path.join(work, "cuda_emu.h"),
           "runtime.cpp", "thunk.cpp", "-o", "kernel.so", "-Wl,-z,defs"]
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.Popen(cmd, cwd=work, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    process_group=0)
        except OSError as exc:
            return "unavailable", f"cannot run the C++ compiler: {exc}"
        status = "ok"
        try:
            code = proc.wait(timeout=timeout)
            if code != 0:
                status = "compile_error"
        except subprocess.TimeoutExpired:
            status = "compile_timeout"
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)   # whatever of the group is still there
            except OSError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    with open(log_path, "rb") as fh:
        text = fh.read(log_cap + 1).decode("utf-8", "replace")
    if len(text) > log_cap:
        text = text[:log_cap] + "\n... (compiler output cut)"
    return status, text.replace(work + "/", "")


def _fill(address: int, data: bytes) -> None:
    import ctypes
    ctypes.memmove(address, data, len(data))


def _read(address: int, nbytes: int) -> bytes:
    import ctypes
    return ctypes.string_at(address, nbytes)


def _launch_case(emu, name: str, params: list, case: dict) -> dict:
    import numpy as np
    page = os.sysconf("SC_PAGESIZE")
    at_end = bool(case.get("at_end", True))
    items, buffers = [], []
    try:
        for (code, _), value in zip(params, case["args"]):
            if code == "P":
                arr = np.ascontiguousarray(value["buffer"])
                nbytes = max(arr.nbytes, 1)
                address = emu.alloc(nbytes, at_end=at_end)
                _fill(address, arr.tobytes())
                # The rest of the guarded pages on the open side holds a canary: a write there
                # (past the end, or before the start) shows even where no guard page is hit.
                if at_end:
                    slack_start, slack = address - (address % page), address % page
                else:
                    slack_start = address + nbytes
                    slack = (-nbytes) % page
                if slack:
                    _fill(slack_start, bytes([CANARY]) * slack)
                buffers.append((address, nbytes, arr, slack_start, slack))
                items.append(("P", address))
            else:
                items.append((code, value))
        code, message, fault = emu.launch_items(name, case["grid"], case["block"], items)
        result = {"code": code, "message": message[:500], "fault_arg": None, "fault_offset": None,
                  "buffers": [], "overwritten": []}
        k = 0
        for (pcode, _), value in zip(params, case["args"]):
            if pcode != "P":
                continue
            address, nbytes, arr, slack_start, slack = buffers[k]
            base = address - address % page - page          # the lower guard page
            top = base + ((nbytes + page - 1) // page + 2) * page
            if fault and base <= fault < top:
                result["fault_arg"] = _arg_index(params, k)
                result["fault_offset"] = fault - address
            after = np.frombuffer(_read(address, arr.nbytes), dtype=arr.dtype).reshape(arr.shape).copy()
            result["buffers"].append(after)
            changed = sum(1 for b in _read(slack_start, slack) if b != CANARY) if slack else 0
            result["overwritten"].append(changed)
            k += 1
        return result
    finally:
        for address, nbytes, *_ in buffers:
            emu.free(address, nbytes)


def _arg_index(params: list, k: int) -> int:
    """Index in the parameter list of the k-th pointer parameter."""
    seen = -1
    for i, (code, _) in enumerate(params):
        if code == "P":
            seen += 1
            if seen == k:
                return i
    return -1


def entry(files: dict, kernel_source: str, spec: dict, cases: list, options: dict) -> dict:
    name, params = spec["name"], [tuple(p) for p in spec["params"]]
    work = tempfile.mkdtemp(prefix="kernel-", dir=os.environ.get("TMPDIR") or None)
    os.makedirs(os.path.join(work, "include"))
    for fname, text in files.items():
        with open(os.path.join(work, fname), "w", encoding="utf-8") as fh:
            fh.write(text)
    for fname in STUB_HEADERS:
        open(os.path.join(work, "include", fname), "w").close()
    with open(os.path.join(work, "kernel.cu"), "w", encoding="utf-8", errors="replace") as fh:
        fh.write(kernel_source + "\n")
    with open(os.path.join(work, "dlkit_contract.h"), "w") as fh:
        fh.write(f'// the launcher\'s contract: an error here means the kernel is declared differently\n'
                 f'extern "C" void {name}({_cdecl(params)});\n')
    with open(os.path.join(work, "thunk.cpp"), "w") as fh:
        fh.write(_thunk(name, params))
    status, log = _compile(options["cxx"], work, float(options["compile_timeout"]), int(options["log_cap"]))
    if status != "ok":
        return {"status": status, "log": log, "runs": []}
    emu = Emulator(os.path.join(work, "kernel.so"))   # noqa: F821 - launcher.py precedes this file
    if not emu.has_kernel(name):
        return {"status": "no_kernel", "log": log, "runs": []}
    runs = [_launch_case(emu, name, params, case) for case in cases]
    return {"status": "ran", "log": log, "runs": runs}
