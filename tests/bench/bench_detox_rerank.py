"""Which reranking turns the SFT rewriter + deletion into the best default? Offline analysis.

    python tests/bench/bench_detox_rerank.py runs/bench/detox_heldout/sft.jsonl \
        [more system outputs whose rewrites join the candidates ...]

For each input of the held-out slice (the rows of the given `detox rewrite` outputs, same ids)
the candidates are: every given system's rewrite, each of them with its profanity-flagged words
deleted, and the delete baseline (the input minus its flagged words). Every candidate is scored
once (STA soft and binary under alt-profanity-check and under the shipped classifier, MiniLM
SIM to the input, SmolLM2 FL, chrF vs the references); then each ranking rule - a product of
some of sta, sta_clf, sim, fl - picks one candidate per row, and the picks are scored as
`detox eval` does (J = mean STA_bin * SIM * chrF, J_clf with the classifier's STA_bin).
The same rule is what `rewriter: {name: best_of_n, deletion: [...], rerank: [...]}` does
online; this only saves regenerating the candidates per rule. Prints a Markdown table.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(paths: list[str]) -> None:
    from detox.rewrite.baselines import DeleteConfig
    from detox.rewrite.rewriters import Item
    from eval.detox.joint import chrf
    from eval.detox.scorers import Scorers, ScorersConfig
    from lethe.report import markdown_table

    systems = [[json.loads(x) for x in Path(p).open()] for p in paths]
    rows = systems[0]
    delete = DeleteConfig().build()
    cands, fixed = [], {"first system": [], "delete": []}
    for i, r in enumerate(rows):
        own = [s[i]["rewrite"] for s in systems]
        cleaned = [x.text for x in delete.rewrite([Item(t) for t in own + [r["text"]]])]
        group = list(dict.fromkeys([c for c in own + cleaned if c.strip()] or [""]))
        cands.append(group)
        fixed["first system"].append(group.index(own[0]) if own[0] in group else 0)
        fixed["delete"].append(group.index(cleaned[-1]) if cleaned[-1] in group else 0)
    flat = [c for g in cands for c in g]
    src = [r["text"] for r, g in zip(rows, cands) for _ in g]
    refs = [r["references"] for r, g in zip(rows, cands) for _ in g]
    sc = Scorers.from_config(ScorersConfig())
    p_tox = sc.sta.toxic_prob(flat)
    p_clf = sc.sta_clf.toxic_prob(flat)
    comp = {"sta": [1 - p for p in p_tox], "sta_clf": [1 - p for p in p_clf],
            "sim": sc.sim.score(flat, src), "fl": sc.fl.score(flat)}
    ch = [chrf(c, rf) for c, rf in zip(flat, refs)]
    table = []
    for k in range(1, 5):
        for rule in itertools.combinations(("sta", "sta_clf", "sim", "fl"), k):
            table.append([" * ".join(rule), *score_rule(rule, cands, comp, p_tox, p_clf, ch)])
    for name, pos in fixed.items():
        table.append([name, *score_fixed(pos, cands, comp, p_tox, p_clf, ch)])
    print(markdown_table(["rule", "STA_bin", "STA_bin_clf", "SIM", "FL", "chrF", "J", "J_clf"],
                         table, digits=3))


def _pick_stats(picks, comp, p_tox, p_clf, ch):
    n = len(picks)
    sb = [float(p_tox[j] < 0.5) for j in picks]
    sc = [float(p_clf[j] < 0.5) for j in picks]
    sim = [comp["sim"][j] for j in picks]
    return [sum(sb) / n, sum(sc) / n, sum(sim) / n, sum(comp["fl"][j] for j in picks) / n,
            sum(ch[j] for j in picks) / n,
            sum(a * b * ch[j] for a, b, j in zip(sb, sim, picks)) / n,
            sum(a * b * ch[j] for a, b, j in zip(sc, sim, picks)) / n]


def score_rule(rule, cands, comp, p_tox, p_clf, ch):
    picks, start = [], 0
    for g in cands:
        idx = range(start, start + len(g))
        picks.append(max(idx, key=lambda j: math.prod(comp[c][j] for c in rule)))
        start += len(g)
    return _pick_stats(picks, comp, p_tox, p_clf, ch)


def score_fixed(pos, cands, comp, p_tox, p_clf, ch):
    picks, start = [], 0
    for g, p in zip(cands, pos):
        picks.append(start + p)
        start += len(g)
    return _pick_stats(picks, comp, p_tox, p_clf, ch)


if __name__ == "__main__":
    main(sys.argv[1:])
