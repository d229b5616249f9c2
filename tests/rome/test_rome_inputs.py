"""Subject location, and one clear LetheError line (exit 2 via the CLI) for each bad input."""

import sys

import pytest

import edit_toy
from lethe.errors import LetheError
from lethe.recipe import build
from unlearn.rome import EditConfig, edit_model
from unlearn.rome.prompts import compose, make_row


@pytest.mark.parametrize("template", ["{} was born in", "The birthplace of {} is",
                                      "the old town. {} hails from"])
def test_subject_index_is_the_subjects_last_token(tok, template):
    subject = "Alva Brenn"
    row = make_row(tok, template, subject, "test")
    text = template.replace("{}", subject)
    assert row.text == text and list(row.ids) == tok(text)["input_ids"]
    upto = tok.decode(list(row.ids[:row.subject_index + 1]))
    assert upto.endswith(subject)  # the subject ends at this token...
    assert tok.decode([row.ids[row.subject_index]]).strip()  # ...at a token that is not a space
    assert not tok.decode(list(row.ids[:row.subject_index])).endswith(subject)  # not before


def test_compose_puts_the_prompt_into_a_context():
    assert compose("the old town. {}", "{} was born in") == "the old town. {} was born in"


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text and text
    return text


def test_bad_inputs_are_one_line_errors(tok, facts, corpus):
    model = edit_toy.llama(tok)  # 4 layers
    fact = facts[0][0]
    cfg = EditConfig(layer=1, context_lengths=(), v_steps=1, use_covariance=False)
    # the subject is not marked in the prompt
    with pytest.raises(LetheError) as err:
        edit_model(model, tok, [dict(fact, prompt="Alva Brenn was born in")], cfg)
    assert "'{}'" in _one_line(err) and "fact 0" in _one_line(err)
    with pytest.raises(LetheError) as err:
        edit_model(model, tok, [dict(fact, subject="  ")], cfg)
    assert "empty subject" in _one_line(err)
    with pytest.raises(LetheError) as err:
        edit_model(model, tok, [dict(fact, prompt="{} met {} in")], cfg)
    assert "exactly one" in _one_line(err)
    with pytest.raises(LetheError) as err:
        make_row(tok, "{} was born in", "", "fact 9")  # nothing to locate
    assert "cannot locate subject" in _one_line(err)
    # layer out of range
    with pytest.raises(LetheError) as err:
        edit_model(model, tok, [fact], EditConfig(layer=4, use_covariance=False))
    assert "out of range" in _one_line(err) and "0..3" in _one_line(err)
    # unknown module template
    with pytest.raises(LetheError) as err:
        edit_model(model, tok, [fact], EditConfig(layer=1, use_covariance=False,
                                                  rewrite_module="model.layers.{}.mlp.out_proj"))
    assert "not found" in _one_line(err) and "rewrite_module" in _one_line(err)
    # unknown objective: at construction, and through a recipe with the file named
    with pytest.raises(LetheError) as err:
        EditConfig(objective="fact_erasur")
    assert "did you mean 'fact_erasure'" in _one_line(err)
    with pytest.raises(LetheError) as err:
        build(EditConfig, {"objective": "head_projektion"}, source="edit.yaml")
    assert _one_line(err).startswith("edit.yaml:") and "head_projection" in str(err.value)
    # a defense with nothing after the edit layer to defend
    with pytest.raises(LetheError) as err:
        edit_model(model, tok, [fact], EditConfig(layer=3, objective="max_entropy",
                                                  use_covariance=False))
    assert "defense_layers" in _one_line(err)
    # covariance without a corpus
    with pytest.raises(LetheError) as err:
        edit_model(model, tok, [fact], EditConfig(layer=1, context_lengths=()))
    assert "corpus" in _one_line(err)


def _run_cli(monkeypatch, capsys, *args):
    from unlearn.cli import main

    monkeypatch.setattr(sys, "argv", ["unlearn", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr()


def test_covariance_command_caches_and_refuses_bad_layers(tok, tmp_path, monkeypatch, capsys,
                                                          lethe_cache):
    ckpt = tmp_path / "ckpt"
    edit_toy.llama(tok).save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    data = edit_toy.write_facts(tmp_path / "world", *edit_toy.make_facts())
    args = ["covariance", str(ckpt), "--layers", "1,2", "--data", str(data), "--config", "raw",
            "--split", "retain1", "--samples", "20", "--device", "cpu"]
    code, out = _run_cli(monkeypatch, capsys, *args)
    assert code == 0, out.err
    lines = [x for x in out.out.splitlines() if x.startswith("layer ")]  # (deepspeed logs too)
    assert len(lines) == 2 and all("computed from" in line for line in lines)
    assert len(list((lethe_cache / "covariance").glob("*.pt"))) == 2
    code, out = _run_cli(monkeypatch, capsys, *args)
    assert code == 0 and out.out.count("cached") == 2
    code, out = _run_cli(monkeypatch, capsys, *args[:3], "7", *args[4:])
    assert code == 2
    errors = [x for x in out.err.splitlines() if x.startswith("unlearn: error:")]
    assert len(errors) == 1 and "out of range" in errors[0] and "Traceback" not in out.err
