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


def _devnull():
    """/dev/null opened for READING only (Landlock, in the fallback sandbox, allows no more)."""
    return open(os.devnull, "rb")


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
            proc = subprocess.Popen(cmd, cwd=work, stdin=_devnull(), stdout=log, stderr=log,
                                    preexec_fn=os.setpgrp)   # a group of its own (Python 3.10 too)
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


# -- on a real GPU (options["device"] == "gpu"): nvcc -> PTX, launched through libcuda ------------
# UNTESTED ON A DEVICE in this version (written on a machine without one); every failure to set
# the device up is reported as "unavailable", and the trusted side then grades on the emulator.
GPU_PAD = 4096   # canary bytes before and after every device buffer (no guard pages on a GPU)


def _compile_ptx(nvcc: str, work: str, name: str, params: list, arch: str, timeout: float,
                 log_cap: int, memory_mb: int) -> tuple[str, str]:
    with open(os.path.join(work, "kernel_gpu.cu"), "w") as fh:
        fh.write('#include "kernel.cu"\n'
                 "// the launcher's contract: an error here means the kernel is declared differently\n"
                 f'extern "C" __global__ void {name}({_cdecl(params)});\n')
    log_path = os.path.join(work, "nvcc.log")

    def limit() -> None:   # nvcc reads student text: its own, smaller address-space limit
        import resource
        os.setpgrp()
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))

    cmd = [nvcc, "--ptx", f"-arch={arch}", "-w", "-I", work, "kernel_gpu.cu", "-o", "kernel.ptx"]
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.Popen(cmd, cwd=work, stdin=_devnull(), stdout=log, stderr=log,
                                    preexec_fn=limit)
        except OSError as exc:
            return "unavailable", f"cannot run nvcc: {exc}"
        status = "ok"
        try:
            if proc.wait(timeout=timeout) != 0:
                status = "compile_error"
        except subprocess.TimeoutExpired:
            status = "compile_timeout"
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    with open(log_path, "rb") as fh:
        text = fh.read(log_cap + 1).decode("utf-8", "replace")[:log_cap]
    return status, text.replace(work + "/", "")


class _CudaFailure(Exception):
    pass


def _gpu_runs(ptx: bytes, name: str, params: list, cases: list) -> tuple[str, list]:
    """Launch every case on device 0; ("unavailable", []) when the device cannot be set up."""
    import ctypes
    import numpy as np
    try:
        cu = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "unavailable", []

    def ok(result: int, what: str) -> None:
        if result != 0:
            raise _CudaFailure(f"{what} failed (CUDA error {result})")

    ctx, mod, fn = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
    try:
        dev = ctypes.c_int()
        ok(cu.cuInit(0), "cuInit")
        ok(cu.cuDeviceGet(ctypes.byref(dev), 0), "cuDeviceGet")
        ok(cu.cuCtxCreate_v2(ctypes.byref(ctx), 0, dev), "cuCtxCreate")
        ok(cu.cuModuleLoadData(ctypes.byref(mod), ctypes.c_char_p(ptx + b"\0")), "cuModuleLoadData")
    except _CudaFailure:
        return "unavailable", []
    if cu.cuModuleGetFunction(ctypes.byref(fn), mod, name.encode()) != 0:
        return "no_kernel", []
    try:
        runs = _gpu_cases(cu, fn, params, cases, ok)
    except _CudaFailure:
        return "unavailable", []
    cu.cuCtxDestroy_v2(ctx)
    return "ran", runs


