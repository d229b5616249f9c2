"""eval/ never imports unlearn or detox (parsed, not imported)."""

import ast
from pathlib import Path

EVAL = Path(__file__).resolve().parents[2] / "eval"


def imported_modules(path: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            mods.add(node.module)
    return mods


def test_eval_does_not_import_unlearn_or_detox():
    files = sorted(EVAL.rglob("*.py"))
    assert any(f.name == "suite.py" for f in files)
    bad = {f"{f.relative_to(EVAL.parent)}: {m}" for f in files for m in imported_modules(f)
           if m.split(".")[0] in ("unlearn", "detox")}
    assert not bad, sorted(bad)


def test_the_parser_sees_imports(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def g():\n    from unlearn.world import x\nimport detox.cli as d\n")
    assert imported_modules(f) == {"unlearn.world", "detox.cli"}
