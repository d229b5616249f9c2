"""Baselines (copy, delete), the refusal detector, the embedding-head classifier and
`detox eval --baselines`: the rows every report carries."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from detox.cli import cli
from detox.rewrite.baselines import CopyConfig, DeleteConfig, delete_words
from detox.rewrite.rewriters import Item
from eval.detox.refusal import is_refusal, refusals


class WordList:
    """An STA scorer flagging a fixed word list (P(toxic) 1 for them, 0 otherwise)."""

    threshold = 0.5

    def __init__(self, words):
        self.words = set(words)
        self.calls = []

    def toxic_prob(self, texts):
        self.calls.append(list(texts))
        return [1.0 if t.lower() in self.words else 0.0 for t in texts]


def test_delete_drops_flagged_words_and_keeps_punctuation_and_case():
    assert delete_words("You are a FUCKING idiot, mate!", {"FUCKING", "idiot"}) == \
        "You are a, mate!"
    assert delete_words("what the hell!", {"hell"}) == "what the!"
    assert delete_words("Damn, this is   bad", {"Damn"}) == "this is   bad"
    assert delete_words('he said "shit" twice', {"shit"}) == 'he said "" twice'
    assert delete_words("all clean here .", {"shit"}) == "all clean here ."
    from detox.rewrite.baselines import Delete

    scorer = WordList({"idiot", "damn"})
    out = Delete(scorer).rewrite([Item("you idiot"), Item("Damn it, you idiot!"), Item("fine")])
    assert [r.text for r in out] == ["you", "it, you!", "fine"]
    # one scorer call over the distinct words of the whole window
    assert len(scorer.calls) == 1 and sorted(scorer.calls[0]) == sorted(
        {"you", "idiot", "Damn", "it", "fine"})


def test_copy_and_delete_are_rewriters_with_the_profanity_scorer_by_default():
    items = [Item("this is fucking great"), Item("a calm sentence")]
    assert [r.text for r in CopyConfig().build().rewrite(items)] == [it.text for it in items]
    cfg = DeleteConfig()
    assert cfg.scorer.name == "profanity" and cfg.baseline and CopyConfig.baseline
    assert [r.text for r in cfg.build().rewrite(items)] == ["this is great", "a calm sentence"]


def test_refusal_detector():
    assert is_refusal("I'm sorry, but I can't help with that.", "you idiot")
    assert is_refusal("I’m not sure what you’re trying to say.", "shut up")
    assert is_refusal("As an AI, I cannot rewrite this message.", "go to hell")
    assert not is_refusal("You are wrong about this.", "you are a fucking idiot")
    # an apology the source already makes is kept, not a refusal
    assert not is_refusal("I'm sorry, but you are wrong.", "I'm sorry but you are a moron")
    assert refusals(["I apologize for that.", "fine"], ["x", "y"]) == [1.0, 0.0]


def hashing_head(path, words=("idiot", "stupid", "fucking", "moron"), dim=256):
    """An embedding head on hashing:DIM whose toxic logit is high for texts with `words`."""
    from eval.detox.head import save_head
    from eval.detox.similarity import HashingEmbedder

    emb = HashingEmbedder(dim)
    w = np.zeros((2, dim), np.float32)
    for word in words:
        w[1, emb.bucket(word)] = 20.0
    save_head(path, w, np.array([0.0, -3.0], np.float32), f"hashing:{dim}", ["neutral", "toxic"])
    return str(path)


def test_embedding_head_is_a_classifier_sta_scorer(tmp_path):
    from eval.detox.registry import create, scorer_configs

    head = hashing_head(tmp_path / "head")
    sta = create(scorer_configs("sta")["classifier"](model=head, toxic_label="toxic"))
    p = sta.toxic_prob(["you idiot", "a nice day"])
    # "you idiot": 2 words, normalised vector 1/sqrt(2) per bucket -> logit 20/sqrt(2) - 3
    assert p[0] == pytest.approx(1 / (1 + np.exp(-(20 / np.sqrt(2) - 3))), rel=1e-5)
    assert p[1] == pytest.approx(1 / (1 + np.exp(3)), rel=1e-5)
    assert sta.score(["a nice day"]) == pytest.approx([1 - p[1]], rel=1e-5)
    delete = DeleteConfig(scorer=scorer_configs("sta")["classifier"](model=head)).build()
    assert delete.rewrite([Item("you stupid moron, go")])[0].text == "you, go"


def write_outputs(path, rows):
    path.write_text("".join(json.dumps({"id": i, "text": t, "rewrite": r, "references": [ref]})
                            + "\n" for i, (t, r, ref) in enumerate(rows)))
    return path


def test_eval_reports_baselines_as_rows_with_a_plot(tmp_path, tiny_llama):
    head = hashing_head(tmp_path / "head")
    out = write_outputs(tmp_path / "sys.jsonl", [
        ("you fucking idiot", "you are wrong", "you are wrong"),
        ("what a stupid plan", "what a bad plan", "what a bad plan"),
        ("hello there", "I'm sorry, but I can't help with that.", "hello there")])
    res = CliRunner().invoke(cli, [
        "eval", str(out), "--baselines", "copy,delete",
        "--metrics", "sta_bin,sta_bin_clf,sim,chrf,j_bin_chrf,j_clf,refusal",
        "--set", "scorers.sim.model=hashing:4096", "--set", f"scorers.sta_clf.model={head}"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "sys.eval" / "results.json").read_text())
    main, base = report["metrics"], report["baselines"]
    assert set(base) == {"copy", "delete"}
    assert main["refusal"] == pytest.approx(1 / 3) and base["copy"]["refusal"] == 0
    # copy keeps every insult: both STA scorers flag the two toxic rows; hello passes
    assert base["copy"]["sta_bin"] == pytest.approx(1 / 3)
    assert base["copy"]["sta_bin_clf"] == pytest.approx(1 / 3)
    assert base["copy"]["sim"] == pytest.approx(1.0)
    # delete ("you", "what a plan", "hello there") passes both scorers
    assert base["delete"]["sta_bin"] == base["delete"]["sta_bin_clf"] == 1.0
    diff = report["beats_baselines"]["delete"]["j_bin_chrf"]
    assert diff == pytest.approx(main["j_bin_chrf"] - base["delete"]["j_bin_chrf"])
    md = (tmp_path / "sys.eval" / "results.md").read_text()
    assert "| system | sta_bin |" in md and "| delete |" in md and "| copy |" in md
    assert "j_bin_chrf" in md.split("Margin over the baselines")[1]
    assert (tmp_path / "sys.eval" / "results.png").stat().st_size > 1000


def test_eval_refuses_bad_baselines_and_an_incompatible_classifier(tmp_path):
    out = write_outputs(tmp_path / "sys.jsonl", [("you idiot", "you", "you")])
    res = CliRunner().invoke(cli, ["eval", str(out), "--baselines", "copy,delet"])
    assert res.exit_code != 0 and "unknown baseline 'delet' (did you mean 'delete'?)" \
        in str(res.exception)
    # a head whose label is not there, and one whose weights do not fit its labels
    from eval.detox.head import save_head

    save_head(tmp_path / "three", np.zeros((3, 8), np.float32), np.zeros(3, np.float32),
              "hashing:8", ["a", "b", "c"])
    (tmp_path / "broken").mkdir()
    meta = json.loads((tmp_path / "three" / "head.json").read_text())
    (tmp_path / "broken" / "head.json").write_text(json.dumps({**meta, "labels": ["x", "toxic"]}))
    import shutil

    shutil.copy(tmp_path / "three" / "head.safetensors", tmp_path / "broken")
    before = sorted(p.name for p in tmp_path.iterdir())
    for head, msg in ((tmp_path / "three", "has no label 'toxic'"),
                      (tmp_path / "broken", "do not fit 2 labels x dim 8")):
        res = CliRunner().invoke(cli, ["eval", str(out), "--metrics", "sta_clf",
                                       "--set", f"scorers.sta_clf.model={head}"])
        problems = getattr(res.exception, "problems", [str(res.exception)])
        assert len(problems) == 1 and msg in problems[0], res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no report written


def test_best_of_n_with_deletion_candidates(tiny_llama):
    """n = 0: the greedy rewrite, that rewrite minus its flagged words and the input minus
    them are the candidates; the highest product of the rerank scores wins."""
    from detox.rewrite.recipe import load_rewrite_recipe
    from detox.rewrite.rewriters import build_rewriter
    from eval.detox.scorers import Scorers

    recipe = load_rewrite_recipe(None, [
        "rewriter.base.adapter=null", f"rewriter.base.model={tiny_llama}",
        "rewriter.rerank=[sta, sim]", "generation.max_new_tokens=6",
        "scorers.sim.model=hashing:512"])
    assert recipe.rewriter.n == 0 and recipe.rewriter.deletion == ("input", "candidates")
    scorers = Scorers.from_config(recipe.scorers)
    bon = build_rewriter(recipe.rewriter, recipe, scorers)
    items = [Item("you fucking idiot, listen"), Item("a calm remark")]
    groups = bon.candidate_groups(items)
    greedy = bon.base.candidates(items)
    for item, g, gr in zip(items, groups, greedy):
        assert g[0] == gr[0]  # the greedy rewrite first (it wins ties)
    assert "you, listen" in groups[0] and "a calm remark" in groups[1]
    got = bon.rewrite(items)
    for item, g, r in zip(items, groups, got):
        sims = scorers.sim.score(g, [item.text] * len(g))
        rank = [a * b for a, b in zip(scorers.sta.score(g), sims)]
        assert r.text == g[rank.index(max(rank))]
    assert got[1].text == "a calm remark"  # the unchanged input: STA 1, SIM 1
