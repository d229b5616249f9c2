"""`unlearn world --format muse`: exactly the schema of MUSE's hub datasets, read back by the
same `datasets.load_dataset(source, config, split=...)` call a hub id takes."""

import datasets
import pytest

from lethe.errors import LetheError
from lethe.loading import hub_layout, load_table
from unlearn.world import WorldSpec, generate_world, write_world

# Written from the dataset cards (README.md YAML header: dataset_info and configs, main branch)
# of muse-bench/MUSE-News and muse-bench/MUSE-Books: config -> (splits, columns); every column
# has dtype string; each split is one file {config}/{split}-00000-of-00001.parquet.
MUSE_NEWS = {
    "raw": ({"forget", "retain1", "retain2", "holdout"}, {"text"}),
    "verbmem": ({"forget"}, {"prompt", "gt"}),
    "knowmem": ({"forget_qa", "forget_qa_icl", "retain_qa", "retain_qa_icl"},
                {"question", "answer"}),
    "privleak": ({"forget", "retain", "holdout"}, {"text"}),
    "scal": ({"forget_1", "forget_2", "forget_3", "forget_4"}, {"text"}),
    "sust": ({"forget_1", "forget_2", "forget_3", "forget_4"}, {"text"}),
    "train": ({"forget", "retain1", "retain2"}, {"text"}),
}
MUSE_BOOKS = {k: v for k, v in MUSE_NEWS.items() if k not in ("scal", "sust")}


@pytest.fixture(scope="module")
def tiny_world():
    return generate_world(WorldSpec(seed=0, size="tiny"))


@pytest.mark.parametrize("layout,schema", [("muse", MUSE_NEWS), ("muse-books", MUSE_BOOKS)])
def test_schema_matches_the_dataset_card(tmp_path, tiny_world, layout, schema):
    out = write_world(tiny_world, tmp_path / layout, layout=layout)
    assert hub_layout(out)
    assert set(datasets.get_dataset_config_names(str(out))) == set(schema)
    shards = {p.relative_to(out).as_posix() for p in out.rglob("*.parquet")}
    assert shards == {f"{c}/{s}-00000-of-00001.parquet" for c, (splits, _) in schema.items()
                      for s in splits}
    string = datasets.Value("string")
    for config, (splits, columns) in schema.items():
        loaded = datasets.load_dataset(str(out), config)  # every split of the config at once
        assert set(loaded) == splits, config
        for split, ds in loaded.items():
            assert dict(ds.features) == {c: string for c in columns}, (config, split)
    # The rows are the world's: raw/forget is the whole forget set and so is train/forget.
    forget = [r["text"] for r in tiny_world.data["raw"]["forget"]]
    assert list(load_table(out, config="train", split="forget")["text"]) == forget
    assert load_table(out, config="knowmem", split="forget_qa").to_list() == \
        tiny_world.data["knowmem"]["forget_qa"]


def test_missing_config_and_split_are_one_line(tmp_path, tiny_world):
    out = write_world(tiny_world, tmp_path / "w", layout="muse-books")
    with pytest.raises(LetheError, match=r"has no config 'scal'.*Available: \['knowmem'"):
        load_table(out, config="scal", split="forget_1")
    with pytest.raises(LetheError, match=r"\(config raw\) has no split 'retain'"):
        load_table(out, config="raw", split="retain")
    assert not hub_layout(write_world(tiny_world, tmp_path / "j"))  # jsonl: no card
