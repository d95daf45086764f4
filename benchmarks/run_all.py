"""Run every benchmark script in this folder, one after another (``make bench``).

Each script prints its own figures and side-by-side ratios; RESULTS.md records them with the
machine they were measured on.
"""
from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    print(f"machine: {platform.machine()} {platform.processor() or ''} | python {platform.python_version()} "
          f"| cores {__import__('os').cpu_count()}")
    failed = []
    for script in sorted(HERE.glob("*.py")):
        if script.name == Path(__file__).name or script.name.startswith("_"):
            continue
        print(f"\n=== {script.name} " + "=" * max(0, 60 - len(script.name)), flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
