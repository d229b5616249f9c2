"""The suite end to end on the tiny world: signs, batching equality, results structure."""

import json

import pytest

from eval.muse import ModelEntry, SuiteSettings, evaluate_models, metrics, resolve_metrics
from lethe.errors import LetheError

# short generations and few resamples keep this file fast; the definitions are pinned
# elsewhere (test_muse_metrics.py)
FAST = dict(verbmem_max_new_tokens=24, knowmem_max_new_tokens=8, n_resamples=500, limit=4,
            progress=False)


@pytest.fixture(scope="module")
def suite_results(world_dir, tokenizer, target_model, retrain_model, random_model):
    return evaluate_models([("target", target_model, tokenizer, {"spec": "memorised"}),
                            ("random", random_model, tokenizer, {"spec": "random"})],
                           str(world_dir), retrain=("retrain", retrain_model, tokenizer, {}),
                           settings=SuiteSettings(batch_size=8, **FAST))


def test_privleak_signs_and_headline_numbers(suite_results):
    rows = {m["label"]: m for m in suite_results["models"]}
    assert [m["label"] for m in suite_results["models"]] == ["target", "random", "retrain"]
    target, retrain = rows["target"]["scores"], rows["retrain"]["scores"]
    assert retrain["privleak"]["value"] == 0.0  # by construction
    assert target["privleak"]["meta"]["auc"] < 0.1  # memorised: forget texts unsurprising
    assert target["privleak"]["value"] < -80  # near -100
    assert suite_results["retrain_reference"]["source"] == "model:retrain"
    assert suite_results["retrain_reference"]["auc"] == retrain["privleak"]["meta"]["auc"]
    assert set(target["privleak"]["meta"]["attacks"]) == {"loss", "zlib", "lowercase", "min_k",
                                                          "min_k_pp"}
    # the memorised model reproduces its forget documents better than the retrain model
    assert target["verbmem_f"]["value"] > retrain["verbmem_f"]["value"] + 10
    for row in suite_results["models"]:
        for name, s in row["scores"].items():
            assert s["ci_low"] <= s["value"] + 1e-9 and s["value"] <= s["ci_high"] + 1e-9, name


def test_results_record_everything(suite_results, world_dir):
    r = json.loads(json.dumps(suite_results))  # JSON-serialisable as is
    assert r["complete"] and r["seed"] == 0 and r["metrics"] == list(("verbmem_f", "knowmem_f",
                                                                      "privleak", "knowmem_r"))
    assert r["data"]["source"] == str(world_dir.resolve())
    assert r["data"]["tables"]["verbmem/forget"] == {
        "rows": 8, "rows_used": 4, "sha256_16": r["data"]["tables"]["verbmem/forget"]["sha256_16"]}
    assert r["data"]["tables"]["knowmem/forget_qa_icl"]["rows_used"] == 10  # --limit spares ICL
    assert {"torch", "transformers", "rouge-score", "scikit-learn"} <= set(r["versions"])
    target = r["models"][0]
    assert target["identity"] == {"spec": "memorised"}
    vm = target["scores"]["verbmem_f"]
    assert len(vm["per_example"]) == 4 and len(vm["meta"]["outputs"]) == 4
    assert r["criteria"]["privleak"]["column"] == "PrivLeak →0"


def test_batched_equals_per_example(suite_results, world_dir, tokenizer, target_model,
                                    retrain_model, random_model):
    one = evaluate_models([("target", target_model, tokenizer, {}),
                           ("random", random_model, tokenizer, {})], str(world_dir),
                          retrain=("retrain", retrain_model, tokenizer, {}),
                          settings=SuiteSettings(batch_size=1, **FAST))
    for a, b in zip(one["models"], suite_results["models"]):
        for name in a["scores"]:
            sa, sb = a["scores"][name], b["scores"][name]
            assert sa["value"] == pytest.approx(sb["value"], abs=1e-9), (a["label"], name)
            pa, pb = sa["per_example"], sb["per_example"]
            if isinstance(pa, dict):  # privleak: {"forget": [...], "holdout": [...]}
                assert pa.keys() == pb.keys()
                pa, pb = sum(pa.values(), []), sum(pb.values(), [])
            assert pa == pytest.approx(pb, abs=1e-6)
            assert sa["meta"].get("outputs") == sb["meta"].get("outputs")


