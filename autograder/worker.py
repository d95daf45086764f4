"""The sandboxed worker: the only code that runs beside a student's submission.

This file is SELF-CONTAINED (stdlib, plus numpy once the sandbox is set up): the trusted side
starts it as ``python -I -S -B -c <this file's source> <config JSON>`` so that neither the
``autograder`` package nor the repository is importable (or even visible) inside the sandbox.
The trusted side also imports this module as ``autograder.worker`` for the wire format
(:func:`read_frame`, :func:`write_frame`, :func:`encode`, :func:`decode`), so both ends share one
codec.

Start-up, while still privileged (see ``autograder/sandbox.py`` for what the config holds and
for the isolation modes):

1. ``namespaces`` mode (root): new mount / PID / network / IPC / UTS namespaces (``unshare``),
   then a fork: the child goes on as PID 1 of the new PID namespace, the parent only waits and
   exits like it; the filesystem is rebuilt on a private tmpfs holding only read-only bind
   mounts of the Python runtime, the few packages the student edition needs (plus the
   toolchain and extra read-only directories of contract C when asked), ``/dev/null`` & co,
   a fresh ``/proc`` of the sandbox's own PIDs, and tmpfs ``/work`` (scratch) and ``/tmp``;
   ``pivot_root`` to it and detach the old root, so hidden checks, reference notebooks, the
   gradebook and other submissions do not exist in the worker's world.  ``bwrap`` mode:
   bubblewrap built the same world (through a user namespace) before this process started;
2. drop to an unprivileged, per-sandbox uid/gid with no supplementary groups and
   ``PR_SET_NO_NEW_PRIVS``;
3. ``resource`` limits (CPU time, address space, processes, file size, open files, core); the
   address space per process is the whole budget when a memory cgroup bounds the tree, else
   the budget divided by the processes allowed;
4. Landlock (``landlock`` mode, when the kernel has it): reads only below the allowed paths,
   writes only in scratch.

Each step degrades gracefully when the OS refuses it; what was achieved is verified from inside
(the grader's PID is not visible, only loopback exists, the grader's files are absent, no
capabilities) and reported to the trusted side in the first message (``isolation``), whose
``"isolation"`` key names the mode actually achieved.

Imports policies (contract B): an ``exec`` request's cells may carry ``policy`` and
``allowed_imports``; cells of one policy share one globals dict whose ``__builtins__`` has an
``__import__`` allowing only those top-level modules (``ImportPolicyError`` naming the cell and
the policy otherwise) and no ``dlkit`` unless allowed.  This catches honest mistakes and casual
shortcuts; it is not a security boundary (the sandbox is).

Wire format (both directions): a frame is ``u32 json_len | JSON | blob_0 | blob_1 | ...``
(big-endian); the JSON object lists the blob lengths in ``"_blobs"``.  Values are JSON with tagged
objects for what JSON lacks: ``{"$t": "nd", "b": i}`` is the i-th blob, an ``.npy`` file (read
with our own header checks and ``allow_pickle=False``), ``{"$t": "tuple", "v": [...]}``,
``{"$t": "dict", "items": [[k, v], ...]}``, ``{"$t": "rng", "state": {...}}`` (a PCG64 Generator,
trusted -> worker only).  Nothing is ever pickled.
"""
from __future__ import annotations

import io
import json
import math
import os
import struct
import sys
import traceback
from typing import Any

# ============================================================================================
# Codec (shared with the trusted side)
# ============================================================================================
MAX_JSON_BYTES = 8 * 1024 * 1024          # one frame's JSON part
MAX_BLOB_BYTES = 256 * 1024 * 1024        # all blobs of one frame together
MAX_DEPTH = 32                            # nesting of lists/tuples/dicts
MAX_NODES = 200_000                       # values in one message
ALLOWED_KINDS = "biuf"                    # bool, int, uint, float arrays only


class ProtocolError(Exception):
    """A frame or value that does not follow the wire format (or breaks its limits)."""


class EncodeError(TypeError):
    """A value that is not plain data (the message says which and where)."""


