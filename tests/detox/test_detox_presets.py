"""`detox eval --preset paradetox|pan2024`: the published J, with tiny local stand-ins for the
hub models in the same formats (RoBERTa sequence classifiers, a sentence-transformers
directory, a Wieting sim.pt + SentencePiece pair), against the reference scripts' arithmetic
written out here:

- ParaDetox (s-nlp/paradetox evaluation_detox/metric.py, metric_tools/): STA = 1 − argmax of
  the toxicity classifier, SIM = Wieting cosine, FL = 1 − argmax of the CoLA classifier on
  detokenised text, J = sum(STA·SIM·FL) / n;
- PAN 2024 (pan-webis-de/pan-code clef24/text-detoxification/evaluate.py): STA = softmax[:, 0],
  SIM = 1 − scipy cosine of the sentence-transformers embeddings, chrF = sacrebleu sentence
  chrF vs [reference] / 100, J = mean(STA·SIM·chrF).
"""

import argparse
import io
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from detox.cli import cli
from tests.helpers import fixture_seed

ROWS = [  # text, rewrite (ParaDetox's outputs are tokenised: a space before punctuation)
    ("you idiot , you are wrong", "you are wrong ."),
    ("you are idiots !", "alpha beta"),
    ("you are an idiot", "zzz qqq"),
]
REFS = ["you are wrong .", "alpha and beta", "you are mistaken"]
WORDS = {"you": [1, 0, 0, 0], "are": [0, 1, 0, 0], "wrong": [0, 0, 1, 0],
         "idiot": [0, 0, 0, 1], "alpha": [-1, 0, 0, 0], "beta": [0, -1, 0, 1]}


def _roberta(tok_dir, path, seed, id2label):
    """A tiny random RoBERTa sequence classifier saved with the tiny tokenizer."""
    import shutil

    from transformers import AutoTokenizer, RobertaConfig, RobertaForSequenceClassification

    path.mkdir()
    for f in tok_dir.iterdir():
        shutil.copy(f, path / f.name)
    tok = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(fixture_seed(seed))
    cfg = RobertaConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=600, pad_token_id=tok.pad_token_id,
                        num_labels=2, id2label=id2label,
                        label2id={v: k for k, v in id2label.items()}, initializer_range=0.8)
    RobertaForSequenceClassification(cfg).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def standins(tiny_tokenizer_dir, tmp_path_factory):
    """(toxicity classifier, CoLA classifier, sentence-transformers dir, Wieting dir)."""
    import sentencepiece as spm
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    root = tmp_path_factory.mktemp("standins")
    toxic = _roberta(tiny_tokenizer_dir, root / "toxic", 3, {0: "neutral", 1: "toxic"})
    cola = _roberta(tiny_tokenizer_dir, root / "cola", 4, {0: "LABEL_0", 1: "LABEL_1"})
    bert = root / "bert"
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    torch.manual_seed(fixture_seed(5))
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32,
                         pad_token_id=tok.pad_token_id)).save_pretrained(bert)
    tok.save_pretrained(bert)
    word = models.Transformer(str(bert), max_seq_length=64)
    st = SentenceTransformer(modules=[word, models.Pooling(16, "cls"), models.Normalize()])
    st.save(str(root / "labse"))
    # Wieting: a word-level SentencePiece model and a sim.pt in the ParaDetox format
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter([" ".join(WORDS)] * 3),
                                   model_writer=proto, vocab_size=len(WORDS) + 3,
                                   model_type="word", hard_vocab_limit=False, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_proto=proto.getvalue())
    wieting = root / "wieting"
    wieting.mkdir()
    (wieting / "sim.sp.30k.model").write_bytes(proto.getvalue())
    vocab = {sp.id_to_piece(i).lower(): i for i in range(sp.get_piece_size())}
    vocab["UUUNKKK"] = len(vocab)
    emb = torch.full((len(vocab), 4), 0.5)
    emb[vocab["UUUNKKK"]] = torch.tensor([0.0, 0.0, 0.0, 1.0])
    for w, v in WORDS.items():
        emb[vocab["▁" + w]] = torch.tensor(v, dtype=torch.float)
    torch.save({"state_dict": {"embedding.weight": emb}, "vocab_words": vocab,
                "args": argparse.Namespace(dim=4, gpu=-1)}, wieting / "sim.pt")
    return toxic, cola, str(root / "labse"), str(wieting)


def _write(path, refs=False):
    with path.open("w") as fh:
        for i, (text, rewrite) in enumerate(ROWS):
            obj = {"id": i, "text": text, "rewrite": rewrite}
            if refs:
                obj["references"] = [REFS[i]]
            fh.write(json.dumps(obj) + "\n")
    return path


@torch.no_grad()
def _logits(model_dir, texts):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    return torch.cat([model(**tok([t], return_tensors="pt")).logits for t in texts])


