"""Turn a GPU day's OUTDIR (``benchmarks/gpu_check.sh OUTDIR``) into rows for RESULTS.md.

    python benchmarks/gpu_results.py OUTDIR > rows.md

Reads what each phase left (``env.log``, ``phases.tsv``, ``parity.xml``, ``sanitize-*.log`` /
``.json``, ``kernels.json``) and prints a Markdown section: the machine and versions, one row per
phase, then every figure of ``benchmarks/kernels.py`` with its target and whether it was met.
A phase that did not run is printed as "not run" with its reason, never left out; nothing is
copied by hand.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

SANITIZERS = ("memcheck", "racecheck", "synccheck")


def _env(out: Path) -> dict[str, str]:
    facts = {}
    path = out / "env.log"
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            key, sep, value = line.partition(": ")
            if sep:
                facts[key.strip()] = value.strip()
    return facts


def _phases(out: Path) -> list[dict[str, str]]:
    path = out / "phases.tsv"
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", errors="replace", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _parity(out: Path) -> str:
    path = out / "parity.xml"
    if not path.is_file():
        return "no parity.xml"
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        return f"parity.xml unreadable ({exc})"
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return "parity.xml has no testsuite"
    n = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    passed = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
    failed = [c.get("name", "?") for c in suite.iter("testcase")
              if c.find("failure") is not None or c.find("error") is not None]
    text = f"{passed} passed, {n['failures'] + n['errors']} failed, {n['skipped']} skipped"
    return text + (f" (first failures: {', '.join(failed[:5])})" if failed else "")


def _sanitizer(out: Path, tool: str) -> str:
    log = out / f"sanitize-{tool}.log"
    if not log.is_file():
        return "not run"
    text = log.read_text(encoding="utf-8", errors="replace")
    m = re.search(r"ERROR SUMMARY: (\d+) error", text)
    verdict = f"{m.group(1)} errors" if m else "no ERROR SUMMARY (stopped early?)"
    report = out / f"sanitize-{tool}.json"
    if report.is_file():
        data = json.loads(report.read_text(encoding="utf-8"))
        verdict += (f"; {len(data.get('launched', []))} kernels launched, "
                    f"{len(data.get('missing', []))} not launched")
    return verdict


def _fmt(x: float, spec: str = ".0f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _met(flag: bool | None) -> str:
    return "not run" if flag is None else ("met" if flag else "**missed**")


def render(out: Path) -> str:
    env = _env(out)
    phases = _phases(out)
    status = {p["phase"]: p for p in phases}
    lines = [f"### GPU day {env.get('date', '(date unknown)')}: {env.get('gpu', 'GPU unknown')}", ""]
    lines.append(f"Commit {env.get('commit', '?')}; {env.get('host', '?')}; Python {env.get('python', '?')}, "
                 f"numpy {env.get('numpy', '?')}; {env.get('nvcc', 'nvcc ?')}; "
                 f"compute-sanitizer {env.get('compute-sanitizer', '?')}.")
    total = out / "total.txt"
    if total.is_file():
        lines.append(f"Wall time of `gpu_check.sh`: {total.read_text().split()[-2]} s.")
    lines += ["", "| phase | status | seconds (limit) | result |", "|---|---|---|---|"]
    for p in phases:
        result = p.get("reason", "")
        if p["phase"] == "parity" and p["status"] != "not run":
            result = _parity(out)
        if p["phase"] == "sanitize" and p["status"] != "not run":
            result = "; ".join(f"{t}: {_sanitizer(out, t)}" for t in SANITIZERS)
        lines.append(f"| {p['phase']} | {p['status']} | {p['seconds']} ({p['limit']}) | {result or '–'} |")

    lines += ["", "| figure | dlkit | reference | ratio | target | met? |",
              "|--------|-------|-----------|-------|--------|------|"]
    kj = out / "kernels.json"
    if status.get("bench", {}).get("status") in ("passed", None) and kj.is_file():
        k = json.loads(kj.read_text(encoding="utf-8"))
        peak = k.get("device", {}).get("peak_gbps")
        last = k["matmul"][-1]["n"] if k.get("matmul") else None
        for row in k.get("matmul", []):
            target = "≥ 50 %" if row["n"] == last else "–"
            met = _met(row["ratio"] >= 0.5) if row["n"] == last else "–"
            lines.append(f"| matmul {row['n']}² (GFLOP/s) | {_fmt(row['dlkit_gflops'])} | "
                         f"{row.get('reference') or 'cuBLAS'}: {_fmt(row['reference_gflops'])} | "
                         f"{_fmt(100 * row['ratio'], '.1f')} % | {target} | {met} |")
        for row in k.get("bandwidth", []):
            is_copy = row["kernel"].startswith("d2d")
            lines.append(f"| {row['kernel']} (GB/s) | {_fmt(row['gbps'])} | peak: {_fmt(peak)} | "
                         f"{_fmt(100 * row['of_peak'], '.1f')} % of peak | "
                         f"{'–' if is_copy else '≥ 70 % of peak'} | "
                         f"{'–' if is_copy else _met(row['of_peak'] >= 0.7)} |")
        mlp = k.get("mlp", {})
        if mlp:
            lines.append(f"| MLP step, batch {mlp['batch']} (ms) | {_fmt(mlp['cuda_ms'], '.3f')} | "
                         f"numpy backend: {_fmt(mlp['numpy_ms'], '.3f')} | {_fmt(mlp['speedup'], '.1f')}× | "
                         f"≥ 10× | {_met(mlp['speedup'] >= 10)} |")
    else:
        why = status.get("bench", {}).get("reason") or "no kernels.json"
        lines.append(f"| every kernels.py figure | not run | – | – | – | not run ({why}) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    args = parser.parse_args(argv)
    if not (args.outdir / "phases.tsv").is_file():
        print(f"gpu_results: {args.outdir} has no phases.tsv (not a gpu_check.sh OUTDIR)", file=sys.stderr)
        return 2
    sys.stdout.write(render(args.outdir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