def test_lazy_entries_protocol_and_written_report(tmp_path, world_dir, tokenizer, target_model,
                                                  random_model):
    loaded = []

    def loader(m):
        def load():
            loaded.append(m)
            return m, tokenizer
        return load

    entries = [ModelEntry("req1", loader=loader(target_model)),
               ModelEntry("req2", loader=loader(random_model))]
    r = evaluate_models(entries, str(world_dir), "knowmem_r", protocol="sust",
                        settings=SuiteSettings(**FAST), out_dir=tmp_path)
    assert loaded == [target_model, random_model]
    steps = r["protocol"]["steps"]
    assert [s["split"] for s in steps] == ["sust/forget_1", "sust/forget_2"]
    assert steps[1]["n_words_cumulative"] == steps[0]["n_words"] + steps[1]["n_words"]
    assert {p.name for p in tmp_path.iterdir()} >= {"results.json", "results.md", "results.png"}
    md = (tmp_path / "results.md").read_text()
    assert "| model | role | step | KnowMem_r ↑ |" in md and "sust/forget_2" in md
    with pytest.raises(LetheError, match="forget_5"):
        evaluate_models([ModelEntry(f"r{i}", target_model, tokenizer) for i in range(5)],
                        str(world_dir), "knowmem_r", protocol="sust",
                        settings=SuiteSettings(**FAST))


def test_registry_and_metric_selection():
    assert isinstance(metrics(), dict)
    from eval.muse.registry import benchmarks
    from eval.tofu.metrics import UTILITY

    muse = {"verbmem_f", "knowmem_f", "privleak", "knowmem_r"}
    assert set(benchmarks()["muse"]) == muse
    # MUSE's four, TOFU's seven and model utility's nine components, whatever ran before
    assert set(metrics()) == muse | set(benchmarks()["tofu"]) | set(UTILITY)
    assert len(metrics()) == 4 + 7 + 9
    assert resolve_metrics(None, have_reference=True) == ["verbmem_f", "knowmem_f", "privleak",
                                                          "knowmem_r"]
    assert "privleak" not in resolve_metrics(None, have_reference=False)
    assert resolve_metrics("knowmem_r, verbmem_f", have_reference=False) == ["knowmem_r",
                                                                             "verbmem_f"]
    with pytest.raises(LetheError, match="valid metrics: exact_mem, extraction_strength, "
                                         "forget_quality, knowmem_f, knowmem_r, model_utility, "
                                         "privleak, prob_f, .*, verbmem_f$"):
        resolve_metrics("verbmen,knowmem_f", have_reference=True)
    with pytest.raises(LetheError, match="retrain"):
        resolve_metrics("privleak", have_reference=False)


def test_api_input_errors(world_dir, tokenizer, random_model):
    m = ("a", random_model, tokenizer, {})
    with pytest.raises(LetheError, match="not both"):
        evaluate_models([m], str(world_dir), retrain=("r", random_model, tokenizer, {}),
                        retrain_auc=0.5)
    with pytest.raises(LetheError, match="unique"):
        evaluate_models([m, m], str(world_dir), "knowmem_r")
    with pytest.raises(LetheError, match=r"\(0, 1\]"):
        evaluate_models([m], str(world_dir), retrain_auc=1.2)


def test_verbmem_alias_names_the_forget_metric():
    from eval.muse.suite import resolve_metrics

    assert resolve_metrics("verbmem,knowmem_r", have_reference=False) == ["verbmem_f",
                                                                          "knowmem_r"]
