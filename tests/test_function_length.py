"""No function of the project is longer than 60 lines (the project's code rule), counted from
its `def` line to its last line (docstring and comments included, decorators not)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lethe", "eval", "unlearn", "detox")
LIMIT = 60


def long_functions(path: Path, limit: int = LIMIT) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > limit]


def test_no_function_over_60_lines():
    too_long = [f for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))
                for f in long_functions(p)]
    assert not too_long, "\n".join(too_long)


def test_the_count_starts_at_def_and_ends_at_the_last_line(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(59))
    ok = tmp_path / "ok.py"
    ok.write_text(f"@decorator\ndef f():\n{body}\n")  # def + 59 lines = 60
    assert long_functions(ok) == []
    bad = tmp_path / "bad.py"
    inner = "\n".join("    " + line for line in body.splitlines())
    bad.write_text(f"class C:\n    def g(self):\n{inner}\n        y = 1\n        return y\n")
    assert long_functions(bad) == [f"{bad}:2 g (62 lines)"]
