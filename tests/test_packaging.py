"""Set-up stays honest: conda and pip list the same dependencies, CI runs the README's command."""
from __future__ import annotations

import re
from pathlib import Path

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
