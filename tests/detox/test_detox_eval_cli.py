"""`detox eval`: reports, references (by id, by text, per line), metric choice, errors."""

import csv
import json

import pytest
from click.testing import CliRunner

from detox.cli import cli
from lethe.errors import LetheError

ROWS = [  # text, rewrite, reference
    ("you fucking idiot", "you are wrong", "you are wrong"),
    ("alpha beta gamma delta", "alpha beta gamma delta", "alpha beta gamma delta"),
]


def cheap(tiny_llama):
    return ["--set", "scorers.sim.model=hashing:4096", "--set", f"scorers.fl.model={tiny_llama}",
            "--set", "scorers.fl.device=cpu", "--set", "scorers.sta_clf.name=profanity"]


def write_out(path, with_refs=False):
    with path.open("w") as fh:
        for i, (text, rewrite, ref) in enumerate(ROWS):
            obj = {"id": i, "text": text, "rewrite": rewrite}
            if with_refs:
                obj["references"] = [ref]
            fh.write(json.dumps(obj) + "\n")
    return path


def test_eval_with_paradetox_references_by_text(tmp_path, tiny_llama):
    out = write_out(tmp_path / "out.jsonl")
    refs = tmp_path / "refs.tsv"
    with refs.open("w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t")
        w.writerow(["toxic", "neutral1", "neutral2", "neutral3"])
        for text, _, ref in reversed(ROWS):  # other order: matched by text
            w.writerow([text, ref, "", ""])
    res = CliRunner().invoke(cli, ["eval", str(out), "--references", str(refs), "--per-example",
                                   *cheap(tiny_llama)])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "out.eval" / "results.json").read_text())
    m = report["metrics"]
    # hashing SIM: {you, fucking, idiot} vs {you, are, wrong} = 1/3; identical = 1.
    # Both rewrites equal their reference (chrF 1) and are non-toxic (STA_bin 1).
    assert m["sim"] == pytest.approx((1 / 3 + 1) / 2)
    assert m["chrf"] == pytest.approx(1.0) and m["sta_bin"] == 1.0
    assert m["j_bin_chrf"] == pytest.approx((1 / 3 + 1) / 2)
    assert m["bleu"] == pytest.approx(1.0) and m["rouge_l"] == pytest.approx(1.0)
    assert set(m) == {"sta", "sta_bin", "sta_clf", "sta_bin_clf", "sim", "fl", "j_paradetox",
                      "refusal", "chrf", "chrf_corpus", "bleu", "rouge_l", "j_clef2024",
                      "j_bin_chrf", "j_clf"}
    assert m["refusal"] == 0.0 and m["j_clf"] == pytest.approx(m["j_bin_chrf"])
    assert report["n"] == 2 and report["scorers"]["sim"]["model"] == "hashing:4096"
    md = (tmp_path / "out.eval" / "results.md").read_text()
    assert "| j_bin_chrf | 0.667 |" in md
    per = [json.loads(x) for x in (tmp_path / "out.eval" / "per_example.jsonl").read_text()
           .splitlines()]
    assert [p["id"] for p in per] == [0, 1] and per[0]["sim"] == pytest.approx(1 / 3)
    assert "| sim | 0.667 |" in res.stdout


def test_eval_references_per_line_and_by_id(tmp_path, tiny_llama):
    out = write_out(tmp_path / "out.jsonl", with_refs=True)
    res = CliRunner().invoke(cli, ["eval", str(out), "--metrics", "chrf,j_bin_chrf",
                                   "--report-dir", str(tmp_path / "r"), *cheap(tiny_llama)])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "r" / "results.json").read_text())["metrics"]
    assert m == pytest.approx({"chrf": 1.0, "j_bin_chrf": (1 / 3 + 1) / 2})
    refs = tmp_path / "refs.jsonl"
    refs.write_text('{"id": 1, "references": ["alpha beta"]}\n{"id": 0, "reference": "you are"}\n')
    plain = write_out(tmp_path / "plain.jsonl")
    res = CliRunner().invoke(cli, ["eval", str(plain), "--references", str(refs),
                                   "--metrics", "chrf", *cheap(tiny_llama)])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "plain.eval" / "results.json").read_text())["metrics"]
    from eval.detox.joint import chrf
    assert m["chrf"] == pytest.approx((chrf("you are wrong", ["you are"])
                                       + chrf("alpha beta gamma delta", ["alpha beta"])) / 2)


def test_eval_errors(tmp_path, tiny_llama):
    out = write_out(tmp_path / "out.jsonl")
    runner = CliRunner()
    res = runner.invoke(cli, ["eval", str(out), "--metrics", "chrf"])
    assert isinstance(res.exception, LetheError) and "needs references" in str(res.exception)
    res = runner.invoke(cli, ["eval", str(out), "--metrics", "stta"])
    assert "did you mean 'sta'" in str(res.exception)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "text": "x"}\n')
    res = runner.invoke(cli, ["eval", str(bad)])
    assert "line 1: missing 'rewrite'" in str(res.exception)
    res = runner.invoke(cli, ["eval", str(out), "--list-metrics"])
    assert res.exit_code == 0 and "j_paradetox" in res.output
