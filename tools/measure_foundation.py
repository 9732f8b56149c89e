"""Measure the foundation's acceptance numbers and write docs/results/foundation.md (and .csv).

    GIFD_DATA=../shared/data .venv/bin/python tools/measure_foundation.py [--quick]
    .venv/bin/python tools/measure_foundation.py --report     # rebuild the page from the committed records

Runs, through the CLI (one process per image, as a user would): iDLG on lenet for test images
0, 1000, ..., 9000 (laptop preset); IG on convnet and resnet18 (untrained, eval mode, batch 1, laptop);
and, in-process, label inference accuracy at batch 1 (50 images) and batches of 4 and 8 with distinct labels.
The records are foundation_attacks.csv (one row per attack, its ``cell`` named "<method> <model> <index>") and
foundation_labels.csv; ``--report`` rewrites foundation.md from them without measuring, with a ``quote`` block
that the lessons quote (``gifd_lite.results``).
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
ATTACKS = (("idlg", "lenet"), ("ig", "convnet"), ("ig", "resnet18"))


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


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def read_records(out: Path) -> tuple[list[dict], list[dict]]:
    """The committed attack and label rows (numbers as floats); names the attack rows' cells if they are not."""
    with open(out / "foundation_attacks.csv") as f:
        raw = list(csv.DictReader(f))
    if raw and "cell" not in raw[0]:
        raw = [{"cell": f"{r['method']} {r['model']} {r['index']}"} | r for r in raw]
        write_csv(out / "foundation_attacks.csv", raw)
    text = {"cell", "method", "model"}
    attacks = [{k: (v if k in text else (float(v) if v != "" else None)) for k, v in r.items()} for r in raw]
    with open(out / "foundation_labels.csv") as f:
        label_rows = [{"model": r["model"], "batch_size": int(r["batch_size"]), "batches": int(r["batches"]),
                       "accuracy": float(r["accuracy"])} for r in csv.DictReader(f)]
    return attacks, label_rows


def report(out: Path, attack_rows: list[dict], label_rows: list[dict], measured: str) -> list[str]:
    """foundation.md from the rows: the two tables and the quotable values."""
    lines = ["# Foundation: measured numbers (DLG/iDLG, IG, label inference)", "", measured, "",
             "Regenerate: `GIFD_DATA=../shared/data .venv/bin/python tools/measure_foundation.py` "
             "(each attack row is one `python -m gifd_lite attack --method M --model X --index N --preset laptop`); "
             "`--report` rebuilds this page from the records without measuring.",
             "", "## Attacks, batch 1, laptop preset, untrained models in eval mode, inferred labels", "",
             "| method | model | images | mean PSNR (dB) | min PSNR | images ≥ 30 dB | mean SSIM | label acc. | "
             "s / iteration | mean attack s | max wall s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    quotes = []
    for method, model in ATTACKS:
        rows = [r for r in attack_rows if r["method"] == method and r["model"] == model]
        n = len(rows)
        if not n:
            continue
        mean = lambda k: sum(r[k] for r in rows) / n  # noqa: E731
        lines.append(f"| {method} | {model} | {n} | {mean('psnr'):.2f} | {min(r['psnr'] for r in rows):.2f} | "
                     f"{sum(r['psnr'] >= 30 for r in rows)}/{n} | {mean('ssim'):.3f} | {mean('label_accuracy'):.0%} | "
                     f"{mean('seconds_per_iteration'):.4f} | {mean('seconds'):.1f} | "
                     f"{max(r['wall_seconds'] for r in rows):.1f} |")
        name = f"{method} {model}"
        quotes += [f"{name}, images: {n}", f"{name}, mean psnr: {mean('psnr'):.6f}",
                   f"{name}, min psnr: {min(r['psnr'] for r in rows):.6f}",
                   f"{name}, max psnr: {max(r['psnr'] for r in rows):.6f}",
                   f"{name}, images at 30 dB or more: {sum(r['psnr'] >= 30 for r in rows)}",
                   f"{name}, mean ssim: {mean('ssim'):.6f}", f"{name}, label accuracy: {mean('label_accuracy'):.6f}",
                   f"{name}, mean iterations: {mean('iterations'):.1f}",
                   f"{name}, seconds per iteration: {mean('seconds_per_iteration'):.6f}",
                   f"{name}, mean attack seconds: {mean('seconds'):.3f}",
                   f"{name}, max wall seconds: {max(r['wall_seconds'] for r in rows):.1f}"]
    lines += ["", "Per image: `foundation_attacks.csv` (quotable by its `cell`, e.g. `ig convnet 3000`).", "",
              "## Label inference from the last layer (distinct labels, untrained models)", "",
              "| model | batch size | batches | accuracy |", "|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['batch_size']} | {r['batches']} | {r['accuracy']:.1%} |" for r in label_rows]
    quotes += [f"labels {r['model']} batch {r['batch_size']}, accuracy: {r['accuracy']:.6f}" for r in label_rows]
    quotes += [f"labels {r['model']} batch {r['batch_size']}, batches: {r['batches']}" for r in label_rows]
    lines += ["", "Quotable values (`gifd_lite.results`):", "", "```quote"] + quotes + ["```"]
    (out / "foundation.md").write_text("\n".join(lines) + "\n")
    return lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="three images per attack (a check, not the table)")
    parser.add_argument("--report", action="store_true", help="rebuild foundation.md from the committed records")
    parser.add_argument("--out", default=str(ROOT / "docs" / "results"))
    args = parser.parse_args()
    out = Path(args.out)
    if args.report:
        attack_rows, label_rows = read_records(out)
        old = (out / "foundation.md").read_text().splitlines()
        measured = next(line for line in old if line.startswith("Measured "))
        print("\n".join(report(out, attack_rows, label_rows, measured)))
        return
    indices = INDICES[:3] if args.quick else INDICES
    out.mkdir(parents=True, exist_ok=True)
    runs = ROOT / "runs" / "measure_foundation"
    test_set = data.load_cifar10("test")

    label_rows = label_accuracy_table(test_set)
    attack_rows = []
    for method, model in ATTACKS:
        for i in indices:
            r = cli_attack(method, model, i, "laptop", runs / f"{method}_{model}_{i}")
            attack_rows.append({"cell": f"{method} {model} {i}"}
                               | {k: r[k] for k in ("method", "model", "psnr", "ssim", "lpips", "label_accuracy",
                                                    "iterations", "seconds", "seconds_per_iteration")}
                               | {"index": i, "wall_seconds": r["wall_seconds"]})
            print(json.dumps(attack_rows[-1]), flush=True)

    write_csv(out / "foundation_attacks.csv", attack_rows)
    write_csv(out / "foundation_labels.csv", label_rows)
    measured = (f"Measured {time.strftime('%Y-%m-%d')} on {platform.processor() or platform.machine()}, "
                f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, device cpu; "
                f"data: {test_set.source}. LPIPS: null where its AlexNet weights could not be downloaded.")
    print("\n".join(report(out, attack_rows, label_rows, measured)))


if __name__ == "__main__":
    main()
