"""Import layering: eval never imports unlearn/detox; detox never imports unlearn's methods;
lethe (the core) imports none of them; nobody writes a bare `import eval`."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def files(package: str):
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package, forbidden", [
    ("eval", ("unlearn", "detox")),
    ("lethe", ("unlearn", "detox", "eval")),
    ("detox", ("unlearn.methods", "unlearn.rome", "unlearn.pipeline", "unlearn.prepare")),
])
def test_layering(package, forbidden):
    bad = []
    for path in files(package):
        for name in imported_modules(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad


def test_no_bare_import_eval():
    offenders = []
    for package in ("lethe", "unlearn", "detox", "eval", "tests"):
        for path in files(package):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import) and any(a.name == "eval" for a in node.names):
                    offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders
