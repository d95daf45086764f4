"""The copy of a submitted notebook that formgrader shows the TA: rebuilt, with no active content.

formgrader renders ``autograded/<student>/<ID>/<notebook>.ipynb`` with nbconvert's HTML exporter
inside the TA's logged-in Jupyter session, and nbconvert passes markdown's raw HTML, raw cells,
``javascript:`` links and HTML outputs through as they are; nbgrader's formgrade template even
puts a cell's ``grade_id`` into the page unescaped.  A submitted notebook is therefore never
copied: :func:`formgrader_notebook` builds a new one from it.

* Outputs are cleared and execution counts reset, as ``nbgrader autograde`` does.
* Code cells keep their source (nbconvert shows it highlighted, i.e. escaped).
* Markdown and raw cells are rendered to HTML here (nbconvert's own markdown renderer, with the
  cell's attachments) and that HTML is cleaned with an allow-list (bleach): no ``<script>``,
  ``<iframe>``, ``<svg>``, ``<object>``, ``<style>``, forms, event handlers, ``style`` / ``id``
  attributes, nor any link but http(s)/mailto/#anchors/relative; images load only from
  ``data:image/png|jpeg|gif|webp`` or a file beside the notebook (no request with the TA's
  session to another URL of the server).
  The cleaned HTML is stored on ONE line inside a ``<div>``, so that formgrader's markdown pass
  sees one HTML block and adds nothing to it.  Math stays as text for MathJax (loaded by
  formgrader with its ``Safe`` extension).
* At most ``RENDER_BUDGET_CELLS`` cells / ``RENDER_BUDGET_CHARS`` characters are rendered per
  notebook (this runs in the trusted batch process); the rest is shown as escaped text.
* Cell metadata keeps only nbgrader's keys with checked types (``grade_id`` must look like an
  nbgrader id); notebook metadata is replaced by a plain Python kernelspec; cell ids are checked.

A submission that is not a usable notebook becomes a one-cell notebook stating why.
"""
from __future__ import annotations

import functools
import html
import json
import re
from typing import Any

__all__ = ["formgrader_copy", "formgrader_notebook", "clean_html", "placeholder_notebook"]

#: Markdown/raw text (characters, cells) rendered per notebook; beyond it cells are shown as
#: escaped plain text, so that a huge notebook or 100,000 tiny cells cost the trusted process
#: (which rebuilds every copy) a bounded time.
RENDER_BUDGET_CHARS = 1_000_000
RENDER_BUDGET_CELLS = 2_000

_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")      # nbgrader grade_id / nbformat cell id
_TAGS = frozenset("""a abbr b blockquote br caption code dd del details div dl dt em h1 h2 h3 h4 h5 h6
hr i img ins kbd li mark ol p pre q s samp small span strong sub summary sup table tbody td tfoot th
thead tr tt u ul var""".split())
#: no ``id``/``name``: an element named like a global of formgrader's scripts would clobber it
_ATTRS = {"*": ["title", "class"], "a": ["href", "title", "class"],
          "img": ["src", "alt", "title", "width", "height"], "td": ["colspan", "rowspan", "align"],
          "th": ["colspan", "rowspan", "align"], "ol": ["start"]}
_PROTOCOLS = ["http", "https", "mailto", "data"]   # data: only for images, see _attribute
_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*$", re.I)
_SAFE_URL = re.compile(r"^(https?:|mailto:|#|[^:/?#]*(/|$)|[^:]*$)", re.I)
_BAD_CLASS = re.compile(r"mermaid|jupyter-widget|widget-", re.I)
_NBGRADER_TYPES = {"grade": bool, "solution": bool, "locked": bool, "task": bool,
                   "points": (int, float), "schema_version": int, "grade_id": str, "checksum": str,
                   "cell_type": str}


def _attribute(tag: str, name: str, value: str) -> bool:
    allowed = _ATTRS.get(tag, _ATTRS["*"])
    if name not in allowed:
        return False
    if name == "src":                  # loads without a click: raster data, or a file beside the notebook
        v = value.strip()
        if v.lower().startswith("data:"):
            return bool(_DATA_IMAGE.match(v))
        return bool(_SAFE_URL.match(v)) and not v.lower().startswith(("http", "mailto", "/", "\\")) \
            and ".." not in v and "?" not in v
    if name == "href":
        v = value.strip()
        return bool(_SAFE_URL.match(v)) and not v.lower().startswith("data:")
    if name == "class":
        return not _BAD_CLASS.search(value) and len(value) <= 200
    if name in ("width", "height", "colspan", "rowspan", "start"):
        return value.isdigit()
    return True


_CLEANER: Any = None


def clean_html(fragment: str) -> str:
    """``fragment`` with every tag, attribute and URL outside the allow-list escaped or removed."""
    global _CLEANER
    if _CLEANER is None:
        import bleach
        _CLEANER = bleach.Cleaner(tags=_TAGS, attributes=_attribute, protocols=_PROTOCOLS, strip=False,
                                  strip_comments=True)
    return _CLEANER.clean(fragment)


def _one_block(fragment: str) -> str:
    """Cleaned HTML as one line in a div: markdown renderers pass it through untouched."""
    return '<div class="dlkit-sanitized">' + fragment.replace("\r", "").replace("\n", "&#10;") + "</div>"


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""


