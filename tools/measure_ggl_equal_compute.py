"""GGL at its own population and at GIFD's compute, against GIFD on the same images (issue 15).

    GIFD_DATA=../shared/data GIFD_THREADS=1 .venv/bin/python tools/measure_ggl_equal_compute.py \
        [--run convnet:10 resnet18:5] [--workers 2]

Runs GGL with the laptop preset as it is now (CMA-ES, population 50, 2,520 evaluations: GIFD's 1,260 iterations at
the measured 0.5× cost of an evaluation) on test images 5, 1005, …, appending to
docs/results/runs/ggl_equal_compute.jsonl, then writes docs/results/ggl_equal_compute.md from the records: the new
GGL beside the old one (the committed tables: 1,200 evaluations, CMA-ES's default population of 18), each paired
against GIFD on the same images — the old GIFD − GGL gap (loss-rule GIFD, old GGL) and the new one (GIFD's default,
which on a clean single-image update is the lowest-loss rule, and its held-out variant, both from
docs/results/runs/stage_selection.jsonl) — and the seconds each run took (the same load: two one-thread runs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gifd_lite.experiments import RunSpec, read_records  # noqa: E402
from gifd_lite.reproduce import mean_ci, run_table  # noqa: E402

RESULTS = ROOT / "docs" / "results"
RECORDS = RESULTS / "runs" / "ggl_equal_compute.jsonl"
REPORT = RESULTS / "ggl_equal_compute.md"
OLD = {"convnet": "reproduce/main.jsonl", "resnet18": "runs/gifd_main.jsonl"}   # the committed comparisons


def specs(model: str, images: int) -> list[RunSpec]:
    return [RunSpec("ggl", index=5 + 1000 * k, model=model, preset="laptop", tag="ggl") for k in range(images)]


def _by_index(records, keep) -> dict[int, dict]:
    return {RunSpec.of(r).index: r for r in records if keep(RunSpec.of(r))}


def section(model: str) -> list[str]:
    new_ggl = _by_index(read_records(RECORDS), lambda s: s.model == model and s.method == "ggl")
    old = read_records(RESULTS / OLD[model])
    old_ggl = _by_index(old, lambda s: s.method == "ggl" and s.tag == "ggl")
    old_gifd = _by_index(old, lambda s: s.method == "gifd" and s.tag == "gifd")
    selection = read_records(RESULTS / "runs" / "stage_selection.jsonl")
    new_gifd = _by_index(selection, lambda s: s.model == model and s.tag == "gifd | clean | select=loss")
    held_gifd = _by_index(selection, lambda s: s.model == model and s.tag == "gifd | clean | select=holdout")
    rerun = bool(new_gifd)
    if not new_gifd:                  # no loss-rule run made here: the committed one is the same code path
        new_gifd = old_gifd
    images = sorted(i for i in new_ggl if i in old_ggl and i in old_gifd)
    if not images:
        return []
    lines = [f"## {model} ({len(images)} images)", "", "| | PSNR (dB) | evaluations | s / run |", "|---|---|---|---|"]
    quote = []   # the numbers as `key: value` lines of a quote block (gifd_lite.results), keys prefixed by the model
    for name, key, recs in (("GGL before (population 18, 1,200 evaluations)", "ggl before", old_ggl),
                            ("GGL now (population 50, GIFD's compute)", "ggl now", new_ggl),
                            ("GIFD before (lowest-loss stage)", "gifd before", old_gifd),
                            ("GIFD now, `select=auto` (here: the lowest loss, as before; "
                             + ("run again in this session)" if rerun else "the committed runs, not run again)"),
                             "gifd now", new_gifd),
                            ("GIFD with `select=holdout`", "gifd holdout", held_gifd)):
        have = [i for i in images if i in recs]
        if not have:
            continue
        m, h = mean_ci([recs[i]["psnr"] for i in have])
        quote += [f"{model} {key} psnr: {m:.6f}", f"{model} {key} psnr ci: {h:.6f}", f"{model} {key} n: {len(have)}",
                  f"{model} {key} seconds: {mean_ci([recs[i]['wall_seconds'] for i in have])[0]:.6f}"]
        lines.append(f"| {name} | {m:.2f} ± {h:.2f} (n={len(have)}) | "
                     f"{mean_ci([recs[i]['iterations'] for i in have])[0]:.0f} | "
                     f"{mean_ci([recs[i]['wall_seconds'] for i in have])[0]:.0f} |")
    lines += ["", "| paired | mean difference (dB) | GIFD higher on |", "|---|---|---|"]
    for name, key, gifd, ggl in (("GIFD − GGL before", "gifd before - ggl before", old_gifd, old_ggl),
                                 ("GIFD − GGL now", "gifd now - ggl now", new_gifd, new_ggl),
                                 ("GIFD (holdout) − GGL now", "gifd holdout - ggl now", held_gifd, new_ggl),
                                 ("GGL now − GGL before", "ggl now - ggl before", new_ggl, old_ggl)):
        have = [i for i in images if i in gifd and i in ggl]
        if not have:
            continue
        diffs = [gifd[i]["psnr"] - ggl[i]["psnr"] for i in have]
        m, h = mean_ci(diffs)
        lines.append(f"| {name} | {m:+.2f} ± {h:.2f} | {sum(d > 0 for d in diffs)} of {len(diffs)} |")
        quote += [f"{model} {key}: {m:.6f}", f"{model} {key} ci: {h:.6f}",
                  f"{model} {key} higher: {sum(d > 0 for d in diffs)}"]
    return lines + ["", "```quote", *quote, "```", ""]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", nargs="*", default=[], help="model:images to run first, e.g. convnet:10")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    for item in args.run:
        model, n = item.split(":")
        run_table(specs(model, int(n)), RECORDS, backend="dask", workers=args.workers,
                  on_record=lambda r: print(r["spec"]["model"], r["spec"]["index"], round(r["psnr"], 2), flush=True))
    lines = ["# GGL at its own population and GIFD's compute", "",
             "Regenerate: `GIFD_DATA=../shared/data GIFD_THREADS=1 .venv/bin/python tools/measure_ggl_equal_compute.py "
             "--run convnet:10 resnet18:5` (resumable).", "",
             "Laptop preset, untrained model in eval mode, batch 1, labels inferred, test images 5, 1005, …; one "
             "thread per run, two runs at a time; equal compute shows in the seconds of the runs made in this session "
             "(the 'before' runs were timed under another load). 'Before': the committed comparisons (`reproduce/main.jsonl` on the "
             "ConvNet, `runs/gifd_main.jsonl` on ResNet-18). Means ± 95% t-CI; paired differences on the same "
             "images.", ""]
    for model in OLD:
        lines += section(model)
    REPORT.write_text("\n".join(lines) + "\n")
    print(REPORT.read_text())


if __name__ == "__main__":
    main()
