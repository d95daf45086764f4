"""Proof that nothing withheld reached a built student kit (source and bytecode).

:func:`scan_kit` lists what a kit leaks; ``python -m autograder release`` refuses to build a
release when it finds anything, and tests/test_release.py runs it on the real kit and on kits
with injected leaks of every kind.
"""
from __future__ import annotations

import ast
import os
import re
from pathlib import Path

from .kit import (REPO, WITHHELD_FILES, _DEFS, _decorator, _docstring_node, _graded_piece, _qualified,
                  strip_withheld_regions, withheld_objects)



class ReleaseLeak(RuntimeError):
    """A built student kit holds something that computes a graded answer."""


def withheld_names() -> dict[str, str]:
    """``{name: where it comes from}``: every name the student kit must not define or use:
    ``@withheld`` objects, definitions inside WITHHELD regions (also of kernels/*.cu), and the
    kernels of withheld kernel files."""
    names: dict[str, str] = {}
    for qualname in withheld_objects():
        names.setdefault(qualname.rsplit(".", 1)[1], qualname)
    files = sorted((REPO / "dlkit").rglob("*.py")) + sorted((REPO / "kernels").glob("*.c*"))
    for path in files:
        rel = str(path.relative_to(REPO))
        text = path.read_text(encoding="utf-8")
        if rel in WITHHELD_FILES:
            text = "// BEGIN WITHHELD\n" + text + "\n// END WITHHELD\n"
        _, found = strip_withheld_regions(text, rel)
        for name in found:
            if name.startswith("_"):
                continue
            names.setdefault(name, rel)
    return names


def _reference_lines(source: str, node: ast.AST) -> list[str]:
    """Distinctive lines (>= 16 characters, no comments, no docstring) of a definition's body."""
    body = node.body[1:] if _docstring_node(node) else node.body
    out = []
    for stmt in body:
        for line in (ast.get_source_segment(source, stmt) or "").splitlines():
            line = line.strip()
            if len(line) >= 16 and not line.startswith("#"):
                out.append(line)
    return out


def _code_names(code) -> set[str]:
    names = {code.co_name, *code.co_names, *code.co_varnames}
    for const in code.co_consts:
        if isinstance(const, str):
            names.update(re.findall(r"[A-Za-z_]\w*", const))
        elif hasattr(const, "co_names"):
            names |= _code_names(const)
    return names


_MODULE_ALIASES = {"dlkit", "ops", "_ops", "F", "nn", "functional"}


def scan_kit(kit: str | os.PathLike) -> list[str]:
    """What a built kit (the directory holding ``dlkit/`` and ``kernels/``) leaks, one line each.

    * no file of :data:`WITHHELD_FILES`, no definition of a withheld object;
    * no withheld name in the source (identifiers, strings) or in the compiled bytecode (names,
      constants) of any module.  A withheld name that the kit also uses for something kept (the
      op ``softmax_cross_entropy`` beside the backend's fused method) may not be read as an
      attribute of anything but a dlkit module;
    * no distinctive line of a graded or withheld body, beyond the times the instructor module has
      that line outside such bodies;
    * no kernel of a withheld name in kernels/, no ``*.pyc`` anywhere.
    """
    kit = Path(kit)
    problems: list[str] = []
    origin = withheld_names()
    names = set(origin)
    withheld_defs = set(withheld_objects())
    for rel in WITHHELD_FILES:
        if (kit / rel).exists():
            problems.append(f"{rel}: withheld file is in the kit")
    problems += [f"{p.relative_to(kit)}: compiled file in the kit" for p in kit.rglob("*.pyc")]
    kept = _kept_names(names)  # withheld names the instructor dlkit also uses for something kept
    trees = {}
    for path in sorted((kit / "dlkit").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        trees[path] = (source, ast.parse(source))
    for path, (source, tree) in trees.items():
        rel = path.relative_to(kit)
        module = ".".join(path.relative_to(kit).with_suffix("").parts).removesuffix(".__init__")
        for qualname, node in _qualified(tree):
            if f"{module}.{qualname}" in withheld_defs or node.name in names - kept:
                problems.append(f"{rel}: defines the withheld {module}.{qualname}")
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, *_DEFS)) and n.body and _docstring_node(n) is not None}
        for node in ast.walk(tree):
            hit = None
            if isinstance(node, ast.Attribute) and node.attr in names:
                base = node.value
                if node.attr not in kept or not (isinstance(base, ast.Name) and base.id in _MODULE_ALIASES):
                    hit = node.attr
            elif isinstance(node, ast.Name) and node.id in names and node.id not in kept:
                hit = node.id
            elif isinstance(node, ast.alias) and node.name.split(".")[-1] in names - kept:
                hit = node.name
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                words = set(re.findall(r"[A-Za-z_]\w*", node.value)) & (names - kept)
                words |= {n for n in names - kept for w in re.findall(r"[A-Za-z_]\w*", node.value)
                          if w.startswith(n + "_") and w.removeprefix(n + "_") in ("f32", "f64", "")}
                if words and id(node) not in docstrings:
                    hit = ", ".join(sorted(words))
            if hit:
                problems.append(f"{rel}:{getattr(node, 'lineno', '?')}: uses withheld {hit} "
                                f"({origin.get(hit.split(', ')[0], '?')})")
        # optimize=2 drops docstrings: prose may name what the kit leaves out, code may not
        code_names = _code_names(compile(source, str(path), "exec", optimize=2))
        for name in sorted((names - kept) & code_names):
            problems.append(f"{rel}: bytecode names withheld {name} ({origin[name]})")
    problems += _scan_bodies(kit, trees)
    kdir = kit / "kernels"
    for path in sorted(kdir.glob("*")) if kdir.is_dir() else []:
        text = path.read_text(encoding="utf-8")
        for name in sorted(n for n in names if origin[n].startswith("kernels/") or "." in origin[n]):
            if re.search(rf"\b{re.escape(name)}(_|\b)", text):
                problems.append(f"kernels/{path.name}: has withheld kernel code {name} ({origin[name]})")
    return problems


def _kept_names(names: set[str]) -> set[str]:
    """Those of ``names`` that the instructor dlkit also defines outside withheld code."""
    kept = set()
    for path in sorted((REPO / "dlkit").rglob("*.py")):
        if str(path.relative_to(REPO)) in WITHHELD_FILES:
            continue
        text, _ = strip_withheld_regions(path.read_text(encoding="utf-8"), str(path))
        tree = ast.parse(text)
        for _, node in _qualified(tree):
            if node.name in names and _decorator(node, "withheld") is None:
                kept.add(node.name)
    return kept


def _scan_bodies(kit: Path, trees: dict) -> list[str]:
    problems = []
    for path in sorted((REPO / "dlkit").rglob("*.py")):
        rel = path.relative_to(REPO)
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        secret: list[str] = []
        for _, node in _qualified(tree):
            if _graded_piece(node) or _decorator(node, "withheld"):
                secret += _reference_lines(source, node)
        if not secret:
            continue
        kit_path = kit / rel
        if not kit_path.exists():
            continue
        kit_text = trees[kit_path][0] if kit_path in trees else kit_path.read_text(encoding="utf-8")
        inside = "\n".join(secret)
        for line in dict.fromkeys(secret):
            allowed = source.count(line) - inside.count(line)
            if kit_text.count(line) > max(allowed, 0):
                problems.append(f"{rel}: reference line of a graded/withheld body in the kit: {line!r}")
    return problems
