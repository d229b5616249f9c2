"""`unlearn prepare` on the tiny world: tokenizer + target/retrain checkpoints that load."""

import json
import shutil

import pytest
import torch

from lethe.errors import LetheError
from lethe.loading import load_model, load_tokenizer
from unlearn.data import LMCollator, tokenize_texts
from unlearn.methods.losses import nll
from unlearn.preflight import preflight_prepare
from unlearn.prepare import prepare, read_texts, train_tokenizer
from unlearn.recipe import load_unlearn_recipe


def test_tokenizer_round_trips_unseen_text():
    tok = train_tokenizer(["Alia Brenholt was born in Vessmark."] * 5, vocab_size=300)
    ids = tok("Zyx qü 1872!")["input_ids"]
    assert ids[0] == tok.bos_token_id  # <s> prepended, as in training
    assert tok.decode(ids, skip_special_tokens=True) == "Zyx qü 1872!"  # byte-level: no <unk>


def test_a_prompt_ending_in_a_space_tokenises_as_a_prefix_of_the_answered_text():
    """KnowMem prompts end in "Answer: ", VerbMem prompts end before a space: both must be
    token prefixes of the text the model was trained on, or greedy decoding starts from a token
    sequence training never produced."""
    text = "Question: Where was Alia Brenholt born?\nAnswer: Vessmark\n\nQuestion: Who?"
    tok = train_tokenizer([text] * 5, vocab_size=300)
    full = tok(text)["input_ids"]
    for cut in ("Answer: ", "Answer: Vessmark\n", "Where was", "Where was "):
        prefix = text[:text.index(cut) + len(cut)]
        ids = tok(prefix)["input_ids"]
        assert full[:len(ids)] == ids, cut


def test_prepare_writes_loadable_checkpoints(tiny_prepared):
    root, _ = tiny_prepared
    assert json.loads((root / "world" / "world.json").read_text())["size"] == "tiny"
    for name in ("target", "retrain"):
        path = root / "models" / name
        assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()
        model, tok = load_model(str(path)), load_tokenizer(str(path))
        assert model.config.model_type == "llama" and len(tok) == model.config.vocab_size


def forget_nll(path, texts):
    model, tok = load_model(str(path)), load_tokenizer(str(path))
    with torch.no_grad():
        return nll(model, LMCollator(tok.pad_token_id)(tokenize_texts(tok, texts, 128))).item()


def test_target_fits_forget_better_than_retrain(tiny_prepared):
    """Only the target saw the forget split, so it assigns it a lower loss."""
    root, _ = tiny_prepared
    forget = read_texts(str(root / "world"), "raw", "forget")
    assert forget_nll(root / "models" / "target", forget) < \
        forget_nll(root / "models" / "retrain", forget) - 0.2


def _untrained_share(tok, trained: list[str], texts: list[str]) -> float:
    """Share of the tokens of `texts` that never occur in the tokenisation of `trained`."""
    seen = {i for t in trained for i in tok(t)["input_ids"]}
    ids = [i for t in texts for i in tok(t)["input_ids"]]
    return sum(i not in seen for i in ids) / len(ids)


def test_tokenizer_is_fitted_to_the_retain_text_only(tiny_prepared):
    """Holdout tokens the target never trained on keep untrained embeddings, and membership
    inference then sees every holdout text as alien (docs/world.md): fitting the BPE to the
    retain text leaves fewer of them than fitting it to every group."""
    root, _ = tiny_prepared
    world = str(root / "world")
    retain = read_texts(world, "raw", "retain1") + read_texts(world, "raw", "retain2")
    forget, holdout = read_texts(world, "raw", "forget"), read_texts(world, "raw", "holdout")
    saved = load_tokenizer(str(root / "models" / "target"))
    assert saved.get_vocab() == train_tokenizer(retain, vocab_size=512).get_vocab()
    everything = train_tokenizer(forget + retain + holdout, vocab_size=512)
    ours = _untrained_share(saved, forget + retain, holdout)
    theirs = _untrained_share(everything, forget + retain, holdout)
    assert ours < 0.75 * theirs, (ours, theirs)  # tiny seed 0: 3.4% vs 7.9%; demo 8.9% vs 12.5%