def _gpu_cases(cu, fn, params: list, cases: list, ok) -> list:
    import ctypes
    import numpy as np
    scalar = {"i": ctypes.c_int, "f": ctypes.c_float, "q": ctypes.c_longlong, "d": ctypes.c_double}
    runs, broken = [], ""
    for case in cases:
        if broken:   # after a device fault the context is unusable
            runs.append({"code": 4, "message": broken, "fault_arg": None, "fault_offset": None,
                         "buffers": [np.ascontiguousarray(v["buffer"]) for (c, _), v in zip(params, case["args"]) if c == "P"],
                         "overwritten": [0 for c, _ in params if c == "P"]})
            continue
        holders, allocs = [], []
        for (code, _), value in zip(params, case["args"]):
            if code == "P":
                arr = np.ascontiguousarray(value["buffer"])
                size = GPU_PAD + arr.nbytes + GPU_PAD
                dptr = ctypes.c_uint64()
                ok(cu.cuMemAlloc_v2(ctypes.byref(dptr), ctypes.c_size_t(size)), "cuMemAlloc")
                host = bytes([CANARY]) * GPU_PAD + arr.tobytes() + bytes([CANARY]) * GPU_PAD
                ok(cu.cuMemcpyHtoD_v2(dptr, host, ctypes.c_size_t(size)), "cuMemcpyHtoD")
                allocs.append((dptr, size, arr))
                holders.append(ctypes.c_uint64(dptr.value + GPU_PAD))
            else:
                holders.append(scalar[code](value))
        argv = (ctypes.c_void_p * len(holders))(*[ctypes.cast(ctypes.pointer(h), ctypes.c_void_p) for h in holders])
        g, b = case["grid"], case["block"]
        r = cu.cuLaunchKernel(fn, g[0], g[1], g[2], b[0], b[1], b[2], 0, None, argv, None)
        r = r or cu.cuCtxSynchronize()
        run = {"code": 0 if r == 0 else (2 if r in (1, 701, 9) else 4),
               "message": "" if r == 0 else f"the launch failed on the GPU (CUDA error {r}; 700 = illegal address)",
               "fault_arg": None, "fault_offset": None, "buffers": [], "overwritten": []}
        if r not in (0, 1, 701, 9):
            broken = run["message"]
        for dptr, size, arr in allocs:
            back = ctypes.create_string_buffer(size)
            if not broken:
                cu.cuMemcpyDtoH_v2(back, dptr, ctypes.c_size_t(size))
                raw = back.raw
            else:
                raw = bytes([CANARY]) * GPU_PAD + arr.tobytes() + bytes([CANARY]) * GPU_PAD
            body = raw[GPU_PAD:GPU_PAD + arr.nbytes]
            run["buffers"].append(np.frombuffer(body, dtype=arr.dtype).reshape(arr.shape).copy())
            run["overwritten"].append(sum(1 for x in raw[:GPU_PAD] + raw[GPU_PAD + arr.nbytes:] if x != CANARY))
            cu.cuMemFree_v2(dptr)
        runs.append(run)
    return runs


def _gpu_entry(work: str, name: str, params: list, cases: list, options: dict) -> dict:
    status, log = _compile_ptx(options["nvcc"], work, name, params, options.get("arch", "sm_80"),
                               float(options["compile_timeout"]), int(options["log_cap"]),
                               int(options.get("compile_memory_mb", 3072)))
    if status != "ok":
        return {"status": status, "log": log, "runs": []}
    with open(os.path.join(work, "kernel.ptx"), "rb") as fh:
        ptx = fh.read()
    status, runs = _gpu_runs(ptx, name, params, cases)
    return {"status": status, "log": log, "runs": runs}


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
    if options.get("device") == "gpu":
        return _gpu_entry(work, name, params, cases, options)
    status, log = _compile(options["cxx"], work, float(options["compile_timeout"]), int(options["log_cap"]))
    if status != "ok":
        return {"status": status, "log": log, "runs": []}
    emu = Emulator(os.path.join(work, "kernel.so"))   # noqa: F821 - launcher.py precedes this file
    if not emu.has_kernel(name):
        return {"status": "no_kernel", "log": log, "runs": []}
    runs = [_launch_case(emu, name, params, case) for case in cases]
    return {"status": "ran", "log": log, "runs": runs}
