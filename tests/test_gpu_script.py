"""scripts/gpu_run.py: one line and exit 2 without a GPU; its arithmetic and doc writing."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_run", ROOT / "scripts" / "gpu_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_refuses_with_one_line_without_a_gpu(tmp_path):
    doc = tmp_path / "gpu.md"
    doc.write_text("# Several GPUs\n")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_run.py"), "--runs",
                        str(tmp_path / "runs"), "--doc", str(doc)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == ["gpu_run: error: no CUDA GPU is visible "
                                     "(torch.cuda.is_available() is False); run this script "
                                     "on a machine with one"]
    assert r.stdout == "" and doc.read_text() == "# Several GPUs\n"
    assert not (tmp_path / "runs").exists()


def test_mfu_peaks_and_the_doc_section(tmp_path):
    g = load_script()
    assert g.peak_tflops("NVIDIA H200") == 989.0
    assert g.peak_tflops("NVIDIA H100 PCIe") == 756.0  # the longest matching name wins
    assert g.peak_tflops("Some Other GPU") is None
    # 6 x 135M parameters x 100k tokens/s = 81 TFLOP/s of a 989 TFLOP/s peak
    assert abs(g.mfu(135_000_000, 100_000, 989.0) - 0.0819) < 1e-4
    row = g.stage_row("prepare target", 20.0, 400_000, 100, 135_000_000, 989.0)
    assert row["tokens_per_s"] == 20_000 and row["s_per_step"] == 0.2
    doc = tmp_path / "gpu.md"
    doc.write_text(f"# Several GPUs\n\nkept\n\n{g.SECTION}\n\nold numbers\n")
    g.write_doc(doc, f"{g.SECTION}\n\nnew numbers\n")
    assert doc.read_text() == f"# Several GPUs\n\nkept\n\n{g.SECTION}\n\nnew numbers\n"


def test_its_overrides_are_valid_recipes_without_lora(tmp_path, monkeypatch):
    """What the script runs on a GPU (it cannot run here): the Shakespeare comparison at full
    size with every LoRA switched off and bf16 on, and harry_potter.yaml on local data."""
    from unlearn.recipe import expand_variants, load_unlearn_recipe

    monkeypatch.chdir(ROOT)
    g = load_script()
    rec = load_unlearn_recipe("recipes/shakespeare_compare.yaml", g.shakespeare_overrides(tmp_path))
    variants = expand_variants(rec)
    assert len(variants) == 8 and not rec.prepare.lora.enabled
    assert all(not v.lora.enabled and v.train["bf16"] for _, v in variants)
    assert rec.shakespeare.max_forget_chunks == 100000 and rec.prepare.train["bf16"]
    hp = load_unlearn_recipe("recipes/harry_potter.yaml",
                             g.muse_books_overrides(tmp_path, tmp_path / "data", "m"))
    assert hp.data.source == str(tmp_path / "data") and hp.method.name == "npo_gdr"