def _attachments(cell: dict[str, Any]) -> dict[str, dict[str, str]]:
    out = {}
    att = cell.get("attachments")
    if isinstance(att, dict):
        for name, bundle in att.items():
            if isinstance(name, str) and isinstance(bundle, dict):
                keep = {m: d for m, d in bundle.items()
                        if m in ("image/png", "image/jpeg", "image/gif") and isinstance(d, str)}
                if keep:
                    out[name] = keep
    return out


_MARKDOWN: Any = None


def _markdown_html(source: str, attachments: dict[str, dict[str, str]]) -> str:
    """nbconvert's rendering of a markdown cell; the escaped text if it cannot render it."""
    global _MARKDOWN
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    def markdown(att: dict) -> Any:
        return MarkdownWithMath(renderer=IPythonRenderer(escape=False, attachments=att, exclude_anchor_links=True))

    if _MARKDOWN is None:
        _MARKDOWN = markdown({})            # building one costs ~100 times rendering a cell
    try:
        return (markdown(attachments) if attachments else _MARKDOWN).render(source)
    except Exception:  # noqa: BLE001 - e.g. a missing attachment: show the text, never fail
        return f"<pre>{html.escape(source)}</pre>"


#: Markdown cells up to this size are rendered once per distinct text and process: the cells a
#: course hands out arrive unchanged in almost every submission (~3 ms each to render and clean).
_MEMO_CHARS = 16_384


@functools.lru_cache(maxsize=512)
def _sanitized_markdown(source: str) -> str:
    return _one_block(clean_html(_markdown_html(source, {})))


def _nbgrader_meta(meta: Any) -> dict[str, Any] | None:
    if not isinstance(meta, dict):
        return None
    out = {}
    for key, typ in _NBGRADER_TYPES.items():
        if key in meta and isinstance(meta[key], typ) and not (typ is not bool and isinstance(meta[key], bool)):
            out[key] = meta[key]
    if "grade_id" in out and not _ID.match(out["grade_id"]):
        return None                        # not an nbgrader id: show the cell as a plain one
    if "points" in out and not (0 <= out["points"] < 1e6):
        del out["points"]
    return out or None


_KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
           "language_info": {"name": "python"}}


def _cell(kind: str, cid: str, source: str, meta: dict[str, Any]) -> dict[str, Any]:
    """An nbformat 4.5 cell (built directly: nbformat's constructors validate each cell, which
    costs more than rendering it)."""
    cell = {"cell_type": kind, "id": cid, "metadata": meta, "source": source}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def _writes(cells: list[dict[str, Any]]) -> str:
    """The notebook's JSON as nbformat writes it (validated by formgrader when it reads it)."""
    return json.dumps({"cells": cells, "metadata": _KERNEL, "nbformat": 4, "nbformat_minor": 5},
                      indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def formgrader_notebook(nb: dict[str, Any]) -> str:
    """The notebook JSON (text) formgrader may render, rebuilt from a parsed submission ``nb``."""
    cells = []
    seen: set[str] = set()
    budget, budget_cells = RENDER_BUDGET_CHARS, RENDER_BUDGET_CELLS
    for i, cell in enumerate(nb.get("cells") or []):
        if not isinstance(cell, dict):
            continue
        kind = cell.get("cell_type")
        source = _text(cell.get("source"))
        meta: dict[str, Any] = {}
        nbg = _nbgrader_meta((cell.get("metadata") or {}).get("nbgrader") if isinstance(cell.get("metadata"), dict) else None)
        if nbg:
            meta["nbgrader"] = nbg
        if kind == "code":
            pass                               # shown highlighted (escaped); outputs dropped
        elif len(source) > budget or budget_cells <= 0:      # too much to render: escaped text
            shown = f"<pre>{html.escape(source[:20_000])}</pre>"
            if len(source) > 20_000:
                shown += f"<p>[{len(source)} characters, not rendered]</p>"
            source = _one_block(shown)
        elif kind == "markdown":
            budget, budget_cells = budget - len(source), budget_cells - 1
            attachments = _attachments(cell)
            source = (_one_block(clean_html(_markdown_html(source, attachments))) if attachments
                      or len(source) > _MEMO_CHARS else _sanitized_markdown(source))
        else:                              # raw (or unknown): nbconvert would emit it verbatim
            budget, budget_cells = budget - len(source), budget_cells - 1
            source = _one_block(clean_html(source))
        cid = cell.get("id")
        cid = cid if isinstance(cid, str) and _ID.match(cid) and cid not in seen else f"cell-{i}"
        seen.add(cid)
        cells.append(_cell(kind if kind in ("code", "markdown") else "raw", cid, source, meta))
    return _writes(cells)


def placeholder_notebook(reason: str) -> str:
    """A one-cell notebook telling the TA why the submitted file is not shown."""
    text = html.escape(f"The submitted notebook is not shown: {reason}")
    return _writes([_cell("markdown", "not-shown", _one_block(f"<p><b>{text}</b></p>"), {})])


def formgrader_copy(data: bytes) -> str:
    """What to write as the autograded notebook for the raw submitted bytes ``data``."""
    try:
        nb = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return placeholder_notebook(f"it is not valid notebook JSON ({type(exc).__name__})")
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return placeholder_notebook("it is not a Jupyter notebook")
    try:
        return formgrader_notebook(nb)
    except Exception as exc:  # noqa: BLE001 - whatever the notebook holds, the TA gets a page
        return placeholder_notebook(f"it could not be rebuilt safely ({type(exc).__name__})")
