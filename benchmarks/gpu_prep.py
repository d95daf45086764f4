"""Prepare a GPU day on a machine without a GPU: download what the device needs into ``.gpu/``.

    python benchmarks/gpu_prep.py [--out .gpu] [--python-version 3.12]      (make gpu-prep)

The lent GPU machine is bare and offline: it has Python 3.12 (``/opt/torch/.venv``) with numpy,
CuPy and PyTorch, the CUDA toolkit and compute-sanitizer, but no pycuda and no test tools. This
script fetches, from the package registry:

* the pycuda source distribution (it must be built on the device, against its CUDA);
* binary wheels for the device's Python of pycuda's build and run dependencies;
* binary wheels of the test tools the parity suite needs (pytest, hypothesis and theirs).

Everything lands in one git-ignored folder, with ``MANIFEST.txt`` listing the files and their
sizes; ``bash benchmarks/gpu_check.sh OUTDIR`` on the device installs from it with
``--no-index``. The folder must stay small enough to carry with the working tree (64 MiB in
all): the script fails if it is not.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PYCUDA = "pycuda==2026.1"
#: pycuda's build and run dependencies (see its setup.py / pyproject), as binary wheels.
#: numpy is not among them: the build uses the device's own numpy (--no-build-isolation).
BUILD_DEPS = ("pytools", "platformdirs", "mako", "typing-extensions", "markupsafe", "siphash24",
              "setuptools", "wheel")
#: What ``pytest tests/test_backend_parity.py`` imports beyond numpy.
TEST_DEPS = ("pytest", "pluggy", "iniconfig", "packaging", "hypothesis", "sortedcontainers",
             "attrs")
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")
CARRY_LIMIT = 48 << 20          # leave room under the device tool's 64 MiB carry limit


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "download", "-q", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"gpu-prep: pip download failed ({' '.join(args[-3:])}):\n"
                         f"{done.stderr.strip()[-2000:]}")


def prepare(out: Path, python_version: str) -> list[Path]:
    """Download everything into ``out``; return the files, largest first."""
    out.mkdir(parents=True, exist_ok=True)
    _pip("--no-deps", "-d", str(out), PYCUDA)
    platform_args = [a for p in PLATFORMS for a in ("--platform", p)]
    _pip("--no-deps", "--only-binary", ":all:", "--python-version", python_version,
         "--implementation", "cp", *platform_args, "-d", str(out), *BUILD_DEPS, *TEST_DEPS)
    files = sorted((p for p in out.iterdir() if p.is_file() and p.name != "MANIFEST.txt"),
                   key=lambda p: -p.stat().st_size)
    total = sum(p.stat().st_size for p in files)
    if total > CARRY_LIMIT:
        raise SystemExit(f"gpu-prep: {out} holds {total / 2**20:.1f} MiB, more than the "
                         f"{CARRY_LIMIT >> 20} MiB that can be carried to the device")
    lines = [f"{p.stat().st_size:>10}  {p.name}" for p in files]
    lines.append(f"{total:>10}  total ({len(files)} files, Python {python_version})")
    (out / "MANIFEST.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / ".gpu"), help="folder to fill (default .gpu)")
    parser.add_argument("--python-version", default="3.12", help="the device's Python (3.12)")
    args = parser.parse_args(argv)
    files = prepare(Path(args.out), args.python_version)
    total = sum(p.stat().st_size for p in files)
    print(f"gpu-prep: {len(files)} files, {total / 2**20:.1f} MiB in {args.out}")
    print("next, on the device: bash benchmarks/gpu_check.sh OUTDIR   (carry .gpu)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
