import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory):
    """The tiny world with its target/retrain models, prepared once per test session.

    Returns (root, overrides): `overrides` point recipes/tiny.yaml at these files.
    """
    from unlearn.prepare import prepare
    from unlearn.recipe import load_unlearn_recipe

    root = tmp_path_factory.mktemp("tiny")
    overrides = [f"world.dir={root}/world", f"prepare.out_dir={root}/models",
                 f"data.source={root}/world", "prepare.train.max_steps=40"]
    prepare(load_unlearn_recipe("recipes/tiny.yaml", overrides))
    return root, overrides
