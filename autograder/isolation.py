"""OS isolation of the sandbox worker: namespaces, private root, uid drop, limits, Landlock.

Runs first in the worker, while still privileged (see :mod:`autograder.worker` for the steps
and :mod:`autograder.sandbox` for the modes); :func:`setup_sandbox` returns what it achieved,
verified from inside.  SELF-CONTAINED (stdlib only): inside the sandbox this file's source is
part of the worker program (:func:`autograder.worker.program_source`).
"""
from __future__ import annotations

import os
from typing import Any

# ============================================================================================
# Sandbox set-up (runs first, while still privileged)
# ============================================================================================
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWPID = 0x10000000, 0x40000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    1, 2, 4, 8, 32, 4096, 16384, 1 << 18)
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS = 38
PR_SET_PDEATHSIG = 1
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
SYS_LANDLOCK = {"create": 444, "add_rule": 445, "restrict": 446}   # same on all architectures


def _libc() -> Any:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    return libc


def _check(ret: int, what: str) -> None:
    if ret != 0:
        import ctypes
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(libc: Any, src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: None if s is None else s.encode())
    _check(libc.mount(enc(src), enc(dst), enc(fstype), flags, enc(data)), f"mount {src} -> {dst}")


def _build_root(libc: Any, cfg: dict, uid: int) -> None:
    """Private tmpfs root with read-only binds; pivot_root into it and detach the old root."""
    root = cfg["root"]
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    _mount(libc, "tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, f"size={cfg['tmpfs_mb']}m,mode=0755")
    for link, target in cfg.get("symlinks", []):
        path = root + link
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(target, path)
    for src, dst in cfg["ro_binds"]:
        path = root + dst
        if os.path.isdir(src):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "a").close()
        _mount(libc, src, path, None, MS_BIND | MS_REC)
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID
        if not dst.startswith("/dev/"):
            flags |= MS_NODEV
        _mount(libc, None, path, None, flags)
    for d, mode in (("/work", 0o700), ("/tmp", 0o1777)):
        os.makedirs(root + d, exist_ok=True)
        # a tmpfs of its own, so that it stays writable after "/" is remounted read-only below
        _mount(libc, "tmpfs", root + d, "tmpfs", MS_NOSUID | MS_NODEV,
               f"size={cfg['tmpfs_mb']}m,mode={mode:o}")
        os.chown(root + d, uid, uid)
        os.chmod(root + d, mode)
    os.makedirs(root + "/proc", exist_ok=True)   # this PID namespace's processes only
    _mount(libc, "proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for src, dst in cfg.get("late_binds", []):   # e.g. /proc/driver/nvidia (gpu=True)
        _mount(libc, src, root + dst, None, MS_BIND | MS_REC)
        _mount(libc, None, root + dst, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir(root)
    import platform
    nr = SYS_PIVOT_ROOT.get(platform.machine())
    pivoted = False
    if nr is not None:
        if libc.syscall(nr, b".", b".") == 0:
            _check(libc.umount2(b".", MNT_DETACH), "umount old root")
            pivoted = True
    if not pivoted:
        os.chroot(".")
    os.chdir("/")
    _mount(libc, None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _landlock(libc: Any, read_paths: list[str], write_paths: list[str]) -> str:
    """Restrict file access with Landlock; returns a description of the outcome."""
    import ctypes
    abi = libc.syscall(SYS_LANDLOCK["create"], None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 0:
        return "unavailable"
    # Access rights (ABI 1..3): execute, write_file, read_file, read_dir, remove_dir, remove_file,
    # make_char, make_dir, make_reg, make_sock, make_fifo, make_block, make_sym, refer(2), truncate(3)
    read_rights = (1 << 0) | (1 << 2) | (1 << 3)
    all_rights = (1 << 13) - 1
    if abi >= 2:
        all_rights |= 1 << 13
    if abi >= 3:
        all_rights |= 1 << 14

    class RulesetAttr(ctypes.Structure):
        _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    # ABI >= 4 also handles TCP bind/connect; with no rule for any port, both are denied.
    attr = RulesetAttr(all_rights, 3 if abi >= 4 else 0)
    if abi < 4:
        attr_size = ctypes.sizeof(ctypes.c_uint64)
    else:
        attr_size = ctypes.sizeof(attr)
    fd = libc.syscall(SYS_LANDLOCK["create"], ctypes.byref(attr), ctypes.c_size_t(attr_size),
                      ctypes.c_uint32(0))
    if fd < 0:
        return f"ruleset refused (errno {ctypes.get_errno()})"
    try:
        for paths, rights in ((read_paths, read_rights), (write_paths, all_rights)):
            for p in paths:
                try:
                    pfd = os.open(p, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    file_rights = rights if os.path.isdir(p) else rights & ((1 << 0) | (1 << 1) | (1 << 2) | (1 << 14))
                    rule = PathBeneath(file_rights, pfd)
                    if libc.syscall(SYS_LANDLOCK["add_rule"], ctypes.c_int(fd), ctypes.c_int(1),
                                    ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                        return f"rule for {p} refused (errno {ctypes.get_errno()})"
                finally:
                    os.close(pfd)
        if libc.syscall(SYS_LANDLOCK["restrict"], ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            return f"restrict refused (errno {ctypes.get_errno()})"
    finally:
        os.close(fd)
    return f"on (ABI {abi}{', TCP denied' if abi >= 4 else ''})"


def _world_readable(path: str) -> bool:
    """Whether every directory on the way to ``path`` lets other users through."""
    import stat
    parts = os.path.abspath(path).split(os.sep)
    for i in range(2, len(parts) + 1):
        try:
            mode = os.stat(os.sep.join(parts[:i])).st_mode
        except OSError:
            return False
        if not mode & stat.S_IXOTH or not mode & stat.S_IROTH:
            return False
    return True


def _drop_capabilities(libc: Any) -> None:
    """Empty the bounding, effective, permitted and inheritable capability sets."""
    import ctypes
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP (fails harmlessly past the last cap)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    header = Header(0x20080522, 0)       # _LINUX_CAPABILITY_VERSION_3
    data = (Data * 2)()
    _check(libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")


def _count_processes(uid: int) -> int:
    try:
        names = os.listdir("/proc")
    except OSError:
        return 0
    n = 0
    for name in names:
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    n += 1
            except OSError:
                pass
    return n


def _enter_pid_namespace(libc: Any, cfg: dict) -> bool:
    """Fork into the new PID namespace (``unshare(CLONE_NEWPID)`` was done): the child returns
    True and goes on as PID 1 of it; the parent only waits and exits like the child did."""
    pid = os.fork()
    if pid == 0:
        return True
    import signal
    for fd in (cfg["rfd"], cfg["wfd"]):
        try:
            os.close(fd)
        except OSError:
            pass
    os.closerange(3, 256)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            os._exit(70)
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
        os.kill(os.getpid(), sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 70)


def _effective_capabilities() -> int:
    """This process's effective capability set (read before Landlock hides /proc)."""
    import ctypes
    try:
        libc = _libc()

        class Header(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

        class Data(ctypes.Structure):
            _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                        ("inheritable", ctypes.c_uint32)]

        header, data = Header(0x20080522, 0), (Data * 2)()
        if libc.capget(ctypes.byref(header), ctypes.byref(data)) != 0:
            return -1
        return data[0].effective | (data[1].effective << 32)
    except (OSError, AttributeError):
        return -1


def _verify(cfg: dict, report: dict) -> None:
    """Check from inside what the layers achieved; ``report["isolation"]`` claims only that."""
    grader = int(cfg.get("grader_pid") or 0)
    hidden = True
    try:
        if grader:
            os.kill(grader, 0)
        hidden = False                      # the grader's process is visible (and signalable)
    except ProcessLookupError:
        hidden = os.getpid() <= 8           # pids of a fresh namespace are tiny
    except PermissionError:
        hidden = False
    report["pids"] = "private (PID namespace)" if hidden else "host PIDs visible"
    try:
        import socket
        names = {n for _, n in socket.if_nameindex()}
    except OSError:
        names = {"?"}
    if names <= {"lo"} and report.get("network", "").startswith("off"):
        report["network"] = "off (empty network namespace: loopback only)"
    elif report.get("network", "").startswith("off"):
        report["network"] = f"NOT isolated (interfaces {sorted(names)})"
    probe = cfg.get("hidden_probe")
    private = report.get("filesystem", "").startswith("private")
    if private and probe and os.path.exists(probe):
        report["filesystem"] = "NOT private (the grader's files are visible)"
        private = False
    mode = cfg.get("mode")
    no_caps = report.pop("_capeff", 1) == 0
    full = private and hidden and report["network"].startswith("off") and no_caps
    if mode == "namespaces" and full and report.get("user", "").startswith("uid "):
        report["isolation"] = "namespaces(root)"
    elif mode == "bwrap" and full:
        report["isolation"] = "bwrap"
    elif str(report.get("landlock", "")).startswith("on"):
        report["isolation"] = "landlock"
    else:
        report["isolation"] = "none"
    report["capabilities"] = "none" if no_caps else "SOME (not dropped)"


def setup_sandbox(cfg: dict) -> dict:
    """Apply every isolation layer the OS allows; return what was achieved (and verified)."""
    import resource
    report: dict[str, Any] = {}
    libc = None
    try:
        libc = _libc()
    except OSError as exc:
        report["libc"] = f"unavailable: {exc}"
    mode = cfg.get("mode") or ("namespaces" if cfg.get("namespaces", True) else "landlock")
    is_root = os.geteuid() == 0
    uid = cfg.get("uid") if (is_root and cfg.get("uid") is not None) else os.getuid()
    ns = False
    fs = "not isolated"
    if mode == "bwrap":
        ns = True                          # built by bubblewrap before this process started
        report["namespaces"] = "user,mount,pid,net,ipc,uts (bubblewrap)"
        fs = "private root (read-only binds + scratch, bubblewrap)"
        report["user"] = f"uid {os.getuid()} in a user namespace"
        is_root = False
    elif libc is not None and mode == "namespaces":
        flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID
        if is_root and libc.unshare(flags) == 0:
            ns = True
            libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
            _enter_pid_namespace(libc, cfg)      # from here on: PID 1 of the sandbox
            libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
        report["namespaces"] = "mount,pid,net,ipc,uts" if ns else "unavailable (unshare refused)"
        if ns:
            try:
                _build_root(libc, cfg, uid)
                fs = "private root (read-only binds + scratch)"
            except OSError as exc:
                fs = f"not isolated ({exc})"
    report["network"] = "off (empty network namespace)" if ns else "NOT isolated"
    report["filesystem"] = fs
    private = fs.startswith("private")
    scratch = "/work" if private else cfg["scratch"]
    os.chdir(scratch)
    own_uid = False
    if mode == "bwrap":
        pass
    elif is_root and not private and not _world_readable(cfg["sys_path"][0]):
        # Without a private root, another uid could not even read the Python runtime (e.g. it
        # lives under /root): stay uid 0 but without any capability; Landlock confines files.
        report["user"] = "uid 0 WITHOUT capabilities (runtime not readable by other users)"
        os.chown(cfg["scratch"], 0, 0)
        if libc is not None:
            _drop_capabilities(libc)
        is_root = False
    elif is_root:
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            report["user"] = f"uid {uid}"
            own_uid = uid != 0 and cfg.get("uid") is not None
        except OSError as exc:
            report["user"] = f"STILL ROOT ({exc})"
    elif "user" not in report:
        report["user"] = f"uid {uid} (unprivileged already)"
    if libc is not None:
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    report["_capeff"] = _effective_capabilities()
    lim = cfg["limits"]
    processes = max(1, int(cfg.get("processes") or lim.get("nproc", 1)))
    per_process_mb = lim["memory_mb"] if cfg.get("memory_cgroup") else lim["memory_mb"] // processes
    if own_uid:
        nproc = processes                   # the sandbox's own uid: exactly its processes
    else:
        nproc = _count_processes(os.getuid()) + processes - 1
    for name, value in (("RLIMIT_CPU", lim["cpu_s"]), ("RLIMIT_AS", per_process_mb << 20),
                        ("RLIMIT_NPROC", nproc), ("RLIMIT_FSIZE", lim["fsize_mb"] << 20),
                        ("RLIMIT_NOFILE", lim["nofile"]), ("RLIMIT_CORE", 0)):
        try:
            resource.setrlimit(getattr(resource, name), (value, value))
        except (ValueError, OSError) as exc:
            report.setdefault("limits_failed", []).append(f"{name}: {exc}")
    report["processes"] = processes
    if libc is not None:
        libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)  # die with the grader (reset by the uid change)
    report["sys_path"] = cfg["private_sys_path"] if private else cfg["sys_path"]
    if libc is not None and cfg.get("landlock", True) and not private:
        reads = list(cfg["sys_path"]) + ["/dev/null", "/dev/zero", "/dev/urandom"]
        reads += cfg.get("extra_read", [])
        try:
            report["landlock"] = _landlock(libc, reads, [scratch] + list(cfg.get("devices", [])))
            if "TCP denied" in report["landlock"] and not ns:
                report["network"] = "TCP blocked by Landlock (other protocols NOT isolated)"
            if report["landlock"].startswith("on"):
                report["filesystem"] = "Landlock (read: runtime only; write: scratch only)"
        except Exception as exc:  # noqa: BLE001 - best effort layer
            report["landlock"] = f"failed ({exc})"
    os.environ.clear()
    os.environ.update(cfg["env"])
    if private:
        os.environ["HOME"] = os.environ["TMPDIR"] = "/work"
    _verify(cfg, report)
    return report