def _wieting_by_hand(a: str, b: str) -> float:
    """Rows of known words (lower-cased, '.' and unknown words skipped; none -> UUUNKKK)."""
    def mean(s):
        vecs = [WORDS[w] for w in s.lower().split() if w in WORDS] or [[0, 0, 0, 1]]
        return np.mean(np.array(vecs, dtype=float), axis=0)
    x, y = mean(a), mean(b)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def test_paradetox_preset_is_paradetoxs_j(standins, tmp_path):
    toxic, cola, _, wieting = standins
    out = _write(tmp_path / "out.jsonl")
    res = CliRunner().invoke(cli, ["eval", str(out), "--preset", "paradetox", "--per-example",
                                   "--set", f"scorers.sta.model={toxic}",
                                   "--set", f"scorers.fl.model={cola}",
                                   "--set", f"scorers.sim.model={wieting}"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "out.eval" / "results.json").read_text())
    assert report["preset"] == "paradetox"
    got = report["metrics"]
    rewrites = [r for _, r in ROWS]
    sta = 1 - _logits(toxic, rewrites).argmax(1).float().numpy()  # classify_preds
    detok = [r.replace(" .", ".") for r in rewrites]
    fl = 1 - _logits(cola, detok).argmax(1).float().numpy()  # do_cola_eval: label 0 acceptable
    sim = np.array([_wieting_by_hand(t, r) for t, r in ROWS])
    assert sim[1] < 0  # "alpha beta" points away from "you are": a negative cosine, kept
    assert got["sta_bin"] == pytest.approx(sta.mean()) and got["fl"] == pytest.approx(fl.mean())
    assert got["sim"] == pytest.approx(sim.mean(), abs=1e-6)
    assert got["j_paradetox"] == pytest.approx(float(sum(sta * sim * fl) / len(ROWS)), abs=1e-6)
    assert set(got) == {"sta_bin", "sim", "fl", "j_paradetox"}


def test_pan2024_preset_is_pans_j(standins, tmp_path):
    from sacrebleu import CHRF
    from scipy.spatial.distance import cosine
    from sentence_transformers import SentenceTransformer

    toxic, _, labse, _ = standins
    out = _write(tmp_path / "out.jsonl", refs=True)
    res = CliRunner().invoke(cli, ["eval", str(out), "--preset", "pan2024", "--per-example",
                                   "--set", f"scorers.sta.model={toxic}",
                                   "--set", f"scorers.sim.model={labse}"])
    assert res.exit_code == 0, res.output
    got = json.loads((tmp_path / "out.eval" / "results.json").read_text())["metrics"]
    rewrites, sources = [r for _, r in ROWS], [t for t, _ in ROWS]
    sta = torch.softmax(_logits(toxic, rewrites), -1)[:, 0].numpy()  # style_target_label=0
    model = SentenceTransformer(labse)
    emb = model.encode(sources + rewrites)
    sim = np.array([1 - cosine(a, b) for a, b in zip(emb[:3], emb[3:])])  # evaluate_sim
    chrf = np.array([CHRF().sentence_score(hypothesis=h, references=[r]).score / 100
                     for h, r in zip(rewrites, REFS)])
    assert got["sta"] == pytest.approx(sta.mean(), abs=1e-6)
    assert got["sim"] == pytest.approx(sim.mean(), abs=1e-5)
    assert got["chrf"] == pytest.approx(chrf.mean(), abs=1e-9)
    assert got["j_clef2024"] == pytest.approx(float(np.mean(sta * sim * chrf)), abs=1e-5)


def test_unclipped_embedding_similarity_keeps_a_negative_cosine():
    from eval.detox.similarity import EmbeddingSimilarity

    class Fixed:
        def encode(self, texts):
            return np.array([[1.0, 0.0] if t == "a" else [-0.6, 0.8] for t in texts])

    raw, clipped = EmbeddingSimilarity("hashing", clip=False), EmbeddingSimilarity("hashing")
    raw.embedder = clipped.embedder = Fixed()
    assert raw.score(["b"], ["a"]) == [pytest.approx(-0.6)]
    assert clipped.score(["b"], ["a"]) == [0.0]


def test_missing_hub_models_fail_offline_with_one_line_each(tmp_path, capsys, monkeypatch):
    from detox.cli import main
    from tests.helpers import run_cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = str(_write(tmp_path / "out.jsonl", refs=True))
    code, _, err = run_cli(main, ["eval", out, "--preset", "pan2024"], capsys, monkeypatch)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 2, err
    assert "scorers.sta.model: model 'textdetox/xlmr-large-toxicity-classifier' is not " \
           "available offline" in lines[0]
    assert "sentence-transformers/LaBSE" in lines[1] and "offline" in lines[1]
    code, _, err = run_cli(main, ["eval", out, "--preset", "paradetox", "--set",
                                  f"scorers.sim.model={tmp_path / 'nowhere'}"], capsys,
                           monkeypatch)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 3 and "sim.pt" in lines[1], err
    code, _, err = run_cli(main, ["eval", out, "--preset", "paradetox"], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "has no hub id" in err
