"""The course website (make site): built from the student edition only, readable, complete.

The site is built once for this module from a real student edition: the release, then
deploy/site.py (execution + Jupyter Book). It must list the notebooks in teaching order, give
every figure alt text, carry its own MathJax, and contain no solution or hidden-test text. A
headless Chromium (Debian's, driven by playwright) then opens every page and checks that each
figure loaded and the math was typeset.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.nbcontract import nb_path

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("jupyter_book", reason="the site extra is not installed (make test installs it)")
pytestmark = pytest.mark.slow


def _site_module():
    spec = importlib.util.spec_from_file_location("deploy_site", ROOT / "deploy" / "site.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("site")
    release = tmp / "release"
    done = subprocess.run([sys.executable, "-m", "autograder", "release", "--out", str(release)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    packs = next((p for p in (tmp / "release_packs", release.parent / "release_packs") if p.is_dir()), None)
    _site_module().build(release, packs, tmp / "site", timeout=180)
    return tmp / "site" / "html"


def _release_text(site: Path, aid: str) -> str:
    """Everything the student edition of ``aid`` shows anyway (its cells' sources)."""
    import json

    nb = json.loads((site.parent.parent / "release" / aid / f"{aid}.ipynb").read_text(encoding="utf-8"))
    return "\n".join("".join(c["source"]) for c in nb["cells"])


def _pages(site: Path) -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in site.glob("[0-9][0-9]_*.html")}


def _assignments() -> list[str]:
    return sorted(p.name for p in (ROOT / "notebooks").iterdir() if (p / f"{p.name}.ipynb").is_file())


def test_every_notebook_has_a_page_in_teaching_order(site):
    assert sorted(_pages(site)) == _assignments()
    index = (site / "intro.html").read_text(encoding="utf-8")
    positions = [index.find(f"{aid}.html") for aid in _assignments()]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), positions


def test_every_figure_has_alt_text_and_the_file_exists(site):
    figures = 0
    for name, html in _pages(site).items():
        for tag in re.findall(r"<img [^>]*>", html):
            src = re.search(r'src="([^"]+)"', tag).group(1)
            alt = re.search(r'alt="([^"]*)"', tag)
            assert (site / src).is_file(), (name, src)
            if "_images/" in src:
                figures += 1
                assert alt and alt.group(1).startswith("Figure:") and len(alt.group(1)) > 12, (name, tag)
    assert figures >= 8, "the notebooks draw at least one figure each"


def test_math_is_rendered_by_a_mathjax_shipped_with_the_site(site):
    assert (site / "_static" / "mathjax" / "MathJax.js").is_file()
    pages = _pages(site)
    with_math = [n for n, html in pages.items() if "\\(" in html or "\\[" in html]
    assert len(with_math) >= 6, with_math
    for name in with_math:
        assert "_static/mathjax/MathJax.js" in pages[name], name
        assert "cdn.jsdelivr" not in pages[name] and "cdnjs" not in pages[name], name


def _solution_lines(aid: str) -> set[str]:
    """Distinctive lines of the instructor notebook's solution regions and hidden tests."""
    import json

    nb = json.loads(nb_path(aid).read_text(encoding="utf-8"))
    lines = set()
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        for region in re.findall(r"### BEGIN (?:SOLUTION|HIDDEN TESTS)\n(.*?)### END", src, re.DOTALL):
            for line in region.splitlines():
                line = line.strip()
                if len(line) >= 25 and not line.startswith("#"):
                    lines.add(line)
    return lines


def test_no_solution_or_hidden_test_text_reaches_the_site(site):
    import html as html_lib

    for name, page in _pages(site).items():
        text = html_lib.unescape(re.sub(r"<[^>]+>", "", page))
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, name
        visible = _release_text(site, name)     # a line a visible test shares is no leak
        leaked = [ln for ln in _solution_lines(name) if ln in text and ln not in visible]
        assert not leaked, f"{name}: solution text on the site: {leaked[:3]}"


def test_a_browser_sees_every_figure_and_typeset_math(site):
    chromium = shutil.which("chromium")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not chromium:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page()
        for name in sorted(_pages(site)):
            page.goto((site / f"{name}.html").as_uri())
            page.wait_for_load_state("load")
            broken = page.evaluate("""() => Array.from(document.querySelectorAll('img'))
                .filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)""")
            assert not broken, (name, broken)
            has_math = page.evaluate("() => /\\\\\\(|\\\\\\[/.test(document.body.innerHTML)")
            if has_math:
                page.wait_for_function("() => document.querySelectorAll('.MathJax, .MathJax_Display,"
                                       " mjx-container').length > 0", timeout=30000)
                errors = page.evaluate("() => document.querySelectorAll('.MathJax_Error, merror').length")
                assert errors == 0, name
        page.goto((site / "03_optimization.html").as_uri())
        page.wait_for_timeout(1500)
        page.screenshot(path=str(site.parent / "03_optimization.png"), full_page=False)
        browser.close()
