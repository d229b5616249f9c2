"""docs/dev/extending.md, "Add a metric", followed once: one new file in eval/muse/."""

import numpy as np
import pytest

from eval.muse import METRICS, SuiteSettings, evaluate_models, metrics
from lethe.lm import LM
from tests.plugins import module_in_package

TOY = '''
"""Mean per-token NLL of the forget texts (a toy metric)."""

import numpy as np

from eval.muse.registry import MetricContext, Split, register_metric
from eval.stats import mean_score


@register_metric("toy_nll_f", title="ToyNLL_f", criterion="toy: forget-text surprise",
                 direction="up", splits=(Split("privleak", "forget", ("text",)),))
def _toy_nll_f(ctx: MetricContext):
    texts = ctx.tables["privleak/forget"]["text"]
    lps = ctx.lm.token_logprobs(texts, ctx.settings.batch_size)
    return mean_score([-float(np.mean(lp)) for lp in lps], n_resamples=ctx.settings.n_resamples,
                      seed=ctx.settings.seed)
'''


def test_one_file_adds_a_metric(tmp_path, world_dir, world, random_model, tokenizer):
    settings = SuiteSettings(batch_size=4, n_resamples=200, limit=3, progress=False)
    shipped = set(metrics())  # every shipped package (eval.muse, eval.tofu) before the snapshot
    with module_in_package("eval.muse", "toy_nll", TOY, tmp_path, (METRICS,)):
        assert metrics()["toy_nll_f"].column == "ToyNLL_f ↑"
        res = evaluate_models([("random", random_model, tokenizer, {})], str(world_dir),
                              "toy_nll_f", settings=settings)
    texts = [r["text"] for r in world["privleak"]["forget"][:3]]
    by_hand = [-float(np.mean(lp)) for lp in LM(random_model, tokenizer).token_logprobs(texts)]
    score = res["models"][0]["scores"]["toy_nll_f"]
    assert score["value"] == pytest.approx(np.mean(by_hand), rel=1e-5)
    assert "toy_nll_f" not in metrics() and set(metrics()) == shipped
