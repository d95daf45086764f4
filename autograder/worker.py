"""The sandboxed worker's request server: the only code that runs beside a student's submission.

The worker program is three self-contained files (stdlib, plus numpy once the sandbox is set
up): :mod:`autograder.wire` (the codec, shared with the trusted side), :mod:`autograder.isolation`
(OS isolation) and this request server.  The trusted side starts it as
``python -I -S -B -c <program_source()> <config JSON>`` so that neither the ``autograder`` package
nor the repository is importable (or even visible) inside the sandbox.

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

Wire format: see :mod:`autograder.wire`.
"""
from __future__ import annotations

import io
import json
import math
import os
import sys
import traceback
from typing import Any


try:        # the trusted side imports the package; inside the sandbox the sources are one program
    from .isolation import setup_sandbox
    from .wire import EncodeError, ProtocolError, decode, encode, read_frame, write_frame
except ImportError:
    pass

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


#: the worker program's parts, in order (each stdlib-only; numpy once the sandbox is set up)
PROGRAM_PARTS = ("wire.py", "isolation.py", "worker.py")


def program_source() -> str:
    """The worker program the trusted side runs as ``python -I -S -B -c <source> <config>``:
    the wire codec, the OS isolation and this request server, as one script (the ``autograder``
    package is not importable inside the sandbox; the relative imports above then fail and the
    names are already defined by the earlier parts)."""
    import pathlib
    here = pathlib.Path(__file__).resolve().parent
    parts = []
    for i, name in enumerate(PROGRAM_PARTS):
        text = (here / name).read_text(encoding="utf-8")
        if i:                           # a __future__ import is only allowed at the very top
            text = text.replace("from __future__ import annotations\n", "", 1)
        parts.append(f"# ---- autograder/{name} ----\n{text}")
    return "\n".join(parts)


if __name__ == "__main__":
    main(sys.argv)
