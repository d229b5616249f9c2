"""scripts/attack_table.py: one Markdown row per model from `unlearn attack` reports."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def report(path: Path, successes: list[bool], p_true: float) -> str:
    path.mkdir(parents=True)
    per_fact = [{"case_id": i, "success": s} for i, s in enumerate(successes)]
    (path / "results.json").write_text(json.dumps({
        "attacks": {"greedy": {"budget": 20, "success_rate": sum(successes) / len(successes)}},
        "per_fact": {"greedy": per_fact}, "editing": {"p_true_after": p_true}}))
    return str(path)


def test_one_row_per_model_with_intervals_or_the_spread_over_seeds(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("attack_table",
                                                  ROOT / "scripts" / "attack_table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    target = report(tmp_path / "t", [True] * 10, 0.9)
    seeds = [report(tmp_path / f"s{i}", [True] * k + [False] * (10 - k), p)
             for i, (k, p) in enumerate([(2, 0.1), (4, 0.3)])]
    table.main([f"target={target}", f"npo={','.join(seeds)}"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| model | greedy s@20 | p(true) |")
    # every fact extracted: the interval collapses onto 1; two seeds: mean 0.3, sd 0.141
    assert lines[2] == "| target | 1.000 [1.000, 1.000] | 0.900 | – | – | – |"
    assert lines[3] == "| npo | 0.300 ± 0.141 | 0.200 ± 0.141 | – | – | – |"
