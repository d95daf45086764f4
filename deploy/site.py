"""The course website: the student edition's notebooks, executed, as a static Jupyter Book.

    python deploy/site.py [--release release] [--packs release_packs] [--out _site]   (make site)

Reads only the student edition (``make release``): solutions and hidden tests never reach it,
so they cannot reach the site. Each notebook is executed with the student kit (``release/kit``
first on ``PYTHONPATH``); when solution packs are given (``--packs``, published after the
deadlines) the graded pieces resolve to them and every figure is drawn, otherwise a cell that
needs an unfinished piece shows its "not done yet" message. Figures get alt text built from
what the figure itself says (titles, axis labels, legend entries), and math is rendered by a
MathJax copy shipped inside the site (no CDN: the site works offline and behind a campus proxy).

Output: ``OUT/html/index.html`` plus one page per notebook, in teaching order.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Runs first in every notebook's kernel (and is removed again): a PNG formatter for matplotlib
#: figures that returns the image together with its alt text.
ALT_TEXT_HOOK = r'''
def _dlkit_site_alt_hook():
    import io
    import matplotlib.figure
    import matplotlib.pyplot as plt
    from IPython import get_ipython

    plt.close(plt.figure())   # loads the inline backend, which registers its own PNG formatter

    def describe(fig):
        parts = []
        title = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) else ""
        if title:
            parts.append(title)
        for ax in fig.get_axes():
            bits = [t for t in (ax.get_title(), ax.get_title("left"), ax.get_title("right")) if t]
            if ax.get_xlabel() or ax.get_ylabel():
                bits.append(f"{ax.get_ylabel() or 'value'} against {ax.get_xlabel() or 'index'}")
            legend = ax.get_legend()
            if legend is not None:
                labels = [t.get_text() for t in legend.get_texts()][:6]
                bits.append("curves: " + ", ".join(labels))
            if bits:
                parts.append("; ".join(bits))
        text = ". ".join(parts) or "A figure drawn by the code above"
        return "Figure: " + text[:400]

    def png_with_alt(fig):
        buf = io.BytesIO()
        fig.canvas.print_figure(buf, format="png", bbox_inches="tight", dpi=80)
        return buf.getvalue(), {"alt": describe(fig)}

    formatter = get_ipython().display_formatter.formatters["image/png"]
    formatter.for_type(matplotlib.figure.Figure, png_with_alt)

_dlkit_site_alt_hook()
del _dlkit_site_alt_hook
'''


def assignments(release: Path) -> list[str]:
    found = sorted(p.name for p in release.iterdir()
                   if p.is_dir() and (p / f"{p.name}.ipynb").is_file()) if release.is_dir() else []
    if not found:
        raise SystemExit(f"site: no <ID>/<ID>.ipynb under {release}: run `make release` first")
    return found


def _title(nb: dict, fallback: str) -> str:
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def execute(path: Path, env: dict[str, str], timeout: int) -> dict:
    """Execute the notebook at ``path`` in its own folder; return it with alt text on figures."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    hook = nbformat.v4.new_code_cell(ALT_TEXT_HOOK)
    nb.cells.insert(0, hook)
    old_env = dict(os.environ)
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old_env)
    nb.cells.pop(0)
    nb.metadata.pop("widgets", None)      # live widget state: meaningless on a static page
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("nbgrader", None)          # instructor bookkeeping, not for readers
        for out in cell.get("outputs", []):
            alt = out.get("metadata", {}).get("image/png", {}).get("alt")
            if alt:
                cell.metadata.setdefault("mystnb", {}).setdefault("image", {})["alt"] = alt
    return nb