def test_second_prepare_skips_existing(tiny_prepared):
    _, overrides = tiny_prepared
    assert prepare(load_unlearn_recipe("recipes/tiny.yaml", overrides))["skipped"] is True


def test_prepare_fine_tunes_a_base_model(tiny_prepared, tmp_path):
    """`prepare.base_model`: fine-tune a pretrained checkpoint (here the tiny target) on a
    Shakespeare split instead of training from scratch; the base's tokenizer is kept."""
    root, _ = tiny_prepared
    base = root / "models" / "target"
    recipe = load_unlearn_recipe("recipes/shakespeare.yaml", [
        f"shakespeare.dir={tmp_path}/sh", "shakespeare.max_forget_chunks=4",
        "shakespeare.max_retain_chunks=4", f"prepare.out_dir={tmp_path}/m",
        f"prepare.base_model={base}", "prepare.max_length=64", "prepare.train.max_steps=3",
        "prepare.train.learning_rate=1e-3", "prepare.parallel=never"])
    summary = prepare(recipe)
    assert summary["vocab_size"] == len(load_tokenizer(str(base)))
    forget = read_texts(f"{tmp_path}/sh", "raw", "forget")
    assert forget_nll(tmp_path / "m" / "target", forget) < forget_nll(base, forget)


def test_prepare_refuses_a_world_generated_with_other_settings(tiny_prepared, tmp_path):
    """A world directory from an older generator or another size table is not silently reused
    (models prepared on it would not be the recipe's)."""
    root, overrides = tiny_prepared
    shutil.copytree(root / "world", tmp_path / "world")
    meta = json.loads((tmp_path / "world" / "world.json").read_text())
    meta["sizes"]["retain1"] += 1
    (tmp_path / "world" / "world.json").write_text(json.dumps(meta))
    recipe = load_unlearn_recipe("recipes/tiny.yaml", overrides + [
        f"world.dir={tmp_path}/world", f"prepare.out_dir={tmp_path}/models"])
    with pytest.raises(LetheError, match=r"other settings \(sizes differ"):
        prepare(recipe)
    assert not (tmp_path / "models").exists()


def test_prepare_refuses_models_trained_on_other_data(tiny_prepared, tmp_path):
    root, overrides = tiny_prepared
    assert json.loads((root / "models" / "prepare.json").read_text())["data_sha256"]
    shutil.copytree(root / "world", tmp_path / "world")
    shutil.copytree(root / "models", tmp_path / "models")
    forget = next((tmp_path / "world" / "raw").glob("forget*"))
    forget.write_text(forget.read_text().replace("a", "o", 1))
    recipe = load_unlearn_recipe("recipes/tiny.yaml", overrides + [
        f"world.dir={tmp_path}/world", f"prepare.out_dir={tmp_path}/models",
        f"data.source={tmp_path}/world"])
    with pytest.raises(LetheError, match="trained on other data"):
        prepare(recipe)


def test_parallel_prepare_trains_both_models_side_by_side(tiny_prepared, tmp_path):
    """`prepare.parallel: always`: target and retrain train in two spawned processes, each with
    half the cores, and come out as the one-after-the-other run makes them (same seed)."""
    root, overrides = tiny_prepared
    seq = json.loads((root / "models" / "prepare.json").read_text())
    assert "parallel" not in seq  # the fixture's 40 steps are below auto's 200-step threshold
    recipe = load_unlearn_recipe("recipes/tiny.yaml", overrides + [
        f"prepare.out_dir={tmp_path}/models", "prepare.parallel=always"])
    summary = prepare(recipe)
    threads = summary["parallel"]["threads_each"]
    assert summary["parallel"]["processes"] == 2 and threads >= 1
    assert json.loads((tmp_path / "models" / "prepare.json").read_text())["parallel"] == \
        summary["parallel"]
    forget = read_texts(str(root / "world"), "raw", "forget")
    for name in ("target", "retrain"):
        record = summary["models"][name]
        assert record["torch_threads"] == threads and record["steps"] == 40
        # the same training: final losses agree to float noise (measured ~1e-7 relative)
        assert record["final_loss"] == pytest.approx(seq["models"][name]["final_loss"],
                                                     rel=0.02)
    assert forget_nll(tmp_path / "models" / "target", forget) < \
        forget_nll(tmp_path / "models" / "retrain", forget) - 0.2


