"""Measure the foundation's acceptance numbers and write docs/results/foundation.md (and .csv).

    GIFD_DATA=../shared/data .venv/bin/python tools/measure_foundation.py [--quick]

Runs, through the CLI (one process per image, as a user would): iDLG on lenet for test images
0, 1000, ..., 9000 (laptop preset); IG on convnet and resnet18 (untrained, eval mode, batch 1, laptop);
and, in-process, label inference accuracy at batch 1 (50 images) and batches of 4 and 8 with distinct labels.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gifd_lite import data, fl, labels, models  # noqa: E402

INDICES = list(range(0, 10000, 1000))


def cli_attack(method: str, model: str, index: int, preset: str, out: Path) -> dict:
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "gifd_lite", "attack", "--method", method, "--model", model, "--index", str(index),
           "--preset", preset, "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    record = json.loads(result.stdout.strip().splitlines()[-1])
    record["wall_seconds"] = round(time.perf_counter() - start, 1)
    return record


def label_accuracy_table(test_set) -> list[dict]:
    rows = []
    lenet = models.build_model("lenet").eval()
    hits = []
    for i in torch.linspace(0, len(test_set) - 1, 50).long().tolist():
        x, y, _ = data.victim_batch(test_set, i, 1)
        g = fl.fedsgd_gradients(lenet, data.normalize(x), y)
        hits.append(labels.label_accuracy(labels.idlg_label(lenet, g), y))
    rows.append({"model": "lenet", "batch_size": 1, "batches": 50, "accuracy": sum(hits) / len(hits)})
    for name in ("resnet18", "convnet"):
        model = models.build_model(name).eval()
        for b in (1, 4, 8):
            accs = []
            for i in range(0, 10000, 200):
                x, y, _ = data.victim_batch(test_set, i, b)
                g = fl.fedsgd_gradients(model, data.normalize(x), y)
                accs.append(labels.label_accuracy(labels.infer_labels(model, g, b), y))
            rows.append({"model": name, "batch_size": b, "batches": len(accs), "accuracy": sum(accs) / len(accs)})
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="three images per attack (a check, not the table)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "results"))
    args = parser.parse_args()
    indices = INDICES[:3] if args.quick else INDICES
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = ROOT / "runs" / "measure_foundation"
    test_set = data.load_cifar10("test")

    label_rows = label_accuracy_table(test_set)
    attack_rows = []
    for method, model in (("idlg", "lenet"), ("ig", "convnet"), ("ig", "resnet18")):
        for i in indices:
            r = cli_attack(method, model, i, "laptop", runs / f"{method}_{model}_{i}")
            attack_rows.append({k: r[k] for k in ("method", "model", "psnr", "ssim", "lpips", "label_accuracy",
                                                  "iterations", "seconds", "seconds_per_iteration")}
                               | {"index": i, "wall_seconds": r["wall_seconds"]})
            print(json.dumps(attack_rows[-1]), flush=True)

    with open(out / "foundation_attacks.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(attack_rows[0]))
        w.writeheader()
        w.writerows(attack_rows)

    lines = ["# Foundation: measured numbers (DLG/iDLG, IG, label inference)", "",
             f"Measured {time.strftime('%Y-%m-%d')} on {platform.processor() or platform.machine()}, "
             f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, device cpu; "
             f"data: {test_set.source}. LPIPS: null where its AlexNet weights could not be downloaded.", "",
             "Regenerate: `GIFD_DATA=../shared/data .venv/bin/python tools/measure_foundation.py` "
             "(each attack row is one `python -m gifd_lite attack --method M --model X --index N --preset laptop`).",
             "", "## Attacks, batch 1, laptop preset, untrained models in eval mode, inferred labels", "",
             "| method | model | images | mean PSNR (dB) | min PSNR | images ≥ 30 dB | mean SSIM | label acc. | "
             "s / iteration | mean attack s | max wall s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for method, model in (("idlg", "lenet"), ("ig", "convnet"), ("ig", "resnet18")):
        rows = [r for r in attack_rows if r["method"] == method and r["model"] == model]
        n = len(rows)
        mean = lambda k: sum(r[k] for r in rows) / n  # noqa: E731
        lines.append(f"| {method} | {model} | {n} | {mean('psnr'):.2f} | {min(r['psnr'] for r in rows):.2f} | "
                     f"{sum(r['psnr'] >= 30 for r in rows)}/{n} | {mean('ssim'):.3f} | {mean('label_accuracy'):.0%} | "
                     f"{mean('seconds_per_iteration'):.4f} | {mean('seconds'):.1f} | "
                     f"{max(r['wall_seconds'] for r in rows):.1f} |")
    lines += ["", "Per image: `foundation_attacks.csv`.", "",
              "## Label inference from the last layer (distinct labels, untrained models)", "",
              "| model | batch size | batches | accuracy |", "|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['batch_size']} | {r['batches']} | {r['accuracy']:.1%} |" for r in label_rows]
    (out / "foundation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
