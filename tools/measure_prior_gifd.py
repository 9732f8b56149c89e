"""GIFD with the strongly conditioned prior against the default one, paired on the same images (issue 17, acc. 4).

    GIFD_DATA=../shared/data GIFD_THREADS=1 .venv/bin/python tools/measure_prior_gifd.py \
        [--run convnet resnet18] [--workers 2] [--strong NAME]

Laptop preset, untrained FL model in eval mode, batch 1, labels inferred, test images 5, 1005, ... (ten on the
ConvNet, five on ResNet-18, the issue's counts). For each image GIFD runs once with the default prior `cifar10`
(the shared design) and once with `cifar10-strong` (the strong design, docs/results/priors.md); the difference is
paired on the image. Records go to docs/results/runs/prior_gifd.jsonl (resumable; a record made with another
checkpoint is stale and run again), the report to docs/results/prior_gifd.md; ``--strong NAME`` pairs another
strongly conditioned prior against the default instead (report: prior_gifd_<NAME>.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gifd_lite.experiments import RunSpec, current_records  # noqa: E402
from gifd_lite.reproduce import mean_ci, run_table  # noqa: E402

RESULTS = ROOT / "docs" / "results"
RECORDS = RESULTS / "runs" / "prior_gifd.jsonl"
REPORT = RESULTS / "prior_gifd.md"
IMAGES = {"convnet": 10, "resnet18": 5}
PRIORS = {"default": None, "strong": "cifar10-strong"}


def specs(model: str, prior: str) -> list[RunSpec]:
    return [RunSpec(method="gifd", index=5 + 1000 * k, model=model, preset="laptop", prior=PRIORS[prior],
                    tag=f"prior | {prior}") for k in range(IMAGES[model])]


def section(model: str, done: dict) -> tuple[list[str], list[str]]:
    psnr = {p: {s.index: done[s.key()] for s in specs(model, p) if s.key() in done} for p in PRIORS}
    if not psnr["strong"]:
        return [f"## {model}", "", "Not run yet (`--run " + model + "`).", ""], []
    lines = [f"## {model}", "", "| prior | runs | PSNR (dB) | stage chosen (count) |", "|---|---|---|---|"]
    quote = []
    for p, runs in psnr.items():
        if not runs:
            continue
        m, h = mean_ci([r["psnr"] for r in runs.values()])
        stages = {}
        for r in runs.values():
            stages[r.get("best_layer")] = stages.get(r.get("best_layer"), 0) + 1
        chosen = ", ".join(f"{k} ({v})" for k, v in sorted(stages.items(), key=lambda kv: -kv[1]))
        lines.append(f"| `{PRIORS[p] or 'cifar10'}` | {len(runs)} | {m:.2f} ± {h:.2f} | {chosen} |")
        quote += [f"{model} {p} psnr: {m:.6f}", f"{model} {p} runs: {len(runs)}"]
    both = sorted(set(psnr["default"]) & set(psnr["strong"]))
    if both:
        diff = [psnr["strong"][i]["psnr"] - psnr["default"][i]["psnr"] for i in both]
        d, dh = mean_ci(diff)
        lines += ["", f"Strong minus default, paired on {len(both)} images: **{d:+.2f} ± {dh:.2f} dB**; the strong "
                  f"prior is higher on {sum(x > 0 for x in diff)} of {len(both)}.", "",
                  "| image | default (dB) | strong (dB) | strong − default |", "|---|---|---|---|"]
        lines += [f"| {i} | {psnr['default'][i]['psnr']:.2f} | {psnr['strong'][i]['psnr']:.2f} | {x:+.2f} |"
                  for i, x in zip(both, diff)]
        quote += [f"{model} strong - default: {d:.6f}", f"{model} strong - default ci: {dh:.6f}",
                  f"{model} strong higher: {sum(x > 0 for x in diff)}", f"{model} paired: {len(both)}"]
    return lines + [""], quote


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", nargs="*", default=[], choices=list(IMAGES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--strong", default=PRIORS["strong"], help="the prior paired against the default")
    args = parser.parse_args()
    PRIORS["strong"] = args.strong
    report = REPORT if args.strong == "cifar10-strong" else RESULTS / f"prior_gifd_{args.strong}.md"
    for model in args.run:
        todo = sorted((s for p in PRIORS for s in specs(model, p)), key=lambda s: s.index)   # pairs complete early
        run_table(todo, RECORDS, backend="dask", workers=args.workers,
                  on_record=lambda r: print(r["spec"]["tag"], r["spec"]["model"], r["spec"]["index"],
                                            round(r["psnr"], 2), flush=True))
    done = current_records(RECORDS) if RECORDS.exists() else {}
    body, quote = [], []
    for model in IMAGES:
        lines, q = section(model, done)
        body += lines
        quote += q
    flag = "" if report == REPORT else f" --strong {args.strong}"
    lines = [f"# GIFD with the strongly conditioned prior `{args.strong}`, paired against the default prior", "",
             "Regenerate: `GIFD_DATA=../shared/data GIFD_THREADS=1 .venv/bin/python tools/measure_prior_gifd.py "
             f"--run convnet resnet18{flag}` (resumable).", "",
             "Laptop preset, untrained FL model in eval mode, batch 1, labels inferred, test images 5, 1005, …; "
             f"`cifar10` is the shipped default (shared conditioning), `{args.strong}` a strongly conditioned prior "
             "of issue 17 (docs/results/priors.md). Mean ± 95% t-interval; the difference is paired on the image.", "",
             *body, "```quote", *quote, "```", ""]
    report.write_text("\n".join(lines) + "\n")
    print(report.read_text())


if __name__ == "__main__":
    main()