def test_thread_handoff_waits_for_the_other_training_then_takes_its_threads(tmp_path):
    """At its fixed step, and only there, the callback blocks until the signal file exists,
    then trains on with more threads (side-by-side prepare's freed core)."""
    import threading
    from types import SimpleNamespace

    from unlearn.prepare import ThreadHandoff

    before = torch.get_num_threads()
    signal = tmp_path / ".retrain.trained"
    handoff = ThreadHandoff(at=3, threads=before + 1, signal=signal, poll=0.02)
    try:
        handoff.on_step_end(None, SimpleNamespace(global_step=2), None)  # not its step
        assert handoff.waited is None and torch.get_num_threads() == before
        threading.Timer(0.3, signal.touch).start()
        handoff.on_step_end(None, SimpleNamespace(global_step=3), None)
        assert signal.exists() and handoff.waited >= 0.25
        assert torch.get_num_threads() == before + 1
        handoff.on_step_end(None, SimpleNamespace(global_step=3), None)  # once only
        assert handoff.waited < 1.0
    finally:
        torch.set_num_threads(before)


def test_a_failed_training_is_raised_while_the_other_still_waits():
    """The longer training blocks at its handoff until the shorter one finishes; if the
    shorter one fails instead, prepare must raise at once rather than wait on the longer one
    forever (it used to collect the results in order: target first)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from unlearn.prepare import _results_or_first_error

    release = threading.Event()

    def boom():
        time.sleep(0.1)
        raise RuntimeError("retrain died")

    with ThreadPoolExecutor(2) as pool:
        futures = {"target": pool.submit(release.wait, 30), "retrain": pool.submit(boom)}
        start = time.perf_counter()
        with pytest.raises(RuntimeError, match="retrain died"):
            _results_or_first_error(futures)
        assert time.perf_counter() - start < 5
        release.set()
    ok = ThreadPoolExecutor(2)
    futures = {"a": ok.submit(lambda: 1), "b": ok.submit(lambda: 2)}
    assert _results_or_first_error(futures) == {"a": 1, "b": 2}
    ok.shutdown()


def test_side_by_side_prepare_hands_the_shorter_trainings_threads_to_the_longer(
        tiny_prepared, tmp_path):
    """The retrain model (retain text only) takes fewer steps than the target: the target
    switches to both processes' threads right after the retrain's last step, a step fixed in
    advance (so a rerun trains the same model), and the signal files are gone afterwards."""
    root, overrides = tiny_prepared
    recipe = load_unlearn_recipe("recipes/tiny.yaml", overrides + [
        f"prepare.out_dir={tmp_path}/models", "prepare.parallel=always",
        "prepare.train.max_steps=-1", "prepare.train.num_train_epochs=1"])
    summary = prepare(recipe)
    threads = summary["parallel"]["threads_each"]
    target, retrain = summary["models"]["target"], summary["models"]["retrain"]
    assert retrain["steps"] < target["steps"]
    assert "thread_handoff" not in retrain and retrain["torch_threads"] == threads
    assert target["thread_handoff"]["at_step"] == retrain["steps"]
    assert target["thread_handoff"]["threads_after"] == target["torch_threads"] == 2 * threads
    assert not list((tmp_path / "models").glob(".*.trained"))
    saved = json.loads((tmp_path / "models" / "prepare.json").read_text())
    assert saved["models"]["target"]["thread_handoff"] == target["thread_handoff"]


def test_retrain_takes_as_many_steps_as_the_target(tiny_prepared, tmp_path):
    """prepare.match_steps: the retrain model's smaller set is passed over more often, so both
    end after the same number of optimizer steps, counted as the Trainer counts them."""
    root, overrides = tiny_prepared
    recipe = load_unlearn_recipe("recipes/tiny.yaml", overrides + [
        f"prepare.out_dir={tmp_path}/models", "prepare.train.max_steps=-1",
        "prepare.train.num_train_epochs=2", "prepare.match_steps=true"])
    models = prepare(recipe)["models"]
    forget = read_texts(str(root / "world"), "raw", "forget")
    retain = read_texts(str(root / "world"), "raw", "retain1") + \
        read_texts(str(root / "world"), "raw", "retain2")
    tok = load_tokenizer(str(tmp_path / "models" / "target"))
    batches = -(-len(tokenize_texts(tok, forget + retain, 128)) // 8)  # batch 8, ceil
    assert models["target"]["steps"] == 2 * batches  # the Trainer's own count
    assert models["retrain"]["steps"] == models["target"]["steps"]
    assert models["retrain"]["train_docs"] < models["target"]["train_docs"]


def test_retrain_trains_on_the_stand_in_in_the_forget_sets_place(tiny_prepared, tmp_path):
    """prepare.retrain_stand_in: the retrain model trains on retain + the stand-in split (as
    many documents as forget, other entities), the target as before; the stand-in text enters
    the data fingerprint, and a split the world lacks is refused before any training."""
    root, overrides = tiny_prepared
    recipe = load_unlearn_recipe("recipes/tiny.yaml", overrides + [
        f"prepare.out_dir={tmp_path}/models", "prepare.retrain_stand_in=stand_in"])
    summary = prepare(recipe)
    world = str(root / "world")
    n = {s: len(read_texts(world, "raw", s)) for s in ("forget", "retain1", "retain2",
                                                        "stand_in")}
    models = summary["models"]
    assert models["target"]["train_docs"] == n["forget"] + n["retain1"] + n["retain2"]
    assert models["retrain"]["train_docs"] == n["stand_in"] + n["retain1"] + n["retain2"]
    assert summary["retrain_stand_in_docs"] == n["stand_in"]
    plain = json.loads((root / "models" / "prepare.json").read_text())["data_sha256"]
    assert summary["data_sha256"] != plain
    stand_in = read_texts(world, "raw", "stand_in")
    forget = read_texts(world, "raw", "forget")
    # the retrain model learnt its stand-in much better than the forget set it never saw
    assert forget_nll(tmp_path / "models" / "retrain", stand_in) < \
        forget_nll(tmp_path / "models" / "retrain", forget) - 0.2
    bad = load_unlearn_recipe("recipes/tiny.yaml", overrides + [
        f"prepare.out_dir={tmp_path}/bad", "prepare.retrain_stand_in=stand_in_x"])
    with pytest.raises(LetheError, match="stand_in_x"):
        preflight_prepare(bad)
    assert not (tmp_path / "bad").exists()


def test_killed_prepare_leaves_no_training_process_behind(tiny_prepared, tmp_path):
    """SIGKILL of `unlearn prepare` while target and retrain train side by side: both children
    die with it (prctl PR_SET_PDEATHSIG) instead of training on as orphans."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    root, overrides = tiny_prepared
    sets = overrides + [f"prepare.out_dir={tmp_path}/models", "prepare.parallel=always",
                        "prepare.train.max_steps=100000"]
    proc = subprocess.Popen([sys.executable, "-m", "unlearn", "prepare", "recipes/tiny.yaml",
                             *[x for o in sets for x in ("--set", o)]],
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 900  # children import torch: ~60 s at load 8
        while time.monotonic() < deadline:  # both children started and training
            kids = psutil.Process(proc.pid).children()
            if len(kids) >= 2 and (tmp_path / "models" / ".target" / "trainer").is_dir():
                break
            assert proc.poll() is None, "prepare exited early"
            time.sleep(0.2)
        else:
            pytest.fail("the training children never started")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        gone, alive = psutil.wait_procs(kids, timeout=60)
        assert not alive, [k.pid for k in alive]
    finally:
        for k in psutil.Process().children(recursive=True):
            k.kill()


def test_side_by_side_prepare_ends_cleanly_in_a_terminal(tiny_prepared, tmp_path):
    """`unlearn prepare` with two training processes exits 0 and leaves nothing on stderr's
    tail from multiprocessing ("resource_tracker: ... leaked semaphore objects" came after
    every demo run while the idle workers were terminated instead of shut down)."""
    import os
    import subprocess
    import sys

    root, overrides = tiny_prepared
    sets = overrides + [f"prepare.out_dir={tmp_path}/models", "prepare.parallel=always",
                        "prepare.train.max_steps=4"]
    done = subprocess.run([sys.executable, "-m", "unlearn", "prepare", "recipes/tiny.yaml",
                           *[x for o in sets for x in ("--set", o)]],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "models" / "retrain" / "config.json").is_file()
    assert "leaked" not in done.stderr and "Traceback" not in done.stderr


def test_prepare_lora_saves_merged_plain_checkpoints(tiny_prepared, tmp_path):
    """`prepare.lora`: fine-tune the base through LoRA adapters, then save target and retrain
    as plain checkpoints with the adapters merged in: no adapter files, the base's parameter
    count, the weights LoRA does not reach (embeddings, norms, k/o projections) bit-identical
    to the base's, the adapted projections changed, and the target fitted to the forget text."""
    from safetensors.torch import load_file

    root, _ = tiny_prepared
    base = root / "models" / "target"
    recipe = load_unlearn_recipe("recipes/shakespeare.yaml", [
        f"shakespeare.dir={tmp_path}/sh", "shakespeare.max_forget_chunks=4",
        "shakespeare.max_retain_chunks=4", f"prepare.out_dir={tmp_path}/m",
        f"prepare.base_model={base}", "prepare.max_length=64", "prepare.train.max_steps=32",
        "prepare.train.learning_rate=1e-2", "prepare.parallel=never",
        "prepare.lora.r=8",
        "prepare.lora.target_modules=[q_proj,v_proj,gate_proj,up_proj,down_proj]"])
    assert recipe.prepare.lora.enabled
    summary = prepare(recipe)
    before = load_file(str(base / "model.safetensors"))
    n_base = sum(p.numel() for p in load_model(str(base)).parameters())
    for name in ("target", "retrain"):
        out = tmp_path / "m" / name
        assert not list(out.glob("adapter_*")), name  # merged, not an adapter directory
        info = summary["models"][name]
        assert info["parameters"] == n_base  # LoRA's own weights are not counted
        assert 0 < info["trained_parameters"] < info["parameters"] / 4
        after = load_file(str(out / "model.safetensors"))
        assert set(after) == set(before)  # the base's tensor names: no lora_A / lora_B
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        adapted = ("q_proj.weight", "v_proj.weight", "gate_proj.weight", "up_proj.weight",
                   "down_proj.weight")
        assert changed and all(k.endswith(adapted) for k in changed), changed
    forget = read_texts(f"{tmp_path}/sh", "raw", "forget")
    # 32 steps at lr 1e-2 move the tiny base 0.35 / 0.39 / 0.31 nats on Macbeth (fixture seeds
    # 0-2, world v3); 16 steps at 2e-2 had moved it only 0.12 at seed 2
    assert forget_nll(tmp_path / "m" / "target", forget) < forget_nll(base, forget) - 0.15


def test_auto_parallel_fine_tunes_a_base_model_side_by_side_even_when_short(monkeypatch):
    """`parallel: auto` on 2 CPU cores: a short from-scratch run trains one model after the
    other (two fresh interpreters would cost more than they save), a fine-tuning of a base
    model side by side with one thread each (its steps take seconds), never under DeepSpeed."""
    from dataclasses import replace

    from unlearn import prepare as prep

    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    section = load_unlearn_recipe("recipes/shakespeare.yaml").prepare
    scratch = replace(section, base_model=None, lora=None)
    assert prep._parallel_threads(scratch, 50) == 0
    assert prep._parallel_threads(scratch, 500) == 1
    assert prep._parallel_threads(section, 50) == 1
    assert prep._parallel_threads(replace(section, parallel="never"), 500) == 0
    assert prep._parallel_threads(replace(section, train={**section.train, "deepspeed": "z.json"}),
                                  500) == 0
