"""Structure rules a newcomer relies on (docs/architecture.md draws them):

* no import cycle among the project's modules (module-level and function-level imports alike);
* the layers: ``crossformer`` imports neither ``viz`` nor ``pages``, ``viz`` imports no ``pages`` (so no cycle
  between packages either);
* ``crossformer/`` imports only torch, NumPy and the standard library (a few named, function-level exceptions);
  ``crossformer/analysis`` loads no torch, and ``viz`` loads no torch, captum or Streamlit;
* no function under ``viz/`` or ``pages/`` derives numbers from a trace: the NumPy reductions and transforms
  that would do it appear there only in the drawing decisions listed in :data:`DRAWING_ONLY`;
* no test module imports another test module (shared cases live in helper modules).
"""

from __future__ import annotations

import ast
import subprocess
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


#: Imports allowed inside functions only: the statistics CLI's file I/O (decoding images, progress) and captum
#: inside the attribution functions.
CLI_ONLY = {"crossformer/stats.py": {"PIL", "pyarrow"}, "crossformer/stats_cli.py": {"tqdm"},
            "crossformer/images.py": {"PIL"}, "crossformer/attribution.py": {"captum"}}
#: … and the downloader's lock and progress bar, imported when a download runs (docs/fetching.md).
FETCH_ONLY = {"crossformer/fetch.py": {"tqdm"}, "crossformer/fetch_cache.py": {"filelock"}}


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


#: Which package may import which: the model layer at the bottom, figures above it, pages on top.
LAYERS = {"crossformer": set(), "viz": {"crossformer"}, "pages": {"crossformer", "viz"},
          "app": {"crossformer", "viz", "pages"}}


def _against_layers(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    top = lambda m: m.split(".")[0]  # noqa: E731
    return sorted((m, d) for m, deps in graph.items() for d in deps if top(d) != top(m) and top(d) not in LAYERS[top(m)])


def test_packages_import_only_the_layers_below_them() -> None:
    mods = _modules()
    assert _against_layers({m: _imports(m, p, mods) for m, p in mods.items()}) == []
    # the rule bites: crossformer importing viz, or viz importing pages, is reported
    assert _against_layers({"crossformer.stats_cli": {"viz.export"}, "viz.style": {"pages.common.widgets"},
                            "pages.groups": {"viz.style"}}) == [("crossformer.stats_cli", "viz.export"),
                                                                ("viz.style", "pages.common.widgets")]


def _loaded_after(modules: list[str]) -> set[str]:
    """Top-level packages in ``sys.modules`` after a fresh interpreter imports ``modules``."""
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(' '.join(sorted({n.split('.')[0] for n in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_analysis_loads_no_torch_and_figures_no_torch_captum_or_streamlit() -> None:
    mods = sorted(_modules())
    analysis = [m for m in mods if m.startswith("crossformer.analysis")]
    figures = [m for m in mods if m.startswith("viz")]
    assert len(analysis) > 5 and len(figures) > 5
    assert _loaded_after(analysis) & {"torch", "streamlit", "plotly", "matplotlib", "viz", "pages"} == set()
    assert _loaded_after(figures) & {"torch", "captum", "streamlit", "pages"} == set()
    assert "torch" in _loaded_after(["crossformer.model"])          # the check sees torch when it is loaded


#: NumPy calls that derive numbers (reductions, transforms, searches).
DERIVING = {"log", "log2", "log10", "log1p", "exp", "einsum", "linalg", "cumsum", "cumprod", "matmul", "dot",
            "std", "var", "nanstd", "nanvar", "argsort", "argmax", "argmin", "nanargmax", "mean", "nanmean", "sum",
            "nansum", "histogram", "percentile", "nanpercentile", "quantile", "median", "nanmedian",
            "unravel_index", "ptp", "bincount", "softmax", "entropy"}
#: The drawing decisions in viz/ that use them — a colour or axis range, a colour choice, a label — each with
#: its reason (file, function).
DRAWING_ONLY = {
    ("viz/attribution_figures.py", "attribution_overlay_figure"): "the colour range clips at a percentile",
    ("viz/dpb_figures.py", "dpb_surface_figure"): "the height axis is centred on the surface's mean",
    ("viz/parity_figures.py", "parity_figure"): "the tolerance line sits at log10(tol) on a log axis",
    ("viz/style.py", "group_colors"): "a group takes the least used colour",
    ("viz/embedding_figures.py", "layer_name"): "the title names the stage a merge follows (log2 of its stride / 4)",
    ("viz/geometry_figures.py", "side"): "the zoom box's side: the extent of the SDA window and the LDA group",
    ("viz/schemes_figures.py", "cost_figure"): "a log axis's range is given in log10 units",
}


def _deriving_calls(tree: ast.AST) -> list[tuple[str, int, str]]:
    """``(function, line, name)`` of every ``np.<DERIVING>(…)``, ``<array>.<DERIVING>(…)`` and ``a @ b``."""
    found: list[tuple[str, int, str]] = []

    def visit(node: ast.AST, func: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) and child.func.attr in DERIVING:
                found.append((name, child.lineno, child.func.attr))
            elif isinstance(child, ast.BinOp) and isinstance(child.op, ast.MatMult):
                found.append((name, child.lineno, "@"))
            visit(child, name)

    visit(tree, "<module>")
    return found


def test_viz_and_pages_derive_no_numbers() -> None:
    files = [ROOT / "app.py", *sorted((ROOT / "viz").rglob("*.py")), *sorted((ROOT / "pages").rglob("*.py"))]
    bad, used = [], set()
    for p in files:
        rel = p.relative_to(ROOT).as_posix()
        for func, line, name in _deriving_calls(ast.parse(p.read_text(encoding="utf-8"))):
            if (rel, func) in DRAWING_ONLY:
                used.add((rel, func))
            else:
                bad.append(f"{rel}:{line} {func}() calls {name}")
    assert bad == [], "numbers derived outside crossformer/analysis: " + "; ".join(bad)
    assert used == set(DRAWING_ONLY), f"stale DRAWING_ONLY entries: {set(DRAWING_ONLY) - used}"
    # the scan finds the forms it looks for
    probe = ast.parse("def f(a, b):\n    x = np.log(a).sum()\n    return a @ b, a.argmax()\n")
    assert [n for _, _, n in _deriving_calls(probe)] == ["sum", "log", "@", "argmax"]
