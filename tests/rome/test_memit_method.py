"""`method: memit` through `unlearn run` on the tiny world: every forget fact in one batch,
written into exactly the down-projections of the chosen layers."""

import json

import torch

from tests.helpers import run_cli
from unlearn.cli import main
from unlearn.prepare import read_texts


def test_memit_method_edits_only_the_chosen_down_projections(tiny_prepared, tmp_path, capsys,
                                                             monkeypatch):
    from safetensors.torch import load_file

    root, overrides = tiny_prepared
    out = tmp_path / "memit"
    sets = [x for o in overrides + [f"output_dir={out}"] for x in ("--set", o)]
    method = ("method={name: memit, objective: fact_erasure, layers: [0], v_steps: 3, "
              "cov_config: raw, cov_split: retain1, cov_samples: 6, cov_ridge: 1.0e-3, "
              "update_weight: 1.0, context_lengths: []}")
    code, _, err = run_cli(main, ["run", "recipes/tiny.yaml", *sets, "--set", method,
                                  "--set", "data.forget={config: facts, split: forget, "
                                           "field: prompt}",
                                  "--set", "data.retain=null", "--no-eval"], capsys, monkeypatch)
    assert code == 0, err
    record = json.loads((out / "ledger.json").read_text())["requests"][0]
    n = len(read_texts(str(root / "world"), "facts", "forget", "prompt"))
    assert record["edited_facts"] == n and record["edit"]["n_facts"] == n
    assert record["edit"]["layers"] == [0] and len(record["edit"]["per_layer"]) == 2
    before = load_file(root / "models" / "target" / "model.safetensors")
    after = load_file(out / "model" / "model.safetensors")
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == ["model.layers.0.mlp.down_proj.weight"]  # layer 1 is the last of 2
