"""Deployment pieces: the images' install script, the hub config and the nbgitpuller links.

CI cannot run docker, so what the images do is tested where it can be: the one install script
both Dockerfiles call runs here in a fresh virtual environment against a real student edition,
and the Dockerfiles, the Zero-to-JupyterHub values and the links are checked for what a hub
admin relies on. Where a docker engine answers, the images are built too.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
sys.path.insert(0, str(DEPLOY))
import links  # noqa: E402


def _lock_pin(name: str) -> str:
    """The version base.lock pins for ``name`` on this interpreter (markers evaluated)."""
    from packaging.markers import Marker

    for line in (ROOT / "requirements" / "base.lock").read_text().splitlines():
        m = re.match(rf"{name}==(\S+)(?:\s*;\s*(.*))?$", line.strip())
        if m and (not m.group(2) or Marker(m.group(2)).evaluate()):
            return m.group(1)
    raise AssertionError(f"{name} is not in base.lock")


@pytest.mark.slow
def test_student_install_script_gives_the_locked_student_kit(tmp_path):
    release = tmp_path / "release"
    done = subprocess.run([sys.executable, "-m", "autograder", "release", "--out", str(release)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    done = subprocess.run(["sh", str(DEPLOY / "install.sh"), "student", str(release / "kit"),
                           str(ROOT / "requirements" / "base.lock")],
                          env={"PYTHON": str(py), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    probe = subprocess.run([str(py), "-c", "import dlkit, numpy, nbgitpuller, pathlib; "
                            "print(numpy.__version__); print(pathlib.Path(dlkit.__file__).parent)"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    numpy_version, kit_dir = probe.stdout.split()
    assert numpy_version == _lock_pin("numpy")
    assert str(env_dir) in kit_dir, "the kit must be installed, not imported from the repository"
    assert "site-packages" in kit_dir


def test_dockerfiles_pin_their_base_and_install_through_the_tested_script():
    for name in ("student.Dockerfile", "grader.Dockerfile"):
        text = (DEPLOY / name).read_text()
        base = re.search(r"^ARG BASE=(\S+)", text, re.MULTILINE).group(1)
        tag = base.rsplit(":", 1)[-1]
        assert ":" in base and tag != "latest" and re.search(r"\d", tag), f"{name}: unpinned base {base}"
        runs = [ln for ln in text.splitlines() if ln.startswith("RUN") and "pip" in ln]
        assert not runs, f"{name}: installs must go through deploy/install.sh: {runs}"
        assert "install.sh" in text and "base.lock" in text, name
        for src in re.findall(r"^COPY (\S+) ", text, re.MULTILINE):
            if src != ".":
                assert src.startswith("release/") or (ROOT / src).exists(), f"{name}: COPY {src} missing"
    grader = (DEPLOY / "grader.Dockerfile").read_text()
    assert "bubblewrap" in grader and "g++" in grader
    student = (DEPLOY / "student.Dockerfile").read_text()
    assert "DLKIT_MNIST_DIR" in student
    assert "nbgitpuller" in (DEPLOY / "install.sh").read_text()


def test_images_build_where_a_docker_engine_answers(tmp_path):
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode:
        pytest.skip("no docker engine on this machine (the client alone cannot build)")
    done = subprocess.run([docker, "build", "-f", str(DEPLOY / "grader.Dockerfile"), "-t",
                           "dlkit-grader-test", str(ROOT)], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]


def test_hub_config_limits_threads_culling_and_gpu_profile():
    config = yaml.safe_load((DEPLOY / "jupyterhub" / "config.yaml").read_text())
    single = config["singleuser"]
    assert single["image"]["tag"] not in ("latest", "") and single["image"]["name"]
    cpus = single["cpu"]["limit"]
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        assert int(single["extraEnv"][var]) == cpus, f"{var} must equal the CPU limit"
    assert single["memory"]["limit"]
    assert config["cull"]["enabled"] and config["cull"]["timeout"] > 0
    gpu = [p for p in single["profileList"]
           if "nvidia.com/gpu" in p.get("kubespawner_override", {}).get("extra_resource_limits", {})]
    assert gpu and "06_gpu_kernels" in gpu[0]["display_name"]
    assert sum(bool(p.get("default")) for p in single["profileList"]) == 1


def test_links_open_each_notebook_in_teaching_order(tmp_path, capsys):
    for aid in ("01_b", "00_a"):
        (tmp_path / aid).mkdir()
        (tmp_path / aid / f"{aid}.ipynb").write_text("{}")
    (tmp_path / "kit").mkdir()                       # not an assignment
    assert links.main(["--hub", "https://hub.example.edu/", "--repo",
                       "https://git.example.edu/course/dlkit-student.git", "--release", str(tmp_path)]) == 0
    rows = [ln.split("\t") for ln in capsys.readouterr().out.splitlines()]
    assert [nb for nb, _ in rows] == ["00_a/00_a.ipynb", "01_b/01_b.ipynb"]
    url = urlparse(rows[1][1])
    assert url.netloc == "hub.example.edu" and url.path == "/hub/user-redirect/git-pull"
    query = parse_qs(url.query)
    assert query == {"repo": ["https://git.example.edu/course/dlkit-student.git"], "branch": ["main"],
                     "urlpath": ["lab/tree/dlkit-student/01_b/01_b.ipynb"]}


def test_links_refuse_bad_urls_and_an_empty_release(tmp_path, capsys):
    (tmp_path / "00_a").mkdir()
    (tmp_path / "00_a" / "00_a.ipynb").write_text("{}")
    assert links.main(["--hub", "hub.example.edu", "--repo", "https://x.org/r", "--release",
                       str(tmp_path)]) == 2
    assert "--hub must be an http(s) URL" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="run `make release` first"):
        links.main(["--hub", "https://h.org", "--repo", "https://x.org/r", "--release", str(tmp_path / "none")])
