"""Trusted side of the sandboxed worker: start it, talk to it with deadlines, kill it.

The worker (``autograder/worker.py``, run as ``python -I -S -B -c <source> <config>``) isolates
itself before any student code exists in it; see that module's docstring for the layers.  This
side chooses what the sandbox may see (the Python runtime, numpy, the STUDENT edition of dlkit
and nothing from the repository), the limits, a scrubbed environment, a per-sandbox uid, and
enforces the wall-clock deadline of every request.  :meth:`Sandbox.close` kills the worker's
process group and, when the worker runs under its own uid, every process of that uid (which
catches children that escaped the group with ``setsid``).

Nothing read from the worker is trusted: frames are length-checked before allocation, values are
decoded by :func:`autograder.worker.decode` (no pickle, plain ndarray only).
"""
from __future__ import annotations

import errno
import importlib.util
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import worker as wire

__all__ = ["Limits", "Sandbox", "SandboxError", "WorkerCrashed", "WorkerTimeout", "SandboxStartError"]

WORKER_SOURCE_PATH = Path(wire.__file__)
#: Packages (besides the stdlib) the sandbox can import; dlkit's student edition is added apart.
SANDBOX_PACKAGES = ("numpy", "numpy.libs", "tqdm")
#: Environment inside the sandbox: nothing from the grader's environment is passed through.
BASE_ENV = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MPLBACKEND": "Agg",
    "DLKIT_BACKEND": "numpy",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
}


@dataclass
class Limits:
    """Resource limits of one sandbox worker (a worker serves one submission)."""

    cpu_s: int = 120            # RLIMIT_CPU: total CPU seconds of the worker
    memory_mb: int = 1536       # RLIMIT_AS: address space (numpy needs a few hundred MB of it)
    nproc: int = 24             # RLIMIT_NPROC: processes/threads of the sandbox uid
    fsize_mb: int = 16          # RLIMIT_FSIZE: largest file the worker may write (incl. raw output)
    nofile: int = 64            # RLIMIT_NOFILE
    tmpfs_mb: int = 64          # size of the private root (scratch included)
    max_reply_mb: int = 64      # largest reply accepted from the worker
    max_elements: int = 10_000_000  # largest array accepted from the worker
    start_timeout_s: float = 30.0
    output_tail_kb: int = 8     # raw stdout/stderr tail kept for crash reports


class SandboxError(Exception):
    """Base class of what can go wrong talking to a worker."""


class SandboxStartError(SandboxError):
    """The worker could not be started (a grader problem, not the student's)."""


class WorkerCrashed(SandboxError):
    """The worker died or sent something that is not a valid frame."""


class WorkerTimeout(SandboxError):
    """The worker did not answer before the deadline (it has been killed)."""


# -- Contract C, minimal version (h3; h2's sandbox work may replace it) -------------------------
#: Directories code inside a ``toolchain=True`` sandbox needs to run the host C/C++ compiler
#: (g++ / cc1plus / as / ld, headers, libraries) and nvcc where the CUDA toolkit is installed.
#: All of them are mounted READ-ONLY (and, in the Landlock fallback, readable/executable only);
#: the compiler then runs under the sandbox's uid, limits and process cap, and is killed with it.
TOOLCHAIN_DIRS = ("/usr/bin", "/usr/include", "/usr/lib", "/usr/libexec", "/usr/local/bin",
                  "/usr/local/cuda", "/etc/alternatives", "/bin", "/lib", "/lib64")


def gpu_device_nodes() -> list[str]:
    """The NVIDIA device nodes a ``gpu=True`` sandbox binds (nothing where there are none)."""
    import glob
    return sorted(p for p in glob.glob("/dev/nvidia*") if not os.path.isdir(p))


def toolchain_dirs() -> list[str]:
    """The :data:`TOOLCHAIN_DIRS` present here, symlinks resolved (e.g. /usr/local/cuda-13.0)."""
    found = []
    for d in TOOLCHAIN_DIRS:
        if os.path.isdir(d):
            real = os.path.realpath(d)
            for p in (d, real):
                if p not in found:
                    found.append(p)
    return found


