"""Trusted side of the sandboxed worker: start it, talk to it with deadlines, kill it.

The worker (``autograder/worker.py`` with ``wire.py`` and ``isolation.py``, run as
``python -I -S -B -c <worker.program_source()> <config>``) isolates
itself before any student code exists in it; see that module's docstring for the layers.  This
side chooses what the sandbox may see (the Python runtime, numpy, the STUDENT edition of dlkit
and nothing from the repository), the limits, a scrubbed environment, a per-sandbox uid, and
enforces the wall-clock deadline of every request.  :meth:`Sandbox.close` kills the whole tree
(memory cgroup, PID namespace, process group, and the per-sandbox uid) and removes its files.

Isolation modes (``Sandbox(mode=...)``, default ``"auto"``); the achieved one is reported in
``Sandbox.isolation["isolation"]`` (and in each result's ``sandbox`` section), never more than
what the worker verified from inside:

``namespaces(root)``
    grader runs as root: new mount, PID, network, IPC and UTS namespaces (``unshare``), a private
    tmpfs root with read-only binds of the runtime only (``pivot_root``, old root detached), a
    fresh ``/proc`` showing only the sandbox's processes, an unprivileged per-sandbox uid/gid with
    no capabilities, ``no_new_privs``, rlimits.
``bwrap``
    grader is NOT root and ``bwrap`` (Debian package ``bubblewrap``) is installed: the same
    private root, ``/proc``, PID/network/IPC/UTS namespaces, built by bubblewrap through an
    unprivileged USER namespace; all capabilities dropped; the sandbox runs under the grader's
    own uid (so the process cap counts the grader's other processes too).
``landlock``
    neither: no namespaces; Landlock confines reads to the runtime and writes to the scratch
    folder (and denies TCP on Landlock ABI >= 4); the sandbox shares the host's PIDs and network
    (other than TCP); as root it runs as uid 0 WITHOUT capabilities when the runtime is not
    readable by other users.
``none``
    ``isolate=False`` (tests and debugging only): limits only.

Memory (``Limits.memory_mb`` is the budget of the WHOLE sandbox tree): a cgroup of its own per
sandbox with ``memory.max`` (cgroup v2) or ``memory.limit_in_bytes`` (cgroup v1) when the grader
may create one (root, or a delegated subtree named by ``$DLKIT_SANDBOX_CGROUP``); otherwise a
process cap so that processes x ``RLIMIT_AS`` stays within the budget (``Limits.fallback_processes``
processes of ``memory_mb / fallback_processes`` MB each; 1 process, i.e. no fork at all, unless
the toolchain is mounted).  Reported as ``isolation["memory"]``.

Contract C (used by the CUDA grading and the solution packs):

``Sandbox(kit, limits, toolchain=True)`` (or ``Limits(toolchain=True)``)
    mounts the C/C++ toolchain read-only (``g++``/``cc1plus``/``as``/``ld``, headers, and ``nvcc``
    + ``/usr/local/cuda`` when present; :func:`toolchain_dirs`), puts ``/usr/local/cuda/bin`` on
    ``PATH`` and allows ``Limits.toolchain_processes`` processes, so code INSIDE the sandbox can
    compile within the same memory / process / time budget; the whole tree is killed at the end.
``Sandbox(kit, limits, ro_dirs={"/opt/packs": host_dir}, env={"DLKIT_PACKS": "/opt/packs"})``
    (or ``Limits(ro_dirs=(("/opt/packs", host_dir),), env=(("DLKIT_PACKS", "/opt/packs"),))``)
    binds extra host directories read-only at the given absolute paths inside (readable only,
    in the Landlock mode, at their HOST path: :meth:`Sandbox.path_inside` says where, and
    ``env`` values naming an ``ro_dirs`` path are rewritten to it) and adds environment
    variables.  ``gpu=True`` (or ``Limits(gpu=True)``) also binds the NVIDIA device nodes and
    ``/proc/driver/nvidia``.

Nothing read from the worker is trusted: frames are length-checked before allocation, values are
decoded by :func:`autograder.wire.decode` (no pickle, plain ndarray only).
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
from typing import Any, Iterator

from . import wire, worker

__all__ = ["Limits", "Sandbox", "SandboxError", "WorkerCrashed", "WorkerTimeout", "SandboxStartError",
           "toolchain_dirs", "bwrap_path", "TOOLCHAIN_DIRS"]

WORKER_SOURCE_PATH = Path(worker.__file__)   # with wire.py and isolation.py: worker.program_source()
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
#: Contract C: what a ``toolchain=True`` sandbox gets READ-ONLY (besides /usr, /lib, /bin, which
#: every private root has): compilers, assembler/linker, headers, and the CUDA toolkit if any.
TOOLCHAIN_DIRS = ("/usr/bin", "/usr/include", "/usr/lib", "/usr/libexec", "/usr/local/bin",
                  "/usr/local/include", "/usr/local/cuda", "/etc/alternatives", "/bin", "/lib", "/lib64")
MODES = ("auto", "namespaces", "bwrap", "landlock", "none")


@dataclass
class Limits:
    """Budgets of one sandbox (a sandbox serves one submission; restarts get the same budgets).

    ``memory_mb`` is the budget of the WHOLE sandbox tree (see the module docstring for how it is
    enforced); ``submission_s`` bounds the whole grading of one submission (parse + all checks +
    compile; applied by :class:`autograder.harness.Submission`).
    """

    cpu_s: int = 120            # RLIMIT_CPU: CPU seconds of each sandbox process
    memory_mb: int = 1536       # memory of the whole sandbox tree (cgroup), else processes x RLIMIT_AS
    nproc: int = 24             # processes/threads of the sandbox (with a cgroup or own uid)
    fallback_processes: int = 1  # without a memory cgroup: processes allowed (each memory_mb / this)
    toolchain_processes: int = 6  # the same when the toolchain is mounted (python + g++ + cc1plus + as/ld)
    fsize_mb: int = 16          # RLIMIT_FSIZE: largest file the worker may write (incl. raw output)
    nofile: int = 64            # RLIMIT_NOFILE
    tmpfs_mb: int = 64          # size of the private root's scratch (/work) and /tmp, each
    max_reply_mb: int = 64      # largest reply accepted from the worker
    max_elements: int = 10_000_000  # largest array accepted from the worker
    start_timeout_s: float = 30.0
    output_tail_kb: int = 8     # raw stdout/stderr tail kept for crash reports
    submission_s: float = 60.0  # wall budget of one submission's whole grading (harness)
    toolchain: bool = False     # contract C: mount the C/C++ (and CUDA) toolchain read-only
    gpu: bool = False           # contract C: bind the NVIDIA device nodes (+ /proc/driver/nvidia)
    ro_dirs: tuple = ()         # contract C: ((path inside, host directory), ...) bound read-only
    env: tuple = ()             # contract C: ((name, value), ...) added to the sandbox environment


class SandboxError(Exception):
    """Base class of what can go wrong talking to a worker."""


class SandboxStartError(SandboxError):
    """The worker could not be started (a grader problem, not the student's)."""


class WorkerCrashed(SandboxError):
    """The worker died or sent something that is not a valid frame."""


class WorkerTimeout(SandboxError):
    """The worker did not answer before the deadline, or used up its CPU budget (``cpu`` True);
    it has been killed."""

    def __init__(self, message: str, cpu: bool = False) -> None:
        super().__init__(message)
        self.cpu = cpu


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
#: How often a request with a CPU budget looks at the worker's CPU time (seconds).
CPU_POLL_S = 0.01


def tree_cpu_seconds(root: int) -> float | None:
    """CPU seconds (user + system, including reaped children) of process ``root`` and all its
    live descendants, from /proc; None where /proc cannot tell (then only wall clocks apply)."""
    total, todo, seen = 0.0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / _TICK     # utime stime cutime cstime
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children", "rb") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError, IndexError):
            if pid == root:
                return None
    return total


def toolchain_dirs() -> list[str]:
    """The :data:`TOOLCHAIN_DIRS` present here, symlinks resolved too (e.g. /usr/local/cuda-12.4)."""
    found: list[str] = []
    for d in TOOLCHAIN_DIRS:
        if os.path.isdir(d):
            for p in (d, os.path.realpath(d)):
                if p not in found:
                    found.append(p)
    return found


def gpu_device_nodes() -> list[str]:
    """The NVIDIA device nodes a ``gpu=True`` sandbox binds (nothing where there are none)."""
    import glob
    return sorted(p for p in glob.glob("/dev/nvidia*") if not os.path.isdir(p))


def bwrap_path() -> str | None:
    """``bwrap`` (bubblewrap) if installed, else None (``$DLKIT_BWRAP`` overrides the lookup)."""
    given = os.environ.get("DLKIT_BWRAP")
    if given is not None:
        return given if given and os.access(given, os.X_OK) else None
    return shutil.which("bwrap", path="/usr/bin:/bin:/usr/local/bin")


def _backoff(total: float = 1.0) -> Iterator[float]:
    """Pauses between polls for something that is usually over within a few ms (a killed tree
    being reaped): 1, 2, 4 ... 20 ms, about ``total`` seconds in all."""
    pause, spent = 0.001, 0.0
    while spent < total:
        yield pause
        spent += pause
        pause = min(2 * pause, 0.02)


class MemoryCgroup:
    """A memory cgroup of one sandbox (v2 ``memory.max`` or v1 ``memory.limit_in_bytes``).

    :meth:`create` returns None where the grader may not create one with a working limit.
    """

    PREFIX = "dlkit-sb-"

    def __init__(self, path: str, version: int, limit: int) -> None:
        self.path, self.version, self.limit = path, version, limit

    @staticmethod
    def _mounts() -> list[tuple[str, str, str, str]]:
        """(mount root, mount point, fstype, super options) of the cgroup mounts."""
        out = []
        try:
            with open("/proc/self/mountinfo", encoding="utf-8") as fh:
                for line in fh:
                    left, _, right = line.partition(" - ")
                    f, r = left.split(), right.split()
                    if len(f) >= 5 and len(r) >= 3 and r[0] in ("cgroup", "cgroup2"):
                        out.append((f[3], f[4], r[0], r[2]))
        except OSError:
            pass
        return out

    @staticmethod
    def _own(version: int) -> str | None:
        """This process's cgroup path (v2: the ``0::`` line; v1: the memory hierarchy's line)."""
        try:
            with open("/proc/self/cgroup", encoding="utf-8") as fh:
                for line in fh:
                    hid, ctrls, path = line.rstrip("\n").split(":", 2)
                    if version == 2 and hid == "0" and ctrls == "":
                        return path
                    if version == 1 and "memory" in ctrls.split(","):
                        return path
        except (OSError, ValueError):
            pass
        return None

    @classmethod
    def _parents(cls) -> list[tuple[int, str]]:
        given = os.environ.get("DLKIT_SANDBOX_CGROUP")
        if given:
            return [(2 if os.path.exists(os.path.join(given, "cgroup.controllers")) else 1, given)]
        found = []
        for version, fstype in ((2, "cgroup2"), (1, "cgroup")):
            own = cls._own(version)
            if own is None:
                continue
            for root, point, kind, opts in cls._mounts():
                if kind != fstype or (version == 1 and "memory" not in opts.split(",")):
                    continue
                rel = own
                if root != "/" and (own == root or own.startswith(root + "/")):
                    rel = own[len(root):]
                found.append((version, os.path.join(point, rel.lstrip("/"))))
                break
        return found

    @classmethod
    def sweep(cls, parent: str) -> None:
        """Remove empty cgroups left by sandboxes of dead graders (rmdir fails on busy ones)."""
        try:
            names = os.listdir(parent)
        except OSError:
            return
        for name in names:
            if name.startswith(cls.PREFIX):
                pid = name[len(cls.PREFIX):].split("-")[0]
                if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                    try:
                        os.rmdir(os.path.join(parent, name))
                    except OSError:
                        pass

    @classmethod
    def create(cls, name: str, limit_bytes: int) -> "MemoryCgroup | None":
        for version, parent in cls._parents():
            if not os.path.isdir(parent):
                continue
            cls.sweep(parent)
            path = os.path.join(parent, cls.PREFIX + name)
            try:
                os.mkdir(path, 0o755)
            except OSError:
                continue
            group = cls(path, version, limit_bytes)
            if group._configure():
                return group
            group.remove()
        return None

    def _write(self, name: str, value: str) -> bool:
        try:
            with open(os.path.join(self.path, name), "w") as fh:
                fh.write(value)
            return True
        except OSError:
            return False

    def _read(self, name: str) -> str:
        try:
            with open(os.path.join(self.path, name)) as fh:
                return fh.read().strip()
        except OSError:
            return ""

    def _configure(self) -> bool:
        if self.version == 2:
            if not os.path.exists(os.path.join(self.path, "memory.max")):
                parent = os.path.dirname(self.path)
                try:
                    with open(os.path.join(parent, "cgroup.subtree_control"), "w") as fh:
                        fh.write("+memory")
                except OSError:
                    return False
            if not self._write("memory.max", str(self.limit)):
                return False
            self._write("memory.swap.max", "0")
            self._write("memory.oom.group", "1")
            return self._read("memory.max") == str(self.limit)
        if not self._write("memory.limit_in_bytes", str(self.limit)):
            return False
        self._write("memory.memsw.limit_in_bytes", str(self.limit))   # absent without swap accounting
        got = self._read("memory.limit_in_bytes")
        return got.isdigit() and abs(int(got) - self.limit) <= 1 << 16   # rounded to pages

    def limit_hit(self) -> bool:
        """Whether the group's usage ever reached its limit (v2 ``memory.events`` max/oom_kill,
        v1 ``memory.failcnt``): the sandbox ran out of memory, whether or not it showed."""
        if self.version == 2:
            counts = dict(line.split() for line in self._read("memory.events").splitlines()
                          if len(line.split()) == 2)
            return any(counts.get(k, "0") != "0" for k in ("max", "oom", "oom_kill"))
        return self._read("memory.failcnt") not in ("", "0")

    def describe(self) -> str:
        knob = "memory.max" if self.version == 2 else "memory.limit_in_bytes"
        return f"cgroup v{self.version} {knob}={self.limit >> 20} MB for the whole sandbox"

    def join(self) -> None:
        """Move the calling process into the cgroup (used as Popen's preexec_fn)."""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as fh:
            fh.write(str(os.getpid()))

    def pids(self) -> list[int]:
        return [int(p) for p in self._read("cgroup.procs").split() if p.isdigit()]

    def kill_all(self) -> None:
        """SIGKILL every process in the group until it is empty (for about a second)."""
        if self.version == 2 and self._write("cgroup.kill", "1"):
            pass
        for pause in _backoff():
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(pause)

    def remove(self) -> None:
        for pause in _backoff():
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(pause)   # dying processes are still being reaped; sweep() retries later


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
    ``autograder.release.student_dlkit``) or None for a sandbox without dlkit.  ``mode``: one of
    :data:`MODES` (``"auto"``: namespaces as root, else bwrap when installed, else Landlock).
    ``toolchain``, ``ro_dirs``, ``env``: contract C (module docstring); each adds to what
    ``limits`` asks for.
    """

    _counter = 0
    _bwrap_failed: str | None = None     # why bwrap could not start in this process (auto mode)

    def __init__(self, student_dlkit: str | os.PathLike | None = None, limits: Limits | None = None,
                 *, isolate: bool = True, namespaces: bool = True, mode: str = "auto",
                 toolchain: bool = False, ro_dirs: dict[str, str] | None = None,
                 env: dict[str, str] | None = None, gpu: bool = False,
                 memory_cap_mb: int | None = None) -> None:
        self.student_dlkit = None if student_dlkit is None else str(Path(student_dlkit).resolve())
        self.limits = limits or Limits()
        if mode not in MODES:
            raise ValueError(f"unknown sandbox mode {mode!r} (one of {', '.join(MODES)})")
        if not isolate:
            mode = "none"
        elif not namespaces and mode == "auto":
            mode = "landlock"            # exercise the unprivileged fallback
        self.mode = mode
        self.isolate = mode != "none"
        self.namespaces = mode in ("auto", "namespaces", "bwrap")
        self.toolchain = bool(toolchain or self.limits.toolchain)
        self.gpu = bool(gpu or self.limits.gpu)
        self.ro_dirs: dict[str, str] = dict(self.limits.ro_dirs)
        self.ro_dirs.update(ro_dirs or {})
        for inside in self.ro_dirs:
            if not inside.startswith("/") or ".." in inside.split("/"):
                raise ValueError(f"ro_dirs: {inside!r} is not an absolute path inside the sandbox")
        self.extra_env: dict[str, str] = dict(self.limits.env)
        self.extra_env.update(env or {})
        # a lower limit for the memory cgroup only (the batch's quick pass; see memory_limit_hit)
        self.memory_cap_mb = memory_cap_mb
        self.proc: subprocess.Popen | None = None
        self.isolation: dict[str, Any] = {}
        self.cgroup: MemoryCgroup | None = None
        self._tmp: str | None = None
        self._out_path: str | None = None
        self._uid: int | None = None
        self._to_worker = self._from_worker = -1
        self._seq = 0
        self.last_cpu: float | None = None     # CPU seconds of the last request (None: unmeasurable)
        self._launch_mode = ""
        self.ready = False
        self.ready_at: float | None = None    # time.monotonic() when the worker reported ready

    def _choose_mode(self) -> str:
        """The launch mode: ``namespaces`` (worker unshares, root), ``bwrap``, ``landlock``, ``none``."""
        if self.mode == "none":
            return "none"
        if self.mode == "landlock":
            return "landlock"
        if self.mode == "namespaces":
            return "namespaces"
        if self.mode == "bwrap":
            return "bwrap"
        if os.geteuid() == 0:
            return "namespaces"
        return "bwrap" if bwrap_path() and not Sandbox._bwrap_failed else "landlock"

    def path_inside(self, inside: str) -> str:
        """Where ``ro_dirs[inside]`` is visible to the sandbox (its host path in the Landlock mode)."""
        if self._launch_mode in ("namespaces", "bwrap") and \
                str(self.isolation.get("filesystem", "")).startswith("private"):
            return inside
        return str(Path(self.ro_dirs[inside]).resolve())

    # ---------------------------------------------------------------------------- start
    def _config(self, rfd: int, wfd: int, launch_mode: str) -> dict[str, Any]:
        assert self._tmp is not None
        root = os.path.join(self._tmp, "root")
        scratch = os.path.join(self._tmp, "scratch")
        os.makedirs(root)
        os.makedirs(scratch)
        is_root = os.geteuid() == 0
        # A uid of its own per live sandbox: (trusted pid, per-process counter) is unique among
        # live sandboxes (up to 64 at once per process), and close() kills all of a uid.
        Sandbox._counter += 1
        own_uid = is_root and launch_mode == "namespaces"
        self._uid = 100_000 + ((os.getpid() << 6) | (Sandbox._counter & 63)) if own_uid else None
        if own_uid:
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
        env = dict(BASE_ENV, HOME=scratch, TMPDIR=scratch)
        if self.toolchain:
            bound = {dst for _, dst in ro_binds} | {link for link, _ in symlinks}
            for d in toolchain_dirs():
                if not any(d == b or d.startswith(b.rstrip("/") + "/") for b in bound):
                    ro_binds.append((d, d))
                    bound.add(d)
                if d not in extra_read:
                    extra_read.append(d)
            cuda_bin = "/usr/local/cuda/bin"
            env["PATH"] = (f"{cuda_bin}:" if os.path.isdir(cuda_bin) else "") + "/usr/local/bin:/usr/bin:/bin"
        late_binds: list[tuple[str, str]] = []     # bound after /proc is mounted
        devices: list[str] = []
        if self.gpu:   # NOT yet exercised on a GPU machine by the sandbox's own tests
            devices = gpu_device_nodes()
            ro_binds += [(d, d) for d in devices]
            if os.path.isdir("/proc/driver/nvidia"):
                late_binds.append(("/proc/driver/nvidia", "/proc/driver/nvidia"))
        for inside, host in sorted(self.ro_dirs.items()):
            real = str(Path(host).resolve())
            if not os.path.isdir(real):
                raise SandboxStartError(f"ro_dirs: {host} is not a directory")
            ro_binds.append((real, inside))
            extra_read.append(real)
        extra_env = dict(self.extra_env)
        if launch_mode not in ("namespaces", "bwrap"):   # no private root: ro_dirs keep their host path
            for k, v in extra_env.items():
                for inside, host in self.ro_dirs.items():
                    if v == inside or v.startswith(inside.rstrip("/") + "/"):
                        extra_env[k] = str(Path(host).resolve()) + v[len(inside.rstrip("/")):]
        env.update(extra_env)
        lim = asdict(self.limits)
        lim["ro_dirs"], lim["env"] = [], []
        return {
            "rfd": rfd, "wfd": wfd, "uid": self._uid, "root": root, "scratch": scratch,
            "mode": launch_mode, "namespaces": launch_mode == "namespaces",
            "landlock": launch_mode != "none", "tmpfs_mb": self.limits.tmpfs_mb,
            "ro_binds": ro_binds, "symlinks": symlinks,
            "private_sys_path": private_sys_path, "sys_path": fallback_sys_path,
            "extra_read": extra_read, "env": env, "limits": lim,
            "max_elements": self.limits.max_elements, "toolchain": self.toolchain,
            "grader_pid": os.getpid(), "hidden_probe": self._tmp,
            "processes": self._processes(), "memory_cgroup": None,
            "late_binds": late_binds, "devices": devices,
        }

    def _processes(self) -> int:
        """Processes the sandbox may run at once (the worker included)."""
        if self.cgroup is not None:
            return self.limits.nproc
        return max(1, self.limits.toolchain_processes if self.toolchain else self.limits.fallback_processes)

    def _bwrap_argv(self, cfg: dict, bwrap: str, python: str) -> list[str]:
        argv = [bwrap, "--unshare-all", "--die-with-parent", "--cap-drop", "ALL",
                "--hostname", "sandbox"]
        for link, target in cfg["symlinks"]:
            argv += ["--symlink", target, link]
        for src, dst in cfg["ro_binds"]:
            if dst.startswith("/dev/"):
                continue                      # --dev /dev below provides null/zero/urandom/random
            argv += ["--ro-bind", src, dst]
        real_python = os.path.realpath(python)
        if not any(real_python.startswith(d.rstrip("/") + "/") for _, d in cfg["ro_binds"]):
            argv += ["--ro-bind", real_python, real_python]
        size = str(self.limits.tmpfs_mb << 20)
        argv += ["--dev", "/dev", "--proc", "/proc",
                 "--size", size, "--perms", "0700", "--tmpfs", "/work",
                 "--size", size, "--perms", "1777", "--tmpfs", "/tmp"]
        for dev in cfg["devices"]:
            argv += ["--dev-bind", dev, dev]
        for src, dst in cfg["late_binds"]:
            argv += ["--ro-bind", src, dst]
        argv += ["--remount-ro", "/", "--chdir", "/work", "--clearenv"]
        return argv + ["--", real_python]

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
        launch_mode = self._launch_mode = self._choose_mode()
        if launch_mode != "none":
            mb = min(self.limits.memory_mb, self.memory_cap_mb or self.limits.memory_mb)
            self.cgroup = MemoryCgroup.create(f"{os.getpid()}-{id(self):x}-{time.monotonic_ns()}", mb << 20)
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        try:
            cfg = self._config(to_r, from_w, launch_mode)
        except BaseException:
            for fd in (to_r, to_w, from_r, from_w):
                os.close(fd)
            raise
        if self.cgroup is not None:
            cfg["memory_cgroup"] = self.cgroup.describe()
        self._out_path = os.path.join(self._tmp, "output.txt")
        argv = [sys.executable, "-I", "-S", "-B", "-c", worker.program_source()]
        if launch_mode == "bwrap":
            bwrap = bwrap_path()
            if bwrap is None:
                for fd in (to_r, to_w, from_r, from_w):
                    os.close(fd)
                raise SandboxStartError("sandbox mode 'bwrap' asked for, but bwrap is not installed "
                                        "(Debian/Ubuntu: apt-get install bubblewrap)")
            argv = self._bwrap_argv(cfg, bwrap, sys.executable) + argv[1:]
        out = open(self._out_path, "wb")
        try:
            self.proc = subprocess.Popen(
                argv + [json.dumps(cfg)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, pass_fds=(to_r, from_w),
                close_fds=True, start_new_session=True, env=dict(BASE_ENV), cwd=cfg["scratch"],
                preexec_fn=self.cgroup.join if self.cgroup is not None else None,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            for fd in (to_r, to_w, from_r, from_w):
                os.close(fd)
            self._drop_cgroup()
            raise SandboxStartError(f"cannot start the sandbox worker: {exc}") from exc
        finally:
            out.close()
        os.close(to_r)
        os.close(from_w)
        self._to_worker, self._from_worker = to_w, from_r
        os.set_blocking(to_w, False)
        os.set_blocking(from_r, False)

    def wait_ready(self) -> dict[str, Any]:
        """Wait for the worker's first message (its isolation report).

        In the ``auto`` mode a bwrap that cannot start (user namespaces refused, e.g. by a
        container's seccomp policy) falls back to Landlock; the report says why, and later
        sandboxes of this process go straight to Landlock."""
        if self.ready:
            return self.isolation
        try:
            return self._wait_ready()
        except SandboxStartError as exc:
            if not (self.mode == "auto" and self._launch_mode == "bwrap"):
                raise
            Sandbox._bwrap_failed = str(exc).splitlines()[-1][:300] if str(exc) else "did not start"
            self.proc = None
            self.launch()
            report = self._wait_ready()
            report["bwrap"] = f"failed, fell back to {report.get('isolation')}: {Sandbox._bwrap_failed}"
            return report

    def _wait_ready(self) -> dict[str, Any]:
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
        self.isolation["memory"] = self._memory_report()
        self.ready = True
        self.ready_at = time.monotonic()
        return self.isolation

    def _memory_report(self) -> str:
        """How the memory budget of the whole tree is enforced (verified, never assumed)."""
        if self.cgroup is not None and self.proc is not None and self.proc.pid in self.cgroup.pids():
            return self.cgroup.describe()
        if self.cgroup is not None:   # configured for a cgroup the worker is not in: say so
            return (f"NOT bounded as a whole (memory cgroup not joined): up to {self.limits.nproc} "
                    f"processes x RLIMIT_AS {self.limits.memory_mb} MB")
        n = self._processes()
        per = self.limits.memory_mb // n
        return (f"no memory cgroup: at most {n} process{'es' if n > 1 else ''} x RLIMIT_AS {per} MB"
                + ("" if self._uid is not None or self.mode == "none"
                   else " (process cap counts the grader uid's other processes: approximate)"))

    def memory_limit_hit(self) -> bool:
        """Whether the sandbox's memory cgroup ever reached its limit (False without one)."""
        return self.cgroup is not None and self.cgroup.limit_hit()

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

    def cpu_seconds(self) -> float | None:
        """CPU seconds the worker's process tree has used so far (None: not measurable here)."""
        return None if self.proc is None else tree_cpu_seconds(self.proc.pid)

    def _read_exact(self, n: int, deadline: float, cpu_limit: float | None = None) -> bytes:
        """``cpu_limit``: the worker's :meth:`cpu_seconds` at which waiting stops (a CPU budget)."""
        chunks, got = [], 0
        while got < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerTimeout("timed out waiting for the worker")
            wait = remaining if cpu_limit is None else min(remaining, CPU_POLL_S)
            ready, _, _ = select.select([self._from_worker], [], [], wait)
            if not ready:
                if cpu_limit is not None and (self.cpu_seconds() or 0.0) >= cpu_limit:
                    raise WorkerTimeout("the worker used up its CPU time", cpu=True)
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

    def _read_frame(self, deadline: float, cpu_limit: float | None = None) -> tuple[dict, list[bytes]]:
        (n,) = struct.unpack(">I", self._read_exact(4, deadline, cpu_limit))
        if n > wire.MAX_JSON_BYTES:
            raise WorkerCrashed(f"the worker sent an oversized message ({n} bytes)")
        try:
            header, sizes = wire.parse_frame_header(self._read_exact(n, deadline),
                                                    self.limits.max_reply_mb << 20)
        except wire.ProtocolError as exc:
            raise WorkerCrashed(f"the worker sent an invalid message: {exc}") from None
        return header, [self._read_exact(s, deadline) for s in sizes]

    def request(self, message: dict, blobs: list[bytes], deadline: float,
                cpu_budget: float | None = None) -> tuple[dict, list[bytes]]:
        """Send one request and wait (until ``deadline``, a ``time.monotonic()`` value) for its reply;
        with ``cpu_budget``, also until the worker's process tree has used that many CPU seconds
        on this request (measured from /proc every :data:`CPU_POLL_S`; unmeasurable: wall only).
        :attr:`last_cpu` holds the CPU seconds the request used (None: no budget, or unmeasurable).

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
        cpu0 = None if cpu_budget is None else self.cpu_seconds()   # no budget: nothing to watch
        self.last_cpu = None
        try:
            self._write_all(b"".join([struct.pack(">I", len(data)), data, *blobs]), deadline)
            reply, out = self._read_frame(deadline, None if cpu0 is None else cpu0 + cpu_budget)
            if reply.get("seq") != self._seq:
                raise WorkerCrashed("the worker answered out of turn")
            return reply, out
        except WorkerTimeout:
            self._note_cpu(cpu0)
            self.kill()
            raise
        except WorkerCrashed as exc:
            # the pipe closed: let an exiting worker finish, so the message says how it ended
            # (os._exit(0) vs a signal) the same way on every run and every engine
            try:
                if self.proc is not None:
                    self.proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
            self.kill()
            raise WorkerCrashed(f"{self.exit_description()} ({exc})") from None
        finally:
            if self.last_cpu is None:
                self._note_cpu(cpu0)

    def _note_cpu(self, cpu0: float | None) -> None:
        cpu1 = None if cpu0 is None else self.cpu_seconds()
        self.last_cpu = None if cpu1 is None else max(0.0, cpu1 - cpu0)

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

    def _drop_cgroup(self) -> None:
        if self.cgroup is not None:
            self.cgroup.kill_all()
            self.cgroup.remove()
            self.cgroup = None

    def kill(self) -> None:
        """Kill the worker's whole tree (process group, memory cgroup, uid); keep the exit status."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError as exc:
            if exc.errno not in (errno.ESRCH, errno.EPERM):
                raise
        if self.cgroup is not None:
            self.cgroup.kill_all()
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
        self._drop_cgroup()
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
