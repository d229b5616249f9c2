"""`unlearn world OUT_DIR`: write the seeded benchmark world in MUSE's layout."""

from __future__ import annotations

import click

from unlearn.world import ALL_GROUPS, SIZES, WorldSpec, generate_world, write_world


def _size_help() -> str:
    return "; ".join(f"{name}: {s.forget}/{s.retain1 + s.retain2}/{s.holdout} documents"
                     for name, s in SIZES.items())


@click.command("world", help=f"""Write the fictional benchmark world to OUT_DIR.

A seeded, invented encyclopedia (people, places, works) laid out exactly like MUSE
(muse-bench/MUSE-News): OUT_DIR/{{config}}/{{split}}.jsonl for configs raw, verbmem, knowmem,
privleak, scal, sust, plus facts (CounterFact-style prompts for edits), and OUT_DIR/world.json
with the seed, size and counts. Train the target model on raw/forget + raw/retain1 +
raw/retain2 and the retrain oracle on the retain splits only; raw/holdout is never trained on.

The same seed and size always give byte-identical files.

\b
Sizes (forget/retain/holdout documents):
{_size_help()}

tiny is for tests; demo (~84 KB of training text, forget ~23%) is sized for a ~1M-parameter
model trained from scratch on a CPU; large is ~5x demo, for GPUs.

--format tofu writes the same world's question-answer pairs in TOFU's layout instead
(OUT_DIR/{{config}}/train.jsonl: forget10, forget10_perturbed, retain90, retain_perturbed,
real_authors(_perturbed), world_facts(_perturbed), holdout10, full; see docs/world.md), for
`unlearn eval MODEL --benchmark tofu --data OUT_DIR --retrain RETRAIN`: models prepared on the
world with the same seed and size are TOFU's target and retain models.

Example: unlearn world runs/world --size demo --seed 0
         unlearn world runs/tofu --size demo --seed 0 --format tofu
""")
@click.argument("out_dir", type=click.Path(file_okay=False, dir_okay=True, writable=True))
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the generator; different seeds give different worlds.")
@click.option("--size", type=click.Choice(list(SIZES)), default="demo", show_default=True,
              help="How big a world to write (see above).")
@click.option("--format", "layout",
              type=click.Choice(["jsonl", "muse", "muse-books", "tofu"]), default="jsonl", show_default=True,
              help="jsonl: OUT_DIR/{config}/{split}.jsonl, with Lethe's facts config. muse: "
                   "exactly the hub layout of muse-bench/MUSE-News (parquet shards and a "
                   "README.md declaring configs raw, verbmem, knowmem, privleak, scal, sust, "
                   "train; no facts); muse-books: that of MUSE-Books (no scal, sust). "
                   "`unlearn eval MODEL --data OUT_DIR` reads all three. tofu: the world's QA "
                   "in TOFU's layout (forget10, retain90, real_authors, world_facts, ...).")
@click.option("--overwrite", is_flag=True,
              help="Replace OUT_DIR if it exists and is not empty (the swap is atomic).")
def world(out_dir, seed, size, layout, overwrite):
    from lethe.locks import lock_output

    lock_output(out_dir, "world directory")  # one writer per output
    w = generate_world(WorldSpec(seed=seed, size=size))
    if layout == "tofu":
        from unlearn.world_tofu import write_tofu

        out = write_tofu(w, out_dir, overwrite=overwrite)
        counts = {g: len(rows) for g, rows in w.qa.items()}
        click.echo(f"wrote {out} (TOFU layout, size {size}, seed {seed}): forget10 "
                   f"{counts['forget']} pairs, retain90 {counts['retain1']}, real_authors + "
                   f"world_facts {counts['retain2']}, holdout10 {counts['holdout']}")
        return
    out = write_world(w, out_dir, overwrite=overwrite, layout=layout)
    counts, chars = w.metadata["counts"]["raw"], w.metadata["chars"]["raw"]
    train = sum(chars[g] for g in ("forget", "retain1", "retain2"))
    docs = ", ".join(f"{g} {len(w.entities[g])}" for g in ALL_GROUPS)  # one per entity
    sheets = ", ".join(f"{g} {counts[g] - len(w.entities[g])}" for g in ALL_GROUPS)
    click.echo(f"wrote {out} (size {size}, seed {seed}): documents {docs}; "
               f"question sheets {sheets}; "
               f"training text {train / 1000:.1f} KB, forget {chars['forget'] / train:.0%}; "
               f"holdout {chars['holdout'] / 1000:.1f} KB"
               + ("" if layout == "jsonl" else f"; {layout} hub layout (parquet + README.md)"))
