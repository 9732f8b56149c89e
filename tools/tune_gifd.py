"""The sweep that chose GIFD's defaults (stages, learning rates, radius); writes docs/results/gifd_tuning.md.

    GIFD_DATA=../shared/data .venv/bin/python tools/tune_gifd.py [--round 1|2|all] [--worker W --workers N]

One restart per run, resnet18 untrained (eval mode), batch 1, inferred labels. Every variant is spelled out in
full, so the records in docs/results/runs/gifd_tuning.jsonl do not depend on the current defaults.
Round 1 compared the variants on test images 5, 1005, 2005 (which are also 3 of the 10 acceptance images);
round 2 checked the chosen setting, and the same without the l1 ball, on images 7, 1007, 2007.
Run two workers with one thread each (GIFD_THREADS=1) to use both cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gifd_lite.experiments import RunSpec, read_records, sweep  # noqa: E402

FOUR = [0, 1, 2, 3]
FIVE = [0, 1, 2, 3, 4]
ROUND1 = {
    "4 stages, lr .1/.03, r .3": dict(stages=FOUR, iterations=[150] * 4, lr=[0.1, 0.03, 0.03, 0.03], radius=[None, .3, .3, .3]),
    "4 stages, lr .1, r .3": dict(stages=FOUR, iterations=[150] * 4, lr=[0.1] * 4, radius=[None, .3, .3, .3]),
    "4 stages, lr .1, no ball": dict(stages=FOUR, iterations=[150] * 4, lr=[0.1] * 4, radius=[None] * 4),
    "4 stages, lr .1, r .1": dict(stages=FOUR, iterations=[150] * 4, lr=[0.1] * 4, radius=[None, .1, .1, .1]),
    "5 stages, lr .1, r .3": dict(stages=FIVE, iterations=[120] * 5, lr=[0.1] * 5, radius=[None, .3, .3, .3, .3]),
    "stages 0,2,3,4, lr .1, r .3": dict(stages=[0, 2, 3, 4], iterations=[150] * 4, lr=[0.1] * 4, radius=[None, .3, .3, .3]),
}
ROUND2 = {
    "5 stages, lr .1, r .3": ROUND1["5 stages, lr .1, r .3"],
    "5 stages, lr .1, no ball": dict(stages=FIVE, iterations=[120] * 5, lr=[0.1] * 5, radius=[None] * 5),
    "5 stages, lr .1, r 1": dict(stages=FIVE, iterations=[120] * 5, lr=[0.1] * 5, radius=[None, 1., 1., 1., 1.]),
}
OUT = ROOT / "docs" / "results"
DECISION = """## Decision

The defaults (`gifd_lite/config.py`): **all five stages (latent, 4x4, 8x8, 16x16, 32x32), 120 Adam steps each
at lr 0.1, l1 radius 0.3 × the stage's starting l1 norm, 2 restarts** (1,200 iterations in all). Adding the
32x32 stage helped most on the hardest image (5: 16 → 25 dB) and a lower feature learning rate (0.03) held the
deeper stages back. Removing the ball was as good or better on these clean batch-1 gradients (round 2: 32.7 vs
28.5 dB), as the issue's prototype also saw; the ball stays in the default because it is the method, and
notebook 06 / `gifd_l1.md` look for the settings where it matters. Read the means with care: three images, one
restart, and near-identical settings differ by 7 dB on one image (radius 1 vs 0.3 on image 1007), so only
differences of several dB across all images mean much.
"""


def specs(round_: str) -> list[RunSpec]:
    out = []
    if round_ in ("1", "all"):
        out += [RunSpec("gifd", index=i, overrides={"gifd": dict(v, restarts=1)}, tag=f"round 1 | {name}")
                for i in (5, 1005, 2005) for name, v in ROUND1.items()]
    if round_ in ("2", "all"):
        out += [RunSpec("gifd", index=i, overrides={"gifd": dict(v, restarts=1)}, tag=f"round 2 | {name}")
                for i in (7, 1007, 2007) for name, v in ROUND2.items()]
    return out


def write_markdown(records: list[dict]):
    lines = ["# How GIFD's defaults were chosen", "",
             "Regenerate: `GIFD_DATA=../shared/data .venv/bin/python tools/tune_gifd.py --round all` "
             "(two workers: `--worker 0 --workers 2` and `--worker 1 --workers 2`, each with `GIFD_THREADS=1`).", "",
             "One restart per run; resnet18 untrained, eval mode, batch 1, inferred labels; output = the lowest "
             "gradient-loss stage. Per-stage columns: PSNR (dB) of each stage's result.", ""]
    for round_ in ("round 1", "round 2"):
        rs = [r for r in records if r["spec"]["tag"].startswith(round_)]
        if not rs:
            continue
        images = sorted({r["spec"]["index"] for r in rs})
        lines += [f"## {round_.capitalize()} (images {', '.join(map(str, images))})", "",
                  "| variant | " + " | ".join(f"image {i}" for i in images) + " | mean | per stage (image by image) |",
                  "|---|" + "---|" * (len(images) + 2)]
        for tag in dict.fromkeys(r["spec"]["tag"] for r in rs):
            cell = {r["spec"]["index"]: r for r in rs if r["spec"]["tag"] == tag}
            vals = [cell[i]["psnr"] for i in images if i in cell]
            stages = "; ".join("/".join(f"{s['psnr']:.0f}" for s in cell[i]["stages"]) for i in images if i in cell)
            lines.append(f"| {tag.split(' | ')[1]} | " + " | ".join(f"{cell[i]['psnr']:.1f}" if i in cell else ""
                                                                   for i in images)
                         + f" | {sum(vals) / len(vals):.1f} | {stages} |")
        lines.append("")
    (OUT / "gifd_tuning.md").write_text("\n".join(lines) + "\n" + DECISION)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--round", default="all", choices=["1", "2", "all"])
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    runs = OUT / "runs" / "gifd_tuning.jsonl"
    todo = specs(args.round)[args.worker::args.workers]
    sweep(todo, runs, on_record=lambda r: print(r["spec"]["tag"], r["spec"]["index"], round(r["psnr"], 2), flush=True))
    wanted = {s.key() for s in specs("all")}
    write_markdown([r for r in read_records(runs) if RunSpec.of(r).key() in wanted])


if __name__ == "__main__":
    main()