def _read_exact(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("pipe closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def write_frame(fd: int, header: dict, blobs: list[bytes]) -> None:
    """Write one frame: the JSON ``header`` (``_blobs`` added) followed by ``blobs``."""
    header = dict(header)
    header["_blobs"] = [len(b) for b in blobs]
    data = json.dumps(header, allow_nan=True, separators=(",", ":")).encode("utf-8")
    buf = b"".join([struct.pack(">I", len(data)), data, *blobs])
    view = memoryview(buf)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def parse_frame_header(raw: bytes, max_blob_bytes: int = MAX_BLOB_BYTES) -> tuple[dict, list[int]]:
    """Decode a frame's JSON part and validate its blob list."""
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"frame is not JSON: {type(exc).__name__}") from None
    if type(header) is not dict:
        raise ProtocolError("frame is not a JSON object")
    sizes = header.pop("_blobs", [])
    if type(sizes) is not list or not all(type(s) is int and s >= 0 for s in sizes):
        raise ProtocolError("frame has an invalid blob list")
    if sum(sizes) > max_blob_bytes:
        raise ProtocolError(f"frame carries {sum(sizes)} bytes of arrays (limit {max_blob_bytes})")
    return header, sizes


def read_frame(fd: int, max_json: int = MAX_JSON_BYTES,
               max_blob_bytes: int = MAX_BLOB_BYTES) -> tuple[dict, list[bytes]]:
    """Blocking read of one frame (used inside the worker; the trusted side reads with a deadline)."""
    (n,) = struct.unpack(">I", _read_exact(fd, 4))
    if n > max_json:
        raise ProtocolError(f"frame JSON of {n} bytes exceeds {max_json}")
    header, sizes = parse_frame_header(_read_exact(fd, n), max_blob_bytes)
    return header, [_read_exact(fd, s) for s in sizes]


def npy_bytes(arr: Any) -> bytes:
    """Serialize a plain numeric ndarray as ``.npy`` bytes (never pickled)."""
    import numpy as np
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def npy_load(data: bytes, max_elements: int | None = None) -> Any:
    """Parse ``.npy`` bytes into a NEW plain ndarray, checking everything before allocating.

    Only bool/int/uint/float dtypes; the header must describe exactly the bytes present.
    """
    import numpy as np
    fmt = np.lib.format
    buf = io.BytesIO(data)
    try:
        version = fmt.read_magic(buf)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(buf)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(buf)
        else:
            raise ProtocolError(f"unsupported .npy version {version}")
    except ProtocolError:
        raise
    except Exception as exc:  # noqa: BLE001 - any malformed header
        raise ProtocolError(f"malformed array header: {exc}") from None
    if not isinstance(dtype, np.dtype) or dtype.hasobject or dtype.fields is not None \
            or dtype.subdtype is not None or dtype.kind not in ALLOWED_KINDS:
        raise ProtocolError(f"array dtype {dtype} is not allowed (only bool/int/uint/float)")
    if type(shape) is not tuple or not all(type(d) is int and d >= 0 for d in shape) or len(shape) > 32:
        raise ProtocolError("array header has an invalid shape")
    count = math.prod(shape)
    if max_elements is not None and count > max_elements:
        raise ProtocolError(f"array of {count} elements exceeds the limit of {max_elements}")
    payload = data[buf.tell():]
    if len(payload) != count * dtype.itemsize:
        raise ProtocolError("array header does not match its data length")
    flat = np.frombuffer(payload, dtype=dtype, count=count)
    arr = flat.reshape(shape, order="F" if fortran else "C")
    native = dtype.newbyteorder("=")
    return np.array(arr, dtype=native, order="C", copy=True)


def encode(value: Any, blobs: list[bytes], *, allow_rng: bool = False,
           max_elements: int | None = None, _depth: int = 0, _where: str = "value") -> Any:
    """Plain data -> JSON-able tree (arrays appended to ``blobs``).

    Exact types only: a subclass of ndarray / list / dict is refused with :class:`EncodeError`,
    numpy scalars become Python scalars.
    """
    if _depth > MAX_DEPTH:
        raise EncodeError(f"{_where}: nested more than {MAX_DEPTH} levels deep")
    t = type(value)
    if value is None or t in (bool, int, float, str):
        return value
    import numpy as np
    if t is np.ndarray:
        if value.dtype.kind not in ALLOWED_KINDS or value.dtype.fields is not None:
            raise EncodeError(f"{_where}: arrays must have a bool/int/float dtype, not {value.dtype}")
        if max_elements is not None and value.size > max_elements:
            raise EncodeError(f"{_where}: array of {value.size} elements exceeds the limit {max_elements}")
        blobs.append(npy_bytes(value))
        return {"$t": "nd", "b": len(blobs) - 1}
    if isinstance(value, np.ndarray):
        raise EncodeError(f"{_where}: is a {t.__module__}.{t.__qualname__} (a subclass of numpy.ndarray); "
                          "return a plain numpy array (e.g. np.asarray(x))")
    if isinstance(value, np.generic) and t.__module__ == "numpy":
        if value.dtype.kind in ALLOWED_KINDS:
            return value.item()
        raise EncodeError(f"{_where}: numpy scalar of dtype {value.dtype} is not supported")
    kw: dict[str, Any] = {"allow_rng": allow_rng, "max_elements": max_elements, "_depth": _depth + 1}
    if t is list:
        return [encode(v, blobs, _where=f"{_where}[{i}]", **kw) for i, v in enumerate(value)]
    if t is tuple:
        return {"$t": "tuple", "v": [encode(v, blobs, _where=f"{_where}[{i}]", **kw)
                                     for i, v in enumerate(value)]}
    if t is dict:
        items = []
        for k, v in value.items():
            if not (k is None or type(k) in (bool, int, float, str)):
                raise EncodeError(f"{_where}: dict keys must be str/int/float/bool/None, not {type(k).__name__}")
            items.append([k, encode(v, blobs, _where=f"{_where}[{k!r}]", **kw)])
        return {"$t": "dict", "items": items}
    if allow_rng and t is np.random.Generator:
        bitgen = value.bit_generator
        if type(bitgen) is not np.random.PCG64:
            raise EncodeError(f"{_where}: only PCG64 generators can be sent, not {type(bitgen).__name__}")
        return {"$t": "rng", "state": bitgen.state}
    raise EncodeError(f"{_where}: {t.__module__}.{t.__qualname__} is not plain data "
                      "(use numpy arrays, Python numbers, str, None, and lists/tuples/dicts of those)")


def decode(node: Any, blobs: list[bytes], *, allow_rng: bool = False,
           max_elements: int | None = None) -> Any:
    """JSON tree -> plain data; the inverse of :func:`encode`.  Raises :class:`ProtocolError`."""
    count = [0]
    used: set[int] = set()

    def walk(n: Any, depth: int) -> Any:
        count[0] += 1
        if count[0] > MAX_NODES:
            raise ProtocolError(f"value has more than {MAX_NODES} parts")
        if depth > MAX_DEPTH + 1:
            raise ProtocolError("value nested too deeply")
        t = type(n)
        if n is None or t in (bool, int, float, str):
            return n
        if t is list:
            return [walk(v, depth + 1) for v in n]
        if t is not dict:
            raise ProtocolError(f"unexpected JSON node {t.__name__}")
        tag = n.get("$t")
        if tag == "nd":
            i = n.get("b")
            if type(i) is not int or not 0 <= i < len(blobs) or i in used:
                raise ProtocolError("array reference out of range")
            used.add(i)
            return npy_load(blobs[i], max_elements)
        if tag == "tuple" and type(n.get("v")) is list:
            return tuple(walk(v, depth + 1) for v in n["v"])
        if tag == "dict" and type(n.get("items")) is list:
            out = {}
            for item in n["items"]:
                if type(item) is not list or len(item) != 2:
                    raise ProtocolError("malformed dict item")
                k = item[0]
                if not (k is None or type(k) in (bool, int, float, str)):
                    raise ProtocolError("dict key is not a scalar")
                out[k] = walk(item[1], depth + 1)
            return out
        if tag == "rng" and allow_rng:
            import numpy as np
            bitgen = np.random.PCG64()
            bitgen.state = n.get("state")
            return np.random.Generator(bitgen)
        raise ProtocolError(f"unknown tagged value {str(tag)[:40]!r}")

    try:
        return walk(node, 0)
    except RecursionError:
        raise ProtocolError("value nested too deeply") from None


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


# ============================================================================================
# Serving requests
# ============================================================================================
class _CappedText(io.TextIOBase):
    """A stdout/stderr replacement keeping the first ``cap`` characters."""

    def __init__(self, cap: int) -> None:
        self.cap, self.parts, self.size, self.dropped = cap, [], 0, 0

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        s = str(s)
        room = self.cap - self.size
        if room > 0:
            self.parts.append(s[:room])
            self.size += min(room, len(s))
        self.dropped += max(0, len(s) - max(room, 0))
        return len(s)

    def text(self) -> str:
        out = "".join(self.parts)
        return out + (f"\n... ({self.dropped} more characters)" if self.dropped else "")


class _FakeIPython:
    """Stands in for ``get_ipython()``: magics and hooks from answer cells are ignored."""

    class _Events:
        def register(self, *args: Any, **kwargs: Any) -> None:
            return None

        unregister = register

    def __init__(self) -> None:
        self.events = self._Events()
        self.input_transformers_post: list = []
        self.input_transformers_cleanup: list = []
        self.user_ns: dict = {}

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class ImportPolicyError(ImportError):
    """An answer cell imported a module its imports policy (GRADED.md, contract B) does not allow."""


def _policy_import(real_import: Any, who: str, policy: str, allowed: tuple) -> Any:
    """An ``__import__`` letting answer cell ``who`` import only the top-level modules ``allowed``."""
    allowed_set = frozenset(allowed)
    listing = ", ".join(allowed)

    def __import__(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (),
                   level: int = 0) -> Any:
        top = str(name).partition(".")[0]
        if level != 0 or top not in allowed_set:
            what = ("." * level + str(name)) if level else str(name)
            cell = who
            try:   # name the answer cell the import statement is in
                fname = sys._getframe(1).f_code.co_filename
                if fname.startswith("<answer cell ") and fname.endswith(">"):
                    cell = fname[len("<answer cell "):-1]
            except (AttributeError, ValueError):
                pass
            raise ImportPolicyError(f"{cell} may import only {listing} (imports policy `{policy}`, "
                                    f"see GRADED.md); it imported {what}")
        return real_import(name, globals, locals, fromlist, level)

    return __import__


#: Names the worker provides to every answer cell (never looked up as the student's).
PROVIDED = frozenset({"__name__", "__builtins__", "np", "math", "get_ipython", "dlkit"})


class _CellBuiltins(dict):
    """The ``__builtins__`` of the answer cells of one imports policy: the real builtins with a
    policy-enforcing ``__import__``, and, for names neither they nor the builtins define, the
    names answer cells of the OTHER policies defined (so a helper from another cell keeps
    working, as in the notebook; a module another policy forbids is never handed over)."""

    def __init__(self, base: dict, worker: "Worker", key: Any, allowed: tuple | None) -> None:
        super().__init__(base)
        self._worker, self._key, self._allowed = worker, key, allowed

    def __missing__(self, name: str) -> Any:
        if name not in PROVIDED:
            for key, space in self._worker.spaces.items():
                if key != self._key and name in space:
                    value = space[name]
                    if self._worker._shareable(value, self._allowed):
                        return value
        raise KeyError(name)


class Worker:
    """Serves one submission.  The answer cells of one imports policy share one globals dict
    (as in the notebook); its ``__builtins__`` (a :class:`_CellBuiltins`) enforces the policy
    and finds what cells of other policies defined.  No per-cell copying: loading N cells is
    linear in N."""

    def __init__(self, rfd: int, wfd: int, cfg: dict) -> None:
        self.rfd, self.wfd, self.cfg = rfd, wfd, cfg
        self.ns: dict[str, Any] = {}              # the base namespace (np, math, dlkit, ...)
        self.spaces: dict[Any, dict] = {}         # (policy, allowed) or None -> globals dict
        self.cell_errors: dict[str, str] = {}
        self.loaded: set[str] = set()
        self.max_elements = cfg.get("max_elements", 10_000_000)
        self.pid = os.getpid()
        import builtins
        self.builtins = dict(builtins.__dict__)

    def restore_builtins(self) -> None:
        """Undo changes student code made to ``builtins`` (the worker's own code relies on them)."""
        import builtins
        current = builtins.__dict__
        for key in [k for k in current if k not in self.builtins]:
            del current[key]
        current.update(self.builtins)

    def forked_guard(self) -> None:
        """A process the student forked must never answer on the protocol pipe: it exits here."""
        if os.getpid() != self.pid:
            os._exit(0)

    # ---- the namespace answer cells see
    def base_namespace(self) -> None:
        import numpy as np
        ns: dict[str, Any] = {"__name__": "__student__", "__builtins__": __builtins__,
                              "np": np, "math": math, "get_ipython": _FakeIPython}
        try:
            import dlkit  # the student edition (graded pieces raise NotImplementedError)
            ns["dlkit"] = dlkit
        except Exception as exc:  # noqa: BLE001
            self.dlkit_error = f"{type(exc).__name__}: {exc}"
        self.ns = ns

    @staticmethod
    def _shareable(value: Any, allowed: tuple | None) -> bool:
        """Whether a name another policy's cells defined may be seen under policy ``allowed``."""
        if allowed is None:
            return True
        import types
        if isinstance(value, types.ModuleType):
            return str(getattr(value, "__name__", "")).partition(".")[0] in allowed
        return True

    def space(self, gid: str, policy: str | None, allowed: tuple | None) -> dict:
        """The globals dict of the answer cells with this imports policy (created once)."""
        key = None if allowed is None else (policy, allowed)
        g = self.spaces.get(key)
        if g is not None:
            return g
        base = dict(self.builtins)
        if allowed is not None:
            base["__import__"] = _policy_import(self.builtins["__import__"],
                                                f"an answer cell with imports policy `{policy}`",
                                                policy or "?", allowed)
        g = {"__name__": "__student__", "np": self.ns["np"], "math": math, "get_ipython": _FakeIPython,
             "__builtins__": _CellBuiltins(base, self, key, allowed)}
        if "dlkit" in self.ns and (allowed is None or "dlkit" in allowed):
            g["dlkit"] = self.ns["dlkit"]
        self.spaces[key] = g
        return g

    def lookup(self, name: str) -> tuple[bool, Any]:
        """A name the student's cells defined (latest policy space first)."""
        if name in PROVIDED:
            return False, None
        for g in reversed(list(self.spaces.values())):
            if name in g:
                return True, g[name]
        return False, None

    # ---- error reports
    def error_reply(self, exc: BaseException, out: _CappedText | None) -> dict:
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if f.filename.startswith("<answer cell ") or f.filename.startswith("<driver")]
        lines = []
        for f in frames[-5:]:
            where = f.filename.strip("<>")
            lines.append(f'  {where}, line {f.lineno}, in {f.name}' + (f"\n    {f.line}" if f.line else ""))
        try:
            text = str(exc)
        except BaseException:  # noqa: BLE001 - a student exception whose __str__ fails
            text = "<unprintable>"
        name = type(exc).__name__
        if isinstance(exc, NameError):
            text += (" (answer cells must be self-contained: define or import everything you use "
                     "inside the graded cell; np, math and dlkit are provided)")
        return {"ok": False, "error": {"type": name[:100], "message": text[:2000],
                                       "traceback": "\n".join(lines)[:4000]},
                "stdout": out.text()[:4000] if out else ""}

    @staticmethod
    def _cell_spec(item: Any) -> tuple[str, str, str | None, tuple | None]:
        """``[gid, source]`` (no policy) or ``{"gid", "source", "policy", "allowed_imports"}``."""
        if type(item) is dict:
            allowed = item.get("allowed_imports")
            if allowed is not None:
                if type(allowed) is not list or not all(type(m) is str for m in allowed):
                    raise ProtocolError("allowed_imports must be a list of module names")
                allowed = tuple(allowed)
            gid, source, policy = item.get("gid"), item.get("source"), item.get("policy")
        else:
            gid, source = item
            policy = allowed = None
        if type(gid) is not str or type(source) is not str:
            raise ProtocolError("a cell needs a str gid and source")
        return gid, source, (str(policy) if policy is not None else None), allowed

    def exec_cells(self, cells: list) -> dict:
        import linecache
        errors = {}
        for item in cells:
            gid, source, policy, allowed = self._cell_spec(item)
            if gid in self.loaded:
                if gid in self.cell_errors:
                    errors[gid] = self.cell_errors[gid]
                continue
            self.loaded.add(gid)
            filename = f"<answer cell {gid}>"
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
            g = self.space(gid, policy, allowed)
            out = _CappedText(4000)
            old = sys.stdout, sys.stderr
            sys.stdout = sys.stderr = out
            try:
                exec(compile(source, filename, "exec"), g)
                self.forked_guard()
            except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt included
                self.forked_guard()
                err = self.error_reply(exc, out)["error"]
                self.cell_errors[gid] = f"{err['type']}: {err['message']}\n{err['traceback']}".strip()
                errors[gid] = self.cell_errors[gid]
            finally:
                sys.stdout, sys.stderr = old
                self.restore_builtins()
        return {"ok": True, "errors": errors}

    def invoke(self, fn: Any, args: list, kwargs: dict) -> tuple[dict, list[bytes]]:
        out = _CappedText(4000)
        old = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = out
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001
            self.forked_guard()
            return self.error_reply(exc, out), []
        finally:
            sys.stdout, sys.stderr = old
            self.restore_builtins()
        self.forked_guard()
        blobs: list[bytes] = []
        try:
            value = encode(result, blobs, max_elements=self.max_elements, _where="the returned value")
        except EncodeError as exc:
            return {"ok": False, "error": {"type": "ReturnValueError", "message": str(exc)[:2000],
                                           "traceback": ""}, "stdout": out.text()[:4000]}, []
        except RecursionError:
            return {"ok": False, "error": {"type": "ReturnValueError",
                                           "message": "the returned value is nested too deeply",
                                           "traceback": ""}, "stdout": ""}, []
        return {"ok": True, "value": value, "stdout": out.text()[:4000]}, blobs

    def handle(self, msg: dict, blobs: list[bytes]) -> tuple[dict, list[bytes]]:
        op = msg.get("op")
        if op == "exec":
            return self.exec_cells(msg["cells"]), []
        if op in ("call", "run"):
            args = decode(msg.get("args", []), blobs, allow_rng=True)
            kwargs = decode(msg.get("kwargs", {"$t": "dict", "items": []}), blobs, allow_rng=True)
            if op == "call":
                name = msg["name"]
                found, fn = self.lookup(str(name))
                if not found:
                    return {"ok": False, "error": {"type": "NameError", "message":
                            f"your answer cells do not define {name!r}", "traceback": ""}}, []
            else:
                filename = f"<driver {msg['entry']}>"
                # the trusted driver sees the student's names (of every policy space, so
                # `globals().get(name)` works) but does not add to them; the names the worker
                # provides (np, math, dlkit, ...) always come from the base, never from a cell
                env = dict(self.ns)
                for g in self.spaces.values():
                    env.update((k, v) for k, v in g.items()
                               if k not in PROVIDED and not k.startswith("__"))
                env["__builtins__"] = _CellBuiltins(self.builtins, self, "<driver>", None)
                try:
                    exec(compile(msg["source"], filename, "exec"), env)
                    fn = env[msg["entry"]]
                except BaseException as exc:  # noqa: BLE001 - reported like any error
                    return self.error_reply(exc, None), []
            return self.invoke(fn, args, kwargs)
        if op == "has":
            return {"ok": True, "value": self.lookup(str(msg["name"]))[0]}, []
        if op == "ping":
            return {"ok": True}, []
        return {"ok": False, "error": {"type": "ProtocolError", "message": f"unknown op {op!r}",
                                       "traceback": ""}}, []

    def serve(self) -> None:
        while True:
            try:
                msg, blobs = read_frame(self.rfd)
            except EOFError:
                return
            if msg.get("op") == "exit":
                return
            try:
                reply, out_blobs = self.handle(msg, blobs)
            except (ProtocolError, KeyError, TypeError, SyntaxError) as exc:
                reply, out_blobs = {"ok": False, "error": {"type": "WorkerError",
                                                           "message": f"{type(exc).__name__}: {exc}",
                                                           "traceback": ""}}, []
            reply["seq"] = msg.get("seq")
            self.forked_guard()
            write_frame(self.wfd, reply, out_blobs)


def main(argv: list[str]) -> None:
    cfg = json.loads(argv[1])
    rfd, wfd = cfg["rfd"], cfg["wfd"]
    try:
        report = setup_sandbox(cfg)
    except BaseException as exc:  # noqa: BLE001 - report, then die
        write_frame(wfd, {"ok": False, "error": f"sandbox set-up failed: {type(exc).__name__}: {exc}"}, [])
        os._exit(70)
    sys.path[:] = list(report.pop("sys_path"))
    sys.dont_write_bytecode = True
    worker = Worker(rfd, wfd, cfg)
    worker.base_namespace()
    if hasattr(worker, "dlkit_error"):
        report["dlkit"] = f"not importable: {worker.dlkit_error}"
    write_frame(wfd, {"ok": True, "isolation": report, "pid": os.getpid()}, [])
    worker.serve()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
