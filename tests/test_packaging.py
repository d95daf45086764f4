"""Set-up stays honest: conda and pip list the same dependencies, CI runs the README's command."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent


def _requirement(spec: str) -> tuple[str, str]:
    """``"numpy>=1.24"`` -> ``("numpy", ">=1.24")`` with the name normalised like pip does."""
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", spec)
    assert match, f"cannot parse requirement {spec!r}"
    return re.sub(r"[-_.]+", "-", match.group(1)).lower(), match.group(2).replace(" ", "")


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _conda_dependencies() -> dict[str, str]:
    deps, in_deps = {}, False
    for raw in (REPO / "environment.yml").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if line.startswith("dependencies:"):
            in_deps = True
            continue
        if in_deps and re.match(r"^  - [^ ]", line):
            name, version = _requirement(line[4:])
            if name not in {"python", "pip"}:
                deps[name] = version
        elif in_deps and line and not line.startswith(" "):
            in_deps = False
    return deps


def test_environment_yml_matches_pyproject():
    project = _pyproject()["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["dev"]
    # entries only for old Pythons (e.g. tomli) have no place in a conda env pinned to a new one
    wanted = dict(_requirement(s) for s in specs if ";" not in s)
    assert _conda_dependencies() == wanted


def _lock(name: str) -> dict[str, list[tuple[str, str]]]:
    """``{package: [(version, environment marker), ...]}`` of ``requirements/<name>.lock``."""
    pins: dict[str, list[tuple[str, str]]] = {}
    for raw in (REPO / "requirements" / f"{name}.lock").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        spec, _, marker = line.partition(";")
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", spec.strip())
        assert match, f"{name}.lock: not an exact pin: {raw!r}"
        pkg = re.sub(r"[-_.]+", "-", match.group(1)).lower()
        pins.setdefault(pkg, []).append((match.group(2), marker.strip()))
    return pins


@pytest.mark.parametrize("lock, extras", [("base", ()), ("dev", ("dev",)), ("cluster", ("cluster",))])
def test_lock_pins_every_declared_dependency_within_its_bounds(lock, extras):
    from packaging.specifiers import SpecifierSet

    project = _pyproject()["project"]
    specs = list(project["dependencies"])
    for extra in extras:
        specs += project["optional-dependencies"][extra]
    pins = _lock(lock)
    conda = _conda_dependencies()
    for spec in specs:
        req, _, marker = spec.partition(";")
        name, bound = _requirement(req)
        assert name in pins, f"{name} is declared in pyproject.toml but not pinned in {lock}.lock: make lock"
        for pinned, where in pins[name]:
            assert pinned in SpecifierSet(bound), f"{lock}.lock pins {name}=={pinned}, outside {bound}"
            if name in conda and not marker:
                assert pinned in SpecifierSet(conda[name]), f"environment.yml bounds {name} {conda[name]}"
    assert "dlkit" not in pins, "the lock must not pin the project itself"


def test_every_install_goes_through_the_locks():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "install -r requirements/base.lock" in makefile and "install -r requirements/dev.lock" in makefile
    # the Dask extra (grading on a cluster) is installed from its lock, and make test installs it
    assert "install -r requirements/cluster.lock" in makefile
    assert re.search(r"^test-lib:.*installed-cluster", makefile, re.MULTILINE)
    assert "install --no-deps -e ." in makefile
    assert not re.search(r"install (-e )?'?\.(\[dev\])?'?\s*$", makefile, re.MULTILINE), \
        "an install that lets pip resolve versions outside the locks"


def test_gpu_extra_is_pycuda_only_and_not_in_the_default_install():
    project = _pyproject()["project"]
    assert [_requirement(s)[0] for s in project["optional-dependencies"]["gpu"]] == ["pycuda"]
    names = {_requirement(s)[0] for s in project["dependencies"] + project["optional-dependencies"]["dev"]}
    assert "pycuda" not in names  # CI and laptops have no CUDA driver


def test_design_card_packages_are_declared():
    project = _pyproject()["project"]
    names = {_requirement(s)[0] for s in project["dependencies"]
             + project["optional-dependencies"]["dev"] + project["optional-dependencies"]["gpu"]}
    assert {"jupyterlab", "numpy", "pycuda", "nbgrader", "matplotlib", "ipywidgets", "pytest", "nbval"} <= names


def test_ci_runs_make_test_and_nothing_else():
    commands = [ln.strip() for ln in (REPO / ".ci" / "run").read_text().splitlines()
                if ln.strip() and not ln.strip().startswith("#")]
    assert commands[-1] in {"make test", "exec make test"}
    assert all(c.startswith(("set ", "cd ")) for c in commands[:-1]), commands


def test_readme_shows_the_two_commands():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make lab" in readme and "make test" in readme


def test_makefile_targets_exist():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    for target in ("lab", "test", "release", "grade", "bench"):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target


def test_nbgrader_source_directory_is_notebooks():
    assert 'source_directory = "notebooks"' in (REPO / "nbgrader_config.py").read_text()


# -- a non-editable install ships the CUDA sources and finds them ------------------------------
KERNEL_SOURCES = sorted(p.name for p in (REPO / "kernels").iterdir() if p.suffix in {".cu", ".cuh"})
# what a copy of the repository for building leaves out: environments, caches, build output
_NOT_COPIED = shutil.ignore_patterns(".venv", ".git", "build", "dist", "release", "*.egg-info",
                                     "__pycache__", ".pytest_cache", ".hypothesis", "_work",
                                     ".ipynb_checkpoints", "gradebook.db")


def test_setuptools_packages_are_every_package_under_dlkit():
    """pyproject lists packages by hand (to map kernels/ into dlkit._kernels): none forgotten."""
    setuptools = _pyproject()["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "dlkit").rglob("__init__.py")}
    assert set(setuptools["packages"]) == on_disk | {"dlkit._kernels"}
    assert setuptools["package-dir"] == {"dlkit._kernels": "kernels"}
    assert "common.cuh" in KERNEL_SOURCES and any(n.endswith(".cu") for n in KERNEL_SOURCES)


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory) -> Path:
    """``pip wheel`` of a copy of the repository (so the build never writes into the checkout),
    offline: no index, no build isolation -- the dev extra provides setuptools>=77."""
    have = version("setuptools")
    if int(have.split(".")[0]) < 77:
        pytest.fail(f"setuptools {have} cannot build dlkit (pyproject.toml needs >= 77); "
                    "install the dev extra: pip install -e '.[dev]'")
    tmp = tmp_path_factory.mktemp("wheel")
    src, out = tmp / "src", tmp / "dist"
    shutil.copytree(REPO, src, ignore=_NOT_COPIED)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "-q", "-w", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}"
    (wheel,) = out.glob("dlkit-*.whl")
    return wheel


def test_wheel_ships_the_kernels_and_no_tests_or_notebooks(built_wheel):
    with zipfile.ZipFile(built_wheel) as zf:
        names = set(zf.namelist())
        for name in KERNEL_SOURCES:
            assert f"dlkit/_kernels/{name}" in names, f"the wheel lacks kernels/{name}"
            assert zf.read(f"dlkit/_kernels/{name}") == (REPO / "kernels" / name).read_bytes()
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "dlkit").rglob("*.py")}
    assert modules <= names, f"modules missing from the wheel: {sorted(modules - names)}"
    top = {n.split("/")[0] for n in names}
    assert top == {"dlkit", "dlkit-0.1.0.dist-info"}, top
    unwanted = sorted(n for n in names if n.endswith(".ipynb")
                      or {"tests", "notebooks", "autograder", "kernels"} & set(n.split("/")[:-1]))
    assert not unwanted, f"the wheel ships files it should not: {unwanted}"


def test_installed_wheel_finds_its_kernels(built_wheel, tmp_path):
    """Installed from the wheel (no checkout next to it), the cuda backend finds the sources."""
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                    "--disable-pip-version-check", "-q", "--target", str(site), str(built_wheel)],
                   check=True, capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
    code = ("import dlkit; from dlkit.backend import cuda_kernels as k; "
            "print(dlkit.__file__); print(k.kernels_dir())")
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    package, kernels = (Path(line) for line in proc.stdout.split())
    assert package.parent == site / "dlkit", f"imported {package}, not the installed wheel"
    assert kernels == site / "dlkit" / "_kernels"
    assert sorted(p.name for p in kernels.iterdir() if p.suffix in {".cu", ".cuh"}) == KERNEL_SOURCES
