"""nbgitpuller links: one click opens a notebook of the student edition in a student's hub.

    python deploy/links.py --hub https://hub.example.edu \\
        --repo https://github.com/example/dlkit-student --branch main [--release release] [--markdown]

The student edition (``make release``) is pushed to its own repository (``--repo``). A link
clones or updates that repository into the student's home on the hub (nbgitpuller merges, so a
student's own edits are kept) and opens the notebook in JupyterLab. One link per notebook, in
teaching order; ``--markdown`` prints a table for a course page or LMS.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlencode, urlparse

REPO = Path(__file__).resolve().parents[1]


def notebooks(release: Path) -> list[str]:
    """``<ID>/<ID>.ipynb`` for every assignment folder of the student edition, in order."""
    found = sorted(p.name for p in release.iterdir()
                   if p.is_dir() and (p / f"{p.name}.ipynb").is_file()) if release.is_dir() else []
    if not found:
        raise SystemExit(f"links: no <ID>/<ID>.ipynb under {release}: run `make release` first")
    return [f"{aid}/{aid}.ipynb" for aid in found]


def link(hub: str, repo: str, branch: str, notebook: str) -> str:
    """The nbgitpuller URL that pulls ``repo`` and opens ``notebook`` in JupyterLab."""
    for name, url in (("--hub", hub), ("--repo", repo)):
        parsed = urlparse(url)
        if parsed.scheme not in ("https", "http") or not parsed.netloc:
            raise ValueError(f"{name} must be an http(s) URL, got {url!r}")
    folder = urlparse(repo).path.rstrip("/").split("/")[-1].removesuffix(".git")
    query = urlencode({"repo": repo, "branch": branch,
                       "urlpath": f"lab/tree/{folder}/{notebook}"})
    return f"{hub.rstrip('/')}/hub/user-redirect/git-pull?{query}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hub", required=True, help="the JupyterHub's base URL")
    parser.add_argument("--repo", required=True, help="git URL of the student edition's repository")
    parser.add_argument("--branch", default="main")
    parser.add_argument("--release", type=Path, default=REPO / "release",
                        help="the student edition folder (default: release/)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    try:
        rows = [(nb, link(args.hub, args.repo, args.branch, nb)) for nb in notebooks(args.release)]
    except ValueError as exc:
        print(f"links: {exc}", file=sys.stderr)
        return 2
    if args.markdown:
        print("| notebook | open on the hub |\n|---|---|")
        for nb, url in rows:
            print(f"| {nb.split('/')[0]} | [open]({url}) |")
    else:
        for nb, url in rows:
            print(f"{nb}\t{url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
