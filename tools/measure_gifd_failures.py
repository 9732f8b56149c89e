"""GIFD's failures on ResNet-18 (issue 15): how often each attack stays below 25 dB, and what cuts GIFD's.

    GIFD_DATA=../shared/data GIFD_THREADS=1 .venv/bin/python tools/measure_gifd_failures.py \
        [--run default holdout restarts4 gias] [--images 10] [--workers 2]

The committed ResNet-18 comparison (`docs/results/runs/gifd_main.jsonl`: laptop preset, untrained model in eval
mode, batch 1, labels inferred, test images 5, 1005, …, 9005) gives every attack's share of runs below 25 dB.
Each variant is then GIFD on the same images, paired against GIAS run with the same prior:

- ``default``: GIFD as it is now (``select=auto``; with the prior shipped now),
- ``holdout``: restarts and stages chosen on the held-out part of the update (``select=holdout``),
- ``restarts4``: four restarts of half the iterations each, the same compute as two restarts,
- ``gias``: GIAS with the prior shipped now, the paired baseline;
- ``default+holdout`` (derived, not run): of the ``default`` and ``holdout`` runs on an image, the one whose output
  has the lower gradient loss on the whole update (no ground truth; four full-length restarts, twice the compute).

Records go to docs/results/runs/gifd_failures.jsonl (resumable; a record made with another prior is stale and
is run again), the report to docs/results/gifd_failures.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gifd_lite.experiments import RunSpec, current_records, read_records  # noqa: E402
from gifd_lite.paired import paired_difference  # noqa: E402
from gifd_lite.reproduce import mean_ci, run_table  # noqa: E402

RESULTS = ROOT / "docs" / "results"
COMMITTED = RESULTS / "runs" / "gifd_main.jsonl"
RECORDS = RESULTS / "runs" / "gifd_failures.jsonl"
REPORT = RESULTS / "gifd_failures.md"
FAIL_DB = 25.0
VARIANTS = {
    "default": dict(method="gifd"),
    "holdout": dict(method="gifd", select="holdout"),
    "restarts4": dict(method="gifd", overrides={"gifd": {"restarts": 4, "iterations": [60, 60, 60, 60, 60]}}),
    "gias": dict(method="gias"),
}


BOTH = "default+holdout"          # derived from two runs per image, not run on its own


def specs(variant: str, images: int) -> list[RunSpec]:
    return [RunSpec(index=5 + 1000 * k, model="resnet18", preset="laptop", tag=f"failures | {variant}",
                    **VARIANTS[variant]) for k in range(images)]


def _by_index(records: list[dict]) -> dict[int, float]:
    return {RunSpec.of(r).index: r["psnr"] for r in records}


def committed_shares() -> tuple[list[str], list[str]]:
    """Share of runs below 25 dB for every attack of the committed comparison."""
    lines = ["## The committed comparison (`runs/gifd_main.jsonl`)", "",
             "Made with the prior shipped before issue 17; its GIFD chose the lowest-loss stage, which is what "
             "`select=auto` still does on a clean single-image update.", "",
             f"| attack | runs | below {FAIL_DB:.0f} dB | images below |", "|---|---|---|---|"]
    quote = []
    for method in ("ig", "ggl", "gias", "gifd"):
        psnr = _by_index([r for r in read_records(COMMITTED) if RunSpec.of(r).method == method
                          and RunSpec.of(r).tag == method])
        if not psnr:
            continue
        low = sorted(i for i, v in psnr.items() if v < FAIL_DB)
        lines.append(f"| {method} | {len(psnr)} | {len(low)} | {', '.join(map(str, low)) or '—'} |")
        quote += [f"committed {method} below: {len(low)}", f"committed {method} runs: {len(psnr)}"]
    return lines + [""], quote


def variant_section(images: int) -> tuple[list[str], list[str]]:
    done = current_records(RECORDS)
    runs = {v: {s.index: done[s.key()] for s in specs(v, images) if s.key() in done} for v in VARIANTS}
    results = {v: {i: r["psnr"] for i, r in by_image.items()} for v, by_image in runs.items()}
    # no ground truth: of the default and the held-out run on an image, keep the one whose output matches the whole
    # update better (its final gradient loss); four full-length restarts in all, twice GIFD's compute
    results[BOTH] = {i: min((runs["default"][i], runs["holdout"][i]), key=lambda r: r["gradient_loss"])["psnr"]
                     for i in runs["default"] if i in runs["holdout"]}
    if not any(results.values()):
        return ["## Variants", "", "Not run yet with the prior shipped now (`--run ...`).", ""], []
    lines = ["## Variants, with the prior shipped now", "",
             "Paired rows compare each variant with GIAS (and with GIFD's default) on the images both have: mean ± "
             "95% t-interval, how often the variant was higher, and the Wilcoxon signed-rank p.", "",
             f"| variant | runs | PSNR (dB) | below {FAIL_DB:.0f} dB | − GIAS, paired (dB) | higher than GIAS on "
             "| Wilcoxon p | − default, paired (dB) |", "|---|---|---|---|---|---|---|---|"]
    quote = []
    for variant, psnr in results.items():
        if not psnr:
            continue
        m, h = mean_ci(list(psnr.values()))
        low = sum(v < FAIL_DB for v in psnr.values())
        cells = [variant, str(len(psnr)), f"{m:.2f} ± {h:.2f}" if len(psnr) > 1 else f"{m:.2f}", str(low)]
        for ref in ("gias", "default"):
            common = [i for i in psnr if i in results[ref]] if variant != ref else []
            if not common:
                cells += ["", "", ""] if ref == "gias" else [""]
                continue
            test = paired_difference([psnr[i] for i in common], [results[ref][i] for i in common])
            p = test["wilcoxon_p"]
            cells += ([f"{test['mean']:+.2f} ± {test['ci']:.2f}", f"{test['higher']} of {test['n']}",
                       "n/a" if p != p else f"{p:.3f}"] if ref == "gias" else [f"{test['mean']:+.2f} ± {test['ci']:.2f}"])
            quote += [f"{variant} - {ref}: {test['mean']:.6f}", f"{variant} - {ref} ci: {test['ci']:.6f}",
                      f"{variant} - {ref} higher: {test['higher']}", f"{variant} - {ref} n: {test['n']}",
                      f"{variant} - {ref} wilcoxon p: {p:.6f}"]
        lines.append("| " + " | ".join(cells) + " |")
        quote += [f"{variant} psnr: {m:.6f}", f"{variant} below: {low}", f"{variant} runs: {len(psnr)}"]
    indices = sorted({i for psnr in results.values() for i in psnr})
    shown = [v for v in results if results[v]]
    lines += ["", f"Per image (PSNR, dB; ↓: below {FAIL_DB:.0f} dB):", "",
              "| image | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]
    for i in indices:
        row = [f"{results[v][i]:.2f}" + (" ↓" if results[v][i] < FAIL_DB else "") if i in results[v] else ""
               for v in shown]
        lines.append(f"| {i} | " + " | ".join(row) + " |")
    return lines + [""], quote


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", nargs="*", default=[], choices=list(VARIANTS))
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.run:  # image by image, so a run cut short still leaves every variant paired on its first images
        todo = sorted((s for v in args.run for s in specs(v, args.images)), key=lambda s: s.index)
        run_table(todo, RECORDS, backend="dask", workers=args.workers,
                  on_record=lambda r: print(r["spec"]["tag"], r["spec"]["index"], round(r["psnr"], 2), flush=True))
    committed, quote_a = committed_shares()
    variants, quote_b = variant_section(args.images)
    lines = ["# GIFD's failures on ResNet-18", "",
             "Regenerate: `GIFD_DATA=../shared/data GIFD_THREADS=1 .venv/bin/python tools/measure_gifd_failures.py "
             "--run default holdout restarts4 gias` (resumable).", "",
             f"A run *fails* here when it ends below {FAIL_DB:.0f} dB PSNR. Laptop preset, ResNet-18 untrained in eval "
             "mode, batch 1, labels inferred, test images 5, 1005, …; paired differences are on the same images.", "",
             *committed, *variants, "```quote", *quote_a, *quote_b, "```", ""]
    REPORT.write_text("\n".join(lines) + "\n")
    print(REPORT.read_text())


if __name__ == "__main__":
    main()