def write_book(src: Path, ids: list[str], titles: dict[str, str]) -> None:
    (src / "intro.md").write_text(
        "# Deep learning systems, built by hand\n\n"
        "The course notebooks of the dlkit kit, executed, in teaching order. To work through them "
        "yourself, open them on the course hub or run `make lab` in the student edition.\n\n"
        + "\n".join(f"{i}. [{titles[aid]}]({aid})" for i, aid in enumerate(ids)) + "\n",
        encoding="utf-8")
    toc = {"format": "jb-book", "root": "intro",
           "chapters": [{"file": aid} for aid in ids]}
    (src / "_toc.yml").write_text(json.dumps(toc, indent=1), encoding="utf-8")
    config = {
        "title": "dlkit: deep learning systems",
        "author": "the dlkit course",
        "execute": {"execute_notebooks": "off"},
        "only_build_toc_files": True,
        "parse": {"myst_enable_extensions": ["dollarmath", "amsmath"]},
        "html": {"use_repository_button": False, "use_issues_button": False},
        "sphinx": {"config": {
            # MathJax 2 from jupyter-server-mathjax, configured inline (Sphinx drops a ?config=)
            "mathjax_path": "mathjax/MathJax.js",
            "mathjax3_config": None,
            "mathjax2_config": {
                # the combined configuration: jupyter-server-mathjax ships the output jax only
                # inside it (jax/output/*/jax.js are not in the package)
                "config": ["TeX-AMS-MML_HTMLorMML-full.js"],
                # the package ships the STIX-Web fonts only (no TeX fonts, no image fonts)
                "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": "STIX-Web",
                             "imageFont": None},
                "SVG": {"font": "STIX-Web"},
                "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                            "processEscapes": True,
                            # Sphinx marks the page tex2jax_ignore and the math spans .math
                            "processClass": "tex2jax_process|mathjax_process|math|output_area",
                            "ignoreClass": "tex2jax_ignore|mathjax_ignore"}},
            # sliders cannot run in a static page; no widget manager fetched from a CDN
            "nb_ipywidgets_js": {},
            # not the book's own _static/: Jupyter Book adds every .js found there to every page
            "html_static_path": ["_mathjax"],
        }},
    }
    (src / "_config.yml").write_text(json.dumps(config, indent=1), encoding="utf-8")
    import jupyter_server_mathjax
    mathjax = Path(jupyter_server_mathjax.__file__).parent / "static"
    shutil.copytree(mathjax, src / "_mathjax" / "mathjax")


def build(release: Path, packs: Path | None, out: Path, timeout: int = 180) -> Path:
    ids = assignments(release)
    src = out / "src"
    if out.exists():
        shutil.rmtree(out)
    src.mkdir(parents=True)
    env = {"PYTHONPATH": os.pathsep.join([str(release / "kit"), os.environ.get("PYTHONPATH", "")]),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline", "DLKIT_BACKEND": "numpy",
           "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1"),
           "DLKIT_NOTEBOOKS": str(release)}
    if packs is not None and packs.is_dir():
        env["DLKIT_PACKS"] = str(packs.resolve())
    import nbformat
    titles = {}
    for aid in ids:
        print(f"site: executing {aid}", flush=True)
        nb = execute(release / aid / f"{aid}.ipynb", env, timeout)
        titles[aid] = _title(nb, aid)
        nbformat.write(nb, src / f"{aid}.ipynb")
    write_book(src, ids, titles)
    jb = Path(sys.executable).with_name("jupyter-book")
    done = subprocess.run([str(jb), "build", str(src), "--path-output",
                           str(out), "--keep-going"], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"site: jupyter-book build failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    html = out / "_build" / "html"
    final = out / "html"
    shutil.move(str(html), final)
    shutil.rmtree(out / "_build", ignore_errors=True)
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=Path, default=REPO / "release")
    parser.add_argument("--packs", type=Path, default=REPO / "release_packs",
                        help="published solution packs to execute with (default: release_packs/ if present)")
    parser.add_argument("--out", type=Path, default=REPO / "_site")
    parser.add_argument("--timeout", type=int, default=180, help="seconds per cell")
    args = parser.parse_args(argv)
    html = build(args.release.resolve(), args.packs, args.out.resolve(), args.timeout)
    print(f"site: {html / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
