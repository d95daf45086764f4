"""Run a command as a child subreaper and report what it left running.

    python reaper.py OUT.json CMD ARGS...

Orphaned descendants of CMD (processes it started and did not wait for) are re-parented to this
process (``PR_SET_CHILD_SUBREAPER``) instead of init, so after CMD exits the ones still alive
are exactly what CMD left running.  They are written to OUT.json, then killed; the exit status
is CMD's (negative signal numbers as 128 + n).
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def stop_process_group(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM the process group ``proc`` leads (a server started with ``start_new_session``),
    SIGKILL it if it is still there after ``grace`` seconds, and reap it."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _children() -> dict[int, str]:
    me, found = os.getpid(), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode("utf-8", "replace")
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid == me and stat[stat.rindex(")") + 2] != "Z":
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    found[int(entry)] = fh.read().replace(b"\0", b" ").decode("utf-8", "replace")[:300]
        except (OSError, ValueError, IndexError):
            continue
    return found


def main() -> int:
    out, cmd = sys.argv[1], sys.argv[2:]
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    code = subprocess.call(cmd)
    deadline = time.monotonic() + 3          # processes that are just exiting
    left = _children()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        while True:                          # reap the ones that did exit
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        left = _children()
    with open(out, "w", encoding="utf-8") as fh:
        json.dump({str(k): v for k, v in left.items()}, fh)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