def _package_dirs() -> list[tuple[str, str]]:
    """``(name, directory)`` of each importable package the sandbox gets."""
    found = []
    site = None
    for name in SANDBOX_PACKAGES:
        if name.endswith(".libs"):
            if site and os.path.isdir(os.path.join(site, name)):
                found.append((name, os.path.join(site, name)))
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        pkg_dir = list(spec.submodule_search_locations)[0]
        site = os.path.dirname(pkg_dir)
        found.append((name, pkg_dir))
    return found


def _stdlib_paths() -> list[str]:
    out = [os.path.dirname(os.__file__)]   # the base interpreter's stdlib (also from a venv)
    out += [p for p in sys.path if p.endswith("lib-dynload") and os.path.isdir(p)][:1]
    return out


class Sandbox:
    """One worker process; start it, send requests with deadlines, close it.

    ``student_dlkit`` is the directory holding the student edition's ``dlkit`` package (from
    ``autograder.release.student_dlkit``) or None for a sandbox without dlkit.  ``toolchain``:
    also mount the C/C++ toolchain read-only (:data:`TOOLCHAIN_DIRS`) so that code inside can
    compile (students' CUDA kernels, see autograder/cudaemu); ``gpu``: also bind the NVIDIA
    device nodes (and /proc/driver/nvidia) so that a kernel can be launched on the device.
    """

    _counter = 0

    def __init__(self, student_dlkit: str | os.PathLike | None = None, limits: Limits | None = None,
                 *, isolate: bool = True, namespaces: bool = True, toolchain: bool = False,
                 gpu: bool = False) -> None:
        self.student_dlkit = None if student_dlkit is None else str(Path(student_dlkit).resolve())
        self.limits = limits or Limits()
        self.isolate = isolate
        self.namespaces = namespaces and isolate   # False: exercise the unprivileged fallback
        self.toolchain = toolchain
        self.gpu = gpu
        self.proc: subprocess.Popen | None = None
        self.isolation: dict[str, Any] = {}
        self._tmp: str | None = None
        self._out_path: str | None = None
        self._uid: int | None = None
        self._to_worker = self._from_worker = -1
        self._seq = 0
        self.ready = False

    # ---------------------------------------------------------------------------- start
    def _config(self, rfd: int, wfd: int) -> dict[str, Any]:
        assert self._tmp is not None
        root = os.path.join(self._tmp, "root")
        scratch = os.path.join(self._tmp, "scratch")
        os.makedirs(root)
        os.makedirs(scratch)
        is_root = os.geteuid() == 0
        # A uid of its own per live sandbox: (trusted pid, per-process counter) is unique among
        # live sandboxes (up to 64 at once per process), and close() kills all of a uid.
        Sandbox._counter += 1
        self._uid = 100_000 + ((os.getpid() << 6) | (Sandbox._counter & 63)) if is_root else None
        if is_root:
            os.chown(scratch, self._uid, self._uid)
        os.chmod(self._tmp, 0o711)
        stdlib = _stdlib_paths()
        pkgs = _package_dirs()
        ro_binds: list[tuple[str, str]] = []
        symlinks: list[tuple[str, str]] = []
        for top in ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin"):
            if os.path.islink(top):
                symlinks.append((top, os.readlink(top)))
            elif os.path.isdir(top):
                ro_binds.append((top, top))
        for etc in ("/etc/ld.so.cache", "/etc/localtime"):
            if os.path.isfile(etc):
                ro_binds.append((etc, etc))
        for dev in ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"):
            if os.path.exists(dev):
                ro_binds.append((dev, dev))
        # The Python runtime (stdlib, lib-dynload, libpython) at its own path.
        base_lib = os.path.join(sys.base_prefix, "lib")
        if not base_lib.startswith("/usr/"):
            ro_binds.append((base_lib, base_lib))
        private_sys_path = stdlib + ["/opt/site"]
        for name, path in pkgs:
            ro_binds.append((path, f"/opt/site/{name}"))
        fallback_sys_path = stdlib + sorted({os.path.dirname(p) for _, p in pkgs})
        if self.student_dlkit:
            ro_binds.append((os.path.join(self.student_dlkit, "dlkit"), "/opt/student/dlkit"))
            private_sys_path.append("/opt/student")
            fallback_sys_path.append(self.student_dlkit)
        extra_read = ["/usr/lib", "/lib", "/lib64", "/etc/ld.so.cache", base_lib]
        if self.toolchain:   # /usr, /lib, /bin are bound whole above; add what lives elsewhere
            bound = {dst for _, dst in ro_binds} | {link for link, _ in symlinks}
            for d in toolchain_dirs():
                if not any(d == b or d.startswith(b.rstrip("/") + "/") for b in bound):
                    ro_binds.append((d, d))
                    bound.add(d)
            extra_read += [d for d in toolchain_dirs() if d not in extra_read]
        if self.gpu:
            for node in gpu_device_nodes() + [p for p in ("/proc/driver/nvidia",) if os.path.isdir(p)]:
                ro_binds.append((node, node))
        env = dict(BASE_ENV, HOME=scratch, TMPDIR=scratch)
        return {
            "rfd": rfd, "wfd": wfd, "uid": self._uid, "root": root, "scratch": scratch,
            "namespaces": self.namespaces, "landlock": self.isolate, "tmpfs_mb": self.limits.tmpfs_mb,
            "ro_binds": ro_binds, "symlinks": symlinks,
            "private_sys_path": private_sys_path, "sys_path": fallback_sys_path,
            "extra_read": extra_read,
            "env": env, "limits": asdict(self.limits), "max_elements": self.limits.max_elements,
        }

    def start(self) -> dict[str, Any]:
        """Start the worker and wait for it; returns the isolation report.

        Raises :class:`SandboxStartError`.
        """
        self.launch()
        return self.wait_ready()

    def launch(self) -> None:
        """Start the worker process without waiting for it to be ready (see :meth:`wait_ready`)."""
        if self.proc is not None:
            raise RuntimeError("sandbox already started")
        self._tmp = tempfile.mkdtemp(prefix="dlkit-sandbox-")
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        cfg = self._config(to_r, from_w)
        self._out_path = os.path.join(self._tmp, "output.txt")
        out = open(self._out_path, "wb")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", "-c", WORKER_SOURCE_PATH.read_text(encoding="utf-8"),
                 json.dumps(cfg)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, pass_fds=(to_r, from_w),
                close_fds=True, start_new_session=True, env=dict(BASE_ENV), cwd=cfg["scratch"],
            )
        except OSError as exc:
            for fd in (to_r, to_w, from_r, from_w):
                os.close(fd)
            raise SandboxStartError(f"cannot start the sandbox worker: {exc}") from exc
        finally:
            out.close()
        os.close(to_r)
        os.close(from_w)
        self._to_worker, self._from_worker = to_w, from_r
        os.set_blocking(to_w, False)
        os.set_blocking(from_r, False)

    def wait_ready(self) -> dict[str, Any]:
        """Wait for the worker's first message (its isolation report)."""
        if self.ready:
            return self.isolation
        try:
            hello, _ = self._read_frame(time.monotonic() + self.limits.start_timeout_s)
        except SandboxError as exc:
            tail = self.output_tail()
            self.close()
            raise SandboxStartError(f"the sandbox worker did not start: {exc}"
                                    + (f"\n{tail}" if tail else "")) from exc
        if not hello.get("ok"):
            self.close()
            raise SandboxStartError(f"the sandbox worker did not start: {hello.get('error')}")
        self.isolation = dict(hello.get("isolation") or {})
        self.ready = True
        return self.isolation

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # ---------------------------------------------------------------------------- I/O
    def _write_all(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerTimeout("timed out sending a request")
            _, ready, _ = select.select([], [self._to_worker], [], remaining)
            if not ready:
                continue
            try:
                n = os.write(self._to_worker, view[: 1 << 16])
            except BlockingIOError:
                continue
            except BrokenPipeError:
                raise WorkerCrashed("the worker closed its input") from None
            view = view[n:]

    def _read_exact(self, n: int, deadline: float) -> bytes:
        chunks, got = [], 0
        while got < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerTimeout("timed out waiting for the worker")
            ready, _, _ = select.select([self._from_worker], [], [], remaining)
            if not ready:
                continue
            try:
                chunk = os.read(self._from_worker, min(n - got, 1 << 20))
            except BlockingIOError:
                continue
            if not chunk:
                raise WorkerCrashed("the worker exited")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _read_frame(self, deadline: float) -> tuple[dict, list[bytes]]:
        (n,) = struct.unpack(">I", self._read_exact(4, deadline))
        if n > wire.MAX_JSON_BYTES:
            raise WorkerCrashed(f"the worker sent an oversized message ({n} bytes)")
        try:
            header, sizes = wire.parse_frame_header(self._read_exact(n, deadline),
                                                    self.limits.max_reply_mb << 20)
        except wire.ProtocolError as exc:
            raise WorkerCrashed(f"the worker sent an invalid message: {exc}") from None
        return header, [self._read_exact(s, deadline) for s in sizes]

    def request(self, message: dict, blobs: list[bytes], deadline: float) -> tuple[dict, list[bytes]]:
        """Send one request and wait (until ``deadline``, a ``time.monotonic()`` value) for its reply.

        On a timeout or a crash the worker is killed and :class:`WorkerTimeout` /
        :class:`WorkerCrashed` is raised; the sandbox must then be closed and a new one started.
        """
        if not self.ready:
            self.wait_ready()
        if not self.alive:
            raise WorkerCrashed(self.exit_description())
        self._seq += 1
        header = dict(message, seq=self._seq)
        header["_blobs"] = [len(b) for b in blobs]
        data = json.dumps(header, allow_nan=True, separators=(",", ":")).encode("utf-8")
        try:
            self._write_all(b"".join([struct.pack(">I", len(data)), data, *blobs]), deadline)
            reply, out = self._read_frame(deadline)
            if reply.get("seq") != self._seq:
                raise WorkerCrashed("the worker answered out of turn")
            return reply, out
        except WorkerTimeout:
            self.kill()
            raise
        except WorkerCrashed as exc:
            self.kill()
            raise WorkerCrashed(f"{self.exit_description()} ({exc})") from None

    # ---------------------------------------------------------------------------- end
    def exit_description(self) -> str:
        """How the worker ended, in words (for crash messages)."""
        if self.proc is None:
            return "the worker is not running"
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "the worker stopped answering"
        if code < 0:
            sig = -code
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            why = {"SIGXCPU": "CPU time limit exceeded", "SIGXFSZ": "file/output size limit exceeded",
                   "SIGKILL": "killed (out of memory, or by the grader)",
                   "SIGSEGV": "segmentation fault", "SIGABRT": "aborted"}.get(name, "killed by a signal")
            return f"the worker was terminated by {name}: {why}"
        return f"the worker exited with status {code}"

    def output_tail(self) -> str:
        """The last bytes the worker wrote to its raw stdout/stderr (e.g. a fatal error)."""
        if not self._out_path or not os.path.exists(self._out_path):
            return ""
        cap = self.limits.output_tail_kb << 10
        with open(self._out_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - cap))
            return fh.read().decode("utf-8", "replace").strip()

    def _kill_uid(self) -> None:
        """Kill every process of the sandbox uid (children that left the process group)."""
        if self._uid is None or os.geteuid() != 0:
            return
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the forked helper
            try:
                os.setresgid(self._uid, self._uid, self._uid)
                os.setresuid(self._uid, self._uid, self._uid)
                for _ in range(100):
                    os.kill(-1, signal.SIGKILL)   # all processes this uid may signal
            except OSError:
                pass
            os._exit(0)
        os.waitpid(pid, 0)

    def kill(self) -> None:
        """Kill the worker's process group (and uid); keep the exit status for reports."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError as exc:
            if exc.errno not in (errno.ESRCH, errno.EPERM):
                raise
        self._kill_uid()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - unkillable process
            pass

    def close(self) -> None:
        """Ask the worker to exit, then kill everything it started and remove its files."""
        if self.proc is not None:
            if self.alive:
                try:
                    self._write_all(self._exit_frame(), time.monotonic() + 0.5)
                except SandboxError:
                    pass
            self.kill()
        for fd in (self._to_worker, self._from_worker):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._to_worker = self._from_worker = -1
        if self._tmp:
            shutil.rmtree(self._tmp, onerror=_force_remove)
            self._tmp = None

    @staticmethod
    def _exit_frame() -> bytes:
        data = b'{"op":"exit","_blobs":[]}'
        return struct.pack(">I", len(data)) + data

    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _force_remove(func: Any, path: str, exc_info: Any) -> None:
    """rmtree error handler: make the entry (and its parent) writable and retry once."""
    try:
        os.chmod(os.path.dirname(path), 0o700)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass
