"""The house rules on imports (docs/dev/map.md), checked by parsing every module, not importing it.

- Floors: `lethe` imports none of the project's packages; `eval` only `lethe`; `unlearn` and
  `detox` only `lethe` and `eval` (and themselves); `detox.rewrite` never imports
  `detox.train`; `unlearn.methods`, `unlearn.rome` and `unlearn.memit` never import the
  pipeline, `unlearn.memit` never imports `unlearn.methods`, `unlearn.rome` never imports
  `unlearn.memit`; nothing but a package's `cli` modules and its `__main__` imports its `cli`
  modules.
- No import cycle among the project's modules.
- Every import counts, at module level or inside a function (a lazy import is still a
  dependency: it only moves the failure to run time). An import names the module it reads
  (`from a.b import c` reads `a.b.c` when that is a module, else `a.b`); the parent packages
  Python initialises on the way are not edges (a package's `__init__` importing its own
  modules would otherwise be a cycle with each of them).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lethe", "eval", "unlearn", "detox")
# package -> the packages it may import (besides itself)
FLOORS = {"lethe": set(), "eval": {"lethe"}, "unlearn": {"lethe", "eval"},
          "detox": {"lethe", "eval"}}
# (importer prefix, forbidden prefix): rules inside a package (besides "only cli/ and the
# package's __main__ import cli/")
INNER = [("detox.rewrite", "detox.train"), ("unlearn.methods", "unlearn.pipeline"),
         ("unlearn.rome", "unlearn.pipeline"), ("unlearn.memit", "unlearn.pipeline"),
         ("unlearn.memit", "unlearn.methods"), ("unlearn.rome", "unlearn.memit")]


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path = ROOT, packages=PACKAGES) -> dict[str, Path]:
    return {module_name(p, root): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}


def imports(path: Path, modules) -> set[str]:
    """The project modules `path` imports anywhere in it (module level or in a function)."""

    def resolve(name: str):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(resolve(a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.update(resolve(f"{node.module}.{a.name}") for a in node.names)
    out.discard(None)
    return out


def import_graph(root: Path = ROOT, packages=PACKAGES) -> dict[str, set[str]]:
    modules = project_modules(root, packages)
    return {m: imports(p, modules) - {m} for m, p in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a cycle."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def upward(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(graph.items()):
        top = module.split(".")[0]
        for target in sorted(targets):
            other = target.split(".")[0]
            if other != top and other not in FLOORS[top]:
                bad.append(f"{module} imports {target} ({top} may import "
                           f"{', '.join(sorted(FLOORS[top])) or 'no project package'})")
            cli = f"{other}.cli"  # the commands (lethe.cli is the plumbing they share)
            entry = _under(module, cli) or module == f"{other}.__main__"
            if other != "lethe" and _under(target, cli) and not entry:
                bad.append(f"{module} imports {target} (only {cli} and {other}.__main__ may)")
            for src, forbidden in INNER:
                if _under(module, src) and _under(target, forbidden):
                    bad.append(f"{module} imports {target} ({src} must not import {forbidden})")
    return bad


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_nothing_imports_upward():
    assert not upward(import_graph())


def test_no_import_cycle():
    assert not cycles(import_graph())


def test_every_module_is_seen():
    graph = import_graph()
    assert {"lethe.lm", "eval.muse.suite", "unlearn.pipeline", "detox.train.rl",
            "detox.rewrite.fewshot"} <= set(graph)
    assert "lethe.lm" in graph["eval.muse.suite"] and "lethe.lens" in graph["unlearn.rome.values"]


@pytest.fixture
def toy(tmp_path):
    """A tiny project: a <- b (function-level import), b <- a.c, plus an upward import."""
    for pkg in ("lethe", "eval"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "lethe" / "a.py").write_text("def f():\n    from lethe.b import g\n")
    (tmp_path / "lethe" / "b.py").write_text("from lethe import a\nimport eval.x\n")
    (tmp_path / "eval" / "x.py").write_text("import os\nfrom lethe.a import f\n")
    return import_graph(tmp_path, ("lethe", "eval"))


def test_the_checks_see_lazy_cycles_and_upward_imports(toy):
    assert toy["lethe.a"] == {"lethe.b"} and toy["lethe.b"] == {"lethe.a", "eval.x"}
    assert toy["eval.x"] == {"lethe.a"}
    assert ["eval.x", "lethe.a", "lethe.b"] in cycles(toy)
    assert upward(toy) == ["lethe.b imports eval.x (lethe may import no project package)"]


def test_no_bare_import_eval():
    offenders = []
    for package in ("lethe", "unlearn", "detox", "eval", "tests"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import) and any(a.name == "eval" for a in node.names):
                    offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders
