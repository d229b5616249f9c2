"""C = E[k kᵀ] over corpus tokens, and its on-disk cache."""

import torch

import edit_toy
from unlearn.rome import EditConfig, edit_model, restore
from unlearn.rome import covariance as cov_mod
from unlearn.rome.keys import capture_input


def test_covariance_is_the_uncentred_second_moment_of_down_proj_inputs(tok):
    model = edit_toy.llama(tok)
    module = model.get_submodule("model.layers.1.mlp.down_proj")
    texts = ["Alva Brenn was born in Vessmark .", "the old town", "Kara Lund hails from Olbridge",
             "some year the new town was far ."]
    cfg = EditConfig(cov_batch_size=3, cov_dtype="float64")
    cov, n = cov_mod.compute_covariance(model, tok, module, texts, cfg)
    # by hand: one text at a time (no padding), every token's key
    keys = []
    for t in texts:
        with torch.no_grad(), capture_input(module) as store:
            model(input_ids=torch.tensor([tok(t)["input_ids"]]))
        keys.append(store["in"][0].double())
    k = torch.cat(keys)  # (N, d_ff)
    assert n == k.shape[0] == sum(len(tok(t)["input_ids"]) for t in texts)
    assert cov.dtype == torch.float64 and cov.shape == (64, 64)
    # padded batches of 3 change float32 rounding only (~1e-8)
    assert torch.allclose(cov, k.T @ k / n, atol=1e-6)
    assert (cov - k.T @ k / n).abs().max() < 1e-3 * cov.abs().max()


def test_second_edit_on_the_same_layer_reuses_the_cache(tok, facts, corpus, monkeypatch,
                                                        lethe_cache):
    calls = []
    real = cov_mod.compute_covariance

    def counting(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(cov_mod, "compute_covariance", counting)
    model = edit_toy.llama(tok)
    cfg = EditConfig(layer=1, context_lengths=(), v_steps=2, cov_ridge=1e-3)
    first = edit_model(model, tok, facts[0][:1], cfg, corpus)
    assert len(calls) == 1 and first.covariance["cache_hit"] is False
    path = first.covariance["path"]
    assert str(lethe_cache / "covariance") in path
    mtime = __import__("os").stat(path).st_mtime_ns
    # the model now differs in the edited weight, which does not influence its own inputs
    second = edit_model(model, tok, facts[0][1:2], cfg, corpus)
    assert len(calls) == 1 and second.covariance["cache_hit"] is True
    assert second.covariance["path"] == path and __import__("os").stat(path).st_mtime_ns == mtime
    restore(model, second)
    restore(model, first)
    # another layer, another sample count: new statistics
    edit_model(model, tok, facts[0][:1], EditConfig(layer=2, context_lengths=(), v_steps=2,
                                                    cov_ridge=1e-3), corpus)
    assert len(calls) == 2
    p_a, _ = cov_mod.cache_path(model, "model.layers.1.mlp.down_proj", corpus, cfg)
    p_b, _ = cov_mod.cache_path(model, "model.layers.1.mlp.down_proj", corpus,
                                EditConfig(cov_samples=7))
    p_c, _ = cov_mod.cache_path(model, "model.layers.1.mlp.down_proj", corpus,
                                EditConfig(cov_dtype="float64"))
    assert len({p_a, p_b, p_c}) == 3


def test_checkpoint_identity_uses_the_weights_fingerprint(tok, tmp_path):
    from transformers import AutoModelForCausalLM

    edit_toy.llama(tok).save_pretrained(tmp_path / "ckpt")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt")
    ident = cov_mod.model_cache_identity(model, "model.layers.1.mlp.down_proj")
    assert set(ident) == {"checkpoint", "weights"} and len(ident["weights"]) == 16
    in_memory = cov_mod.model_cache_identity(edit_toy.llama(tok), "model.layers.1.mlp.down_proj")
    assert set(in_memory) == {"state_sha256"}
