"""Structure rules a newcomer relies on: no import cycles among the project's modules (module-level and
function-level imports alike), ``crossformer/`` imports only torch, numpy and the standard library, and no
test module imports another test module (shared cases live in helper modules)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("crossformer", "viz", "pages")


def _modules() -> dict[str, Path]:
    mods = {"app": ROOT / "app.py"}
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = p
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in out if m in mods and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    mods = _modules()
    graph = {m: _imports(m, p, mods) for m, p in mods.items()}
    assert _cycles(graph) == []
    # the checker finds a cycle when there is one
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


#: Imports allowed inside functions only: the statistics CLI's file I/O (decoding images, progress, the summary figure).
CLI_ONLY = {"crossformer/stats.py": {"PIL", "viz", "pyarrow"}, "crossformer/stats_cli.py": {"viz", "tqdm"},
            "crossformer/images.py": {"PIL"}, "crossformer/attribution.py": {"captum"}}
#: … and the downloader's lock and progress bar, imported when a download runs (docs/fetching.md).
FETCH_ONLY = {"crossformer/fetch.py": {"filelock", "tqdm"}}


def _tops(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name.split(".")[0] for a in node.names}
    if isinstance(node, ast.ImportFrom) and not node.level:
        return {(node.module or "").split(".")[0]}
    return set()


def test_crossformer_imports_only_torch_numpy_and_the_standard_library() -> None:
    allowed = {"torch", "numpy", "crossformer"} | set(sys.stdlib_module_names)
    for p in (ROOT / "crossformer").rglob("*.py"):
        rel = p.relative_to(ROOT).as_posix()
        tree = ast.parse(p.read_text(encoding="utf-8"))
        top_level = {id(n) for n in ast.iter_child_nodes(tree)} | {
            id(c) for n in ast.iter_child_nodes(tree) if isinstance(n, (ast.If, ast.Try))
            for c in ast.walk(n)}
        for node in ast.walk(tree):
            extra = {**CLI_ONLY, **FETCH_ONLY}.get(rel, set()) if id(node) not in top_level else set()
            assert _tops(node) <= allowed | extra, f"{rel} imports {_tops(node) - allowed}"


def test_no_test_module_imports_another() -> None:
    for p in (ROOT / "tests").glob("*.py"):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith("test_") for n in names), f"{p.name} imports {names}"
