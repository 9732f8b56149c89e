"""Where does GIFD's l1 ball matter? Issue 4, acceptance 3; writes docs/results/gifd_l1.md.

    GIFD_DATA=../shared/data .venv/bin/python tools/measure_l1_ball.py [--images 5] [--settings NAME ...]

For every setting and image: GIFD runs its stages before the deep stage once (laptop preset: 120 steps per
stage, 2 restarts, radius 0.3), then the deep stage is searched again *from that shared start* with each
radius ρ in RADII (None: no ball), 120 steps each (``gifd_lite.attacks.gifd.radius_sweep``, notebook 06). Only
the ball differs, so a radius is compared with no ball image by image (paired differences, mean ± 95% CI).

The FL model is the ConvNet: the project's trained global model is a ConvNet (the shipped classifier), and the
ConvNet is ten times cheaper per step than ResNet-18 on this CPU, which pays for batch 8 and FedAvg. One record
per (setting, image) is appended to docs/results/runs/gifd_l1.jsonl, so a killed run resumes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from gifd_lite import __version__, data, fl, pipeline  # noqa: E402
from gifd_lite.attacks.gifd import radius_sweep  # noqa: E402
from gifd_lite.config import get_preset  # noqa: E402
from gifd_lite.experiments import Context, read_records  # noqa: E402
from gifd_lite.labels import infer_labels  # noqa: E402
from gifd_lite.metrics import evaluate  # noqa: E402
from gifd_lite.reproduce import mean_ci  # noqa: E402
from gifd_lite.runtime import seed_everything, set_threads  # noqa: E402

RADII = (None, 1.0, 0.3, 0.1, 0.03)
MODEL = "convnet"
SETTINGS = {   # name: (ThreatModel fields and batch size, deep stage)
    "clean B=1": ({}, 4),
    "clean B=1, deep stage 16x16": ({}, 3),
    "noise σ=0.01": ({"defense": "noise", "defense_param": 0.01}, 4),
    "trained model": ({"trained_model": True}, 4),
    "FedAvg T=5, lr 0.1": ({"update": "fedavg", "fedavg_steps": 5, "fedavg_lr": 0.1}, 4),
    "batch 8": ({"batch_size": 8}, 4),
}


def measure(setting: str, index: int, context: Context, seed: int = 0) -> dict:
    fields, deep_stage = SETTINGS[setting]
    seed_everything(seed)
    cfg = get_preset("laptop").gifd
    batch = fields.get("batch_size", 1)
    x, y, indices = data.victim_batch(context.dataset(), index, batch)
    model = context.model(MODEL, fields.get("trained_model", False))
    model.eval()
    tm = fl.ThreatModel(model=MODEL, **fields)
    G = context.generator("cifar10")
    t0 = time.perf_counter()
    update = pipeline.observe(model, x, y, tm, seed=seed)
    labels = infer_labels(model, update.tensors, batch).to(context.device)
    first, results = radius_sweep(model, update.tensors, labels, tm, G, cfg, deep_stage, RADII, seed=seed)
    before = evaluate(first.images, x, with_lpips=True)
    rows = []
    for rho, res in zip(RADII, results):
        m = evaluate(res.images, x, with_lpips=True)
        rows.append({"radius": rho, "loss": res.loss, "psnr": m["psnr"], "ssim": m["ssim"], "lpips": m["lpips"]})
    return {"setting": setting, "index": index, "indices": indices, "model": MODEL, "deep_stage": G.STAGES[deep_stage],
            "threat_model": tm.as_dict(), "seed": seed, "start": {"loss": first.gradient_loss, "psnr": before["psnr"],
                                                                  "ssim": before["ssim"], "best_layer": first.history.extra["best_layer"]},
            "radii": rows, "seconds": round(time.perf_counter() - t0, 1), "threads": torch.get_num_threads(),
            "version": __version__, "torch": torch.__version__}


def fmt(v, digits=2):
    m, h = v
    return f"{m:+.{digits}f} ± {h:.{digits}f}" if math.isfinite(h) else f"{m:+.{digits}f}"


def plain(v, digits=2):
    m, h = v
    return f"{m:.{digits}f} ± {h:.{digits}f}" if math.isfinite(h) else f"{m:.{digits}f}"


def write_markdown(records: list[dict], path: Path, command: str):
    lines = ["# The l1 ball: where does it matter? (issue 4, acceptance 3)", "", f"Regenerate: `{command}`", "",
             "Per setting and image, GIFD's stages before the deep stage run once; the deep stage is then searched "
             "again from that shared start with each radius ρ (× the l1 norm of the stage's starting features; "
             "`free` = no ball), 120 Adam steps each. Δ columns are paired differences to `free` on the same image "
             "(mean ± 95% t-CI over images): Δ PSNR > 0 or Δ LPIPS < 0 means the ball helped. `start` is the "
             "shared run before the deep stage. LPIPS is n/a where its backbone could not be downloaded.", "",
             "The last column is what GIFD itself would return: the lower-loss of the shared start and the deep "
             "stage (its selection rule, no ground truth).", "",
             "| setting | n | radius | loss | PSNR (dB) | Δ PSNR vs free | SSIM | Δ SSIM vs free | LPIPS | GIFD output PSNR |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    verdicts, quotes = [], []
    for setting in SETTINGS:
        recs = [r for r in records if r["setting"] == setting]
        if not recs:
            continue
        start = [r["start"]["psnr"] for r in recs]
        lines.append(f"| {setting} | {len(recs)} | start | {plain(mean_ci([r['start']['loss'] for r in recs]), 4)} | "
                     f"{plain(mean_ci(start))} | | | | | |")
        quotes += [f"{setting}, n: {len(recs)}", f"{setting}, start, psnr: {mean_ci(start)[0]:.6f}"]
        free = {r["index"]: next(x for x in r["radii"] if x["radius"] is None) for r in recs}
        best_gain = None
        for rho in RADII:
            rows = [(r["index"], next(x for x in r["radii"] if x["radius"] == rho)) for r in recs]
            psnr = mean_ci([x["psnr"] for _, x in rows])
            ssim = mean_ci([x["ssim"] for _, x in rows])
            loss = mean_ci([x["loss"] for _, x in rows])
            lp = [x["lpips"] for _, x in rows if x["lpips"] is not None]
            name = "free" if rho is None else f"{rho:g}"
            if rho is None:
                dp = ds = ""
            else:
                d = mean_ci([x["psnr"] - free[i]["psnr"] for i, x in rows])
                dp, ds = fmt(d), fmt(mean_ci([x["ssim"] - free[i]["ssim"] for i, x in rows]), 3)
                if best_gain is None or d[0] > best_gain[1][0]:
                    best_gain = (rho, d)
            quotes += [f"{setting}, {name}, psnr: {psnr[0]:.6f}", f"{setting}, {name}, psnr ci: {psnr[1]:.6f}"]
            if rho is not None:
                quotes += [f"{setting}, {name} - free, psnr: {d[0]:.6f}", f"{setting}, {name} - free, psnr ci: {d[1]:.6f}",
                           f"{setting}, {name} - free, ssim: "
                           f"{mean_ci([x['ssim'] - free[i]['ssim'] for i, x in rows])[0]:.6f}"]
            chosen = [x["psnr"] if x["loss"] < r["start"]["loss"] else r["start"]["psnr"]
                      for r, (_, x) in zip(recs, rows)]
            lines.append(f"| | | {name} | {plain(loss, 4)} | {plain(psnr)} | {dp} | {plain(ssim, 3)} | {ds} | "
                         f"{plain(mean_ci(lp), 3) if lp else 'n/a'} | {plain(mean_ci(chosen))} |")
        if best_gain is not None:
            rho, (m, h) = best_gain
            sig = math.isfinite(h) and m - h > 0
            material = m >= 0.5
            verdicts.append(f"- **{setting}** (n = {len(recs)}): best radius {rho:g} changes PSNR by {m:+.2f} dB "
                            + (f"(95% CI ± {h:.2f}) " if math.isfinite(h) else "(one image, no interval) ") + "against no ball: "
                            + ("the ball helps, and the interval excludes zero." if sig and material else
                               "a tiny effect (< 0.5 dB), though the interval excludes zero." if sig else
                               "no clear effect (the interval includes zero)." if m > 0 else
                               "no gain from the ball."))
    lines += ["", "## Verdict per setting", "",
              "The best of four radii is picked per setting, so a single interval that barely excludes zero is weak "
              "evidence; the intervals below are not corrected for that choice.", ""] + verdicts
    lines += ["", "Quotable values (`gifd_lite.results`; ρ = `free` is no ball; `A - free` is paired on the same "
              "images):", "", "```quote"] + quotes + ["```"]
    if records:
        lines += ["", f"gifd_lite {records[0]['version']}, torch {records[0]['torch']}, model {MODEL}, "
                      f"{records[0]['threads']} threads, on this project's 2-core CPU (no GPU)."]
    path.write_text("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=5, help="test images 5, 1005, ... per setting")
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", default=str(ROOT / "docs" / "results"))
    parser.add_argument("--report", action="store_true", help="only rewrite the table from the records so far")
    args = parser.parse_args()
    set_threads()
    out = Path(args.out)
    runs = out / "runs" / "gifd_l1.jsonl"
    runs.parent.mkdir(parents=True, exist_ok=True)
    done = {(r["setting"], r["index"]) for r in read_records(runs)}
    if not args.report:
        context = Context()
        for i in range(args.images):           # image-major: every setting gets its first images first
            for setting in args.settings:
                index = 5 + 1000 * i
                if (setting, index) in done:
                    continue
                rec = measure(setting, index, context)
                with runs.open("a") as fh:
                    fh.write(json.dumps(rec) + "\n")
                print(f"{setting:28s} image {index:5d} {rec['seconds']:6.0f} s  start {rec['start']['psnr']:5.2f}  "
                      + "  ".join(f"{('free' if x['radius'] is None else x['radius'])}: {x['psnr']:.2f}" for x in rec["radii"]),
                      flush=True)
    command = "GIFD_DATA=../shared/data .venv/bin/python tools/measure_l1_ball.py --images " + str(args.images)
    write_markdown(read_records(runs), out / "gifd_l1.md", command)
    print(f"wrote {out / 'gifd_l1.md'}")


if __name__ == "__main__":
    main()
