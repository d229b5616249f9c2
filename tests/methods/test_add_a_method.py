"""docs/dev/extending.md, "Add a method", followed once: one new file in unlearn/methods/."""

import pytest
import torch

from lethe.errors import LetheError
from lethe.recipe import build
from tests.plugins import module_in_package
from unlearn.methods import METHODS, get_method, method_names
from unlearn.methods.losses import nll
from unlearn.recipe import UnlearnRecipe

TOY = '''
"""Scaled gradient ascent (a toy): loss = -scale * NLL(forget)."""

from dataclasses import dataclass

from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import nll


@dataclass(frozen=True)
class ToyConfig(MethodConfig):
    name: str = "toy_ga"
    scale: float = 0.5  # how much of the forget NLL is ascended


@register("toy_ga", ToyConfig)
def toy_loss(model, batch, cfg: ToyConfig, ref=None):
    """Scaled gradient ascent: -scale * NLL(forget)."""
    forget_nll = nll(model, batch["forget"])
    return -cfg.scale * forget_nll, {"forget_nll": forget_nll.item()}
'''


def test_one_file_adds_a_method(tmp_path, model, batch):
    with module_in_package("unlearn.methods", "toy_ga", TOY, tmp_path, (METHODS,)):
        assert "toy_ga" in method_names()
        method = get_method("toy_ga")
        assert method.summary == "Scaled gradient ascent: -scale * NLL(forget)."
        recipe = build(UnlearnRecipe, {"method": {"name": "toy_ga", "scale": 0.25}})
        loss, logs = method.loss(model, batch, recipe.method, None)
        with torch.no_grad():
            expected = nll(model, batch["forget"]).item()
        assert logs["forget_nll"] == pytest.approx(expected)
        assert loss.item() == pytest.approx(-0.25 * expected)
    assert "toy_ga" not in method_names()  # gone with its file


def test_a_method_file_that_fails_to_import_is_named(tmp_path):
    with module_in_package("unlearn.methods", "broken", "import no_such_package_xyz\n",
                           tmp_path, (METHODS,)):
        with pytest.raises(LetheError, match=r"unlearn\.methods\.broken failed to import "
                                             r"\(ModuleNotFoundError"):
            method_names()
