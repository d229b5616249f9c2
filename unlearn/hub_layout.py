"""Writing a benchmark in the layout of MUSE's datasets on the Hugging Face hub.

`muse-bench/MUSE-News` and `muse-bench/MUSE-Books` are parquet datasets: one file per split,
`{config}/{split}-00000-of-00001.parquet`, and a README.md whose YAML header declares every
config (`dataset_info`: features with their dtypes, splits with their sizes; `configs`: which
files make which split). `datasets.load_dataset(ID, config, split=...)` reads them through that
header. A directory written here has exactly their configs, split names, column names and
dtypes (all `string`), so `datasets.load_dataset(DIR, config, split=...)` — and `unlearn eval
MODEL --data DIR`, which takes that same code path for such a directory (lethe.loading) —
reads it as it would read the hub dataset.

What each split holds is Lethe's (the world's or the Shakespeare builder's) data:

| config | splits (MUSE-News) | columns |
|---|---|---|
| raw | forget, retain1, retain2, holdout | text |
| verbmem | forget | prompt, gt |
| knowmem | forget_qa, forget_qa_icl, retain_qa, retain_qa_icl | answer, question |
| privleak | forget, retain, holdout | text |
| scal | forget_1 .. forget_4 | text |
| sust | forget_1 .. forget_4 | text |
| train | forget, retain1, retain2 | text |

MUSE-Books has the same configs without scal and sust. `train` is what the target model is
trained on: MUSE-News' train/forget is its whole forget corpus (scal/forget_4) while its
raw/forget is the first quarter; Lethe's raw/forget is already the whole forget set, so
train/forget = raw/forget here. Lethe's own `facts` config (for edits and extraction attacks)
is not part of MUSE's schema and is not written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lethe.errors import LetheError


@dataclass(frozen=True)
class HubConfig:
    """One config of a hub dataset: its splits and its (string) columns, in the card's order."""

    name: str
    splits: tuple[str, ...]
    columns: tuple[str, ...]


TEXT = ("text",)
QUARTERS = tuple(f"forget_{k}" for k in range(1, 5))
NEWS = (
    HubConfig("knowmem", ("retain_qa_icl", "retain_qa", "forget_qa", "forget_qa_icl"),
              ("answer", "question")),
    HubConfig("privleak", ("retain", "forget", "holdout"), TEXT),
    HubConfig("raw", ("retain2", "forget", "retain1", "holdout"), TEXT),
    HubConfig("scal", QUARTERS, TEXT),
    HubConfig("sust", QUARTERS, TEXT),
    HubConfig("train", ("retain2", "forget", "retain1"), TEXT),
    HubConfig("verbmem", ("forget",), ("prompt", "gt")),
)
LAYOUTS = {
    "muse": NEWS,  # = muse-news: all seven configs
    "muse-news": NEWS,
    "muse-books": tuple(c for c in NEWS if c.name not in ("scal", "sust")),
}
HUB_IDS = {"muse": "muse-bench/MUSE-News", "muse-news": "muse-bench/MUSE-News",
           "muse-books": "muse-bench/MUSE-Books"}
SHARD = "-00000-of-00001.parquet"  # one shard per split, named as the hub's


def hub_tables(data: dict[str, dict[str, list[dict]]], layout: str = "muse"
               ) -> dict[str, dict[str, list[dict]]]:
    """{config: {split: rows}} of `layout` from Lethe's data (config -> split -> rows), rows cut
    to the config's columns; train is derived from raw. Missing pieces are one-line errors."""
    if layout not in LAYOUTS:
        raise LetheError(f"unknown hub layout '{layout}'; use one of {', '.join(LAYOUTS)}")
    source = dict(data)
    if "raw" in source:
        source["train"] = {s: source["raw"].get(s, []) for s in ("forget", "retain1", "retain2")}
    out: dict[str, dict[str, list[dict]]] = {}
    for cfg in LAYOUTS[layout]:
        if cfg.name not in source:
            raise LetheError(f"the data has no config '{cfg.name}', which {HUB_IDS[layout]} "
                             f"has; cannot write it in that layout")
        out[cfg.name] = {}
        for split in cfg.splits:
            if split not in source[cfg.name]:
                raise LetheError(f"the data has no split {cfg.name}/{split}, which "
                                 f"{HUB_IDS[layout]} has")
            rows = source[cfg.name][split]
            for i, row in enumerate(rows):
                missing = [c for c in cfg.columns if not isinstance(row.get(c), str)]
                if missing:
                    raise LetheError(f"{cfg.name}/{split} row {i} lacks the string field(s) "
                                     f"{', '.join(missing)}")
            out[cfg.name][split] = [{c: row[c] for c in cfg.columns} for row in rows]
    return out


def write_hub_files(data: dict[str, dict[str, list[dict]]], directory: str | Path, *,
                    layout: str = "muse", title: str = "Lethe benchmark") -> dict:
    """Write `data` into `directory` (created; the caller makes the write atomic) as parquet
    shards plus the README.md header `datasets` reads. Returns {config: {split: rows}}."""
    import datasets

    datasets.disable_progress_bars()  # one bar per shard says nothing
    tables = hub_tables(data, layout)
    directory = Path(directory)
    info, configs, counts = [], [], {}
    for cfg in LAYOUTS[layout]:
        features = datasets.Features({c: datasets.Value("string") for c in cfg.columns})
        splits, files = [], []
        for split in cfg.splits:
            rows = tables[cfg.name][split]
            ds = datasets.Dataset.from_dict({c: [r[c] for r in rows] for c in cfg.columns},
                                            features=features)
            path = directory / cfg.name / f"{split}{SHARD}"
            path.parent.mkdir(parents=True, exist_ok=True)
            ds.to_parquet(str(path))
            splits.append({"name": split, "num_bytes": int(ds.data.nbytes),
                           "num_examples": len(ds)})
            files.append({"split": split, "path": f"{cfg.name}/{split}-*"})
            counts.setdefault(cfg.name, {})[split] = len(ds)
        info.append({"config_name": cfg.name,
                     "features": [{"name": c, "dtype": "string"} for c in cfg.columns],
                     "splits": splits,
                     "dataset_size": sum(s["num_bytes"] for s in splits)})
        configs.append({"config_name": cfg.name, "data_files": files})
    (directory / "README.md").write_text(_card(info, configs, layout, title), encoding="utf-8")
    return counts


def _card(info: list, configs: list, layout: str, title: str) -> str:
    import yaml

    header = yaml.safe_dump({"dataset_info": info, "configs": configs}, sort_keys=False,
                            allow_unicode=True)
    return (f"---\n{header}---\n# {title}\n\nWritten by Lethe in the layout of "
            f"`{HUB_IDS[layout]}` (same configs, split names, columns and dtypes; parquet). "
            f"Load a split with `datasets.load_dataset(THIS_DIR, CONFIG, split=SPLIT)` or "
            f"evaluate with `unlearn eval MODEL --data THIS_DIR`.\n")
