import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from tests.helpers import THREADS, fixture_seed  # noqa: E402

# The test models are tiny (~10^4-10^6 parameters): intra-op threading costs more than it
# saves on them, and on a loaded 2-core machine two threads made tiny forwards ~100x slower.
torch.set_num_threads(THREADS)
# ... and the same for the subprocesses tests start (console scripts, accelerate/deepspeed
# launches): with OpenMP's default of one thread per core, two such processes on a loaded
# 2-core machine spin against each other (measured: the ZeRO tests took 100+ s instead of 12)
os.environ["OMP_NUM_THREADS"] = str(THREADS)


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory):
    """The tiny world with its target/retrain models, prepared once per test session.

    Returns (root, overrides): `overrides` point recipes/tiny.yaml at these files.
    """
    from unlearn.prepare import prepare
    from unlearn.recipe import load_unlearn_recipe

    root = tmp_path_factory.mktemp("tiny")
    overrides = [f"world.dir={root}/world", f"prepare.out_dir={root}/models",
                 f"data.source={root}/world", "prepare.train.max_steps=40",
                 f"seed={fixture_seed(0)}", f"world.seed={fixture_seed(0)}"]
    prepare(load_unlearn_recipe("recipes/tiny.yaml", overrides))
    return root, overrides
