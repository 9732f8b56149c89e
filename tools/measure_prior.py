"""Run notebook 03 in the laptop preset and write its numbers to docs/results/prior.md.

    GIFD_DATA=../shared/data .venv/bin/python tools/measure_prior.py

Class fidelity (1,000 samples, 100 per class, no truncation) by the shipped classifier, diversity, and the
oracle reconstruction headroom (latent only vs 8×8 features) on 10 CIFAR-10 test images. The numbers of the
prior shipped before issue 17 (shared class embedding, projection discriminator only) stay beside them, from
``prior_metrics_shared.json``.

Both shipped priors (``cifar10`` and ``cifar10-5``) are also judged outside the notebook: class fidelity by the
judge (100 samples per class), within-class diversity in pixel l2 against real test images (16 per class; the
metric of the records made before LPIPS worked offline), and the selector's history from the checkpoint.
``--history OLD_10 OLD_5`` measures the same for the pre-issue-17 checkpoint files and stores them in
``prior_metrics_shared.json`` (once, before they are replaced).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gifd_lite import data  # noqa: E402
from gifd_lite.course import NOTEBOOK_DIR, run_notebook  # noqa: E402
from gifd_lite.gan import analysis, load_classifier, load_generator  # noqa: E402
from gifd_lite.gan.checkpoint import load_payload, read_manifest  # noqa: E402

RESULTS = ROOT / "docs" / "results"


def judge_prior(name_or_path: str) -> dict:
    """Judge fidelity, pixel-l2 diversity against real test images, and the selector's record of one prior."""
    judge, test_set = load_classifier("classifier"), data.load_cifar10("test")
    G = load_generator(name_or_path)
    fid = analysis.class_fidelity(G, judge, per_class=100, seed=0, classifier_classes=judge.classes)
    div = analysis.diversity(G, real=test_set, per_class=16, seed=0, metric="pixel")["mean"]
    selection = load_payload(name_or_path).get("selection")
    return {"classes": list(G.classes), "fidelity": fid["mean"], "fidelity_per_class": fid["per_class"],
            "weakest_class_fidelity": min(fid["per_class"].values()),
            "diversity_pixel": {**div, "ratio": div["generated"] / div["real"]},
            "selection": selection}


def judged_rows(label: str, blocks: dict) -> list[str]:
    rows = []
    for name, b in blocks.items():
        chosen = (b.get("selection") or {}).get("chosen_step", "—")
        weakest = min(b["fidelity_per_class"], key=b["fidelity_per_class"].get)
        rows.append(f"| {label} | {name} | {b['fidelity']:.1%} | {weakest} {b['weakest_class_fidelity']:.0%} | "
                    f"{b['diversity_pixel']['generated']:.2f} / {b['diversity_pixel']['real']:.2f} = "
                    f"{b['diversity_pixel']['ratio']:.2f} | {chosen} |")
    return rows


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--history":
        old = json.loads((RESULTS / "prior_metrics_shared.json").read_text())
        old["judged"] = {"cifar10": judge_prior(sys.argv[2]), "cifar10-5": judge_prior(sys.argv[3])}
        (RESULTS / "prior_metrics_shared.json").write_text(json.dumps(old, indent=2))
        print(json.dumps(old["judged"], indent=2))
        return
    m = run_notebook(NOTEBOOK_DIR / "03_gan_prior.ipynb", ROOT / "runs" / "measure_prior", preset="laptop")
    manifest = read_manifest()
    lines = ["# The GAN prior: measured numbers", "",
             "Regenerate: `GIFD_DATA=../shared/data .venv/bin/python tools/measure_prior.py` (runs notebook 03 in "
             "the laptop preset; its metrics.json is copied to `prior_metrics.json`).", "",
             "## Shipped weights (data/MANIFEST)", "", "| name | classes | steps | wall (min) | command |",
             "|---|---|---|---|---|"]
    for name, e in sorted(manifest.items()):
        lines.append(f"| {name} | {len(e['classes'])} | {e['steps']} | {e['wall_seconds'] / 60:.0f} | `{e['command']}` |")
    lines += ["", f"Classifier (judge) CIFAR-10 test accuracy: **{m['classifier_accuracy']:.1%}** (10,000 test images).",
              "", "## Class fidelity of the 10-class prior (100 samples per class, no truncation)", "",
              "| class | labelled as its class | before issue 17 |", "|---|---|---|"]
    old = json.loads((ROOT / "docs" / "results" / "prior_metrics_shared.json").read_text())
    lines += [f"| {c} | {v:.0%} | {old['fidelity_per_class'].get(c, float('nan')):.0%} |"
              for c, v in m["fidelity_per_class"].items()]
    lines += [f"| **mean** | **{m['fidelity']:.1%}** | {old['fidelity']:.1%} |", "",
              f"## Diversity (mean pairwise {m['diversity_metric']} within a class, 16 per class)", "",
              "| prior | generated | collapsed (one z repeated) | real test images |", "|---|---|---|---|",
              f"| now | {m['diversity']['generated']:.3f} | {m['diversity']['collapsed']:.3f} | "
              f"{m['diversity'].get('real', float('nan')):.3f} |",
              f"| before issue 17 ({old['diversity_metric']}) | {old['diversity']['generated']:.3f} | "
              f"{old['diversity']['collapsed']:.3f} | {old['diversity'].get('real', float('nan')):.3f} |",
              "", "## Reconstruction headroom (oracle pixel loss, 10 test images spread over the classes)", "",
              "| searched | mean PSNR (dB) | before issue 17 |", "|---|---|---|",
              f"| latent only | {m['headroom_latent_psnr']:.2f} | {old['headroom_latent_psnr']:.2f} |",
              f"| 8×8 features (stage 2) | {m['headroom_stage2_psnr']:.2f} | {old['headroom_stage2_psnr']:.2f} |",
              "", "## Both priors by the judge (100 samples per class; diversity in pixel l2, 16 per class)", "",
              "| prior | name | judge fidelity | weakest class | diversity generated / real = ratio | "
              "selector's chosen step |", "|---|---|---|---|---|---|"]
    m["judged"] = {name: judge_prior(name) for name in ("cifar10", "cifar10-5")}
    lines += judged_rows("now", m["judged"]) + judged_rows("before issue 17", old.get("judged", {}))
    for name, b in m["judged"].items():
        if b["selection"]:
            lines += ["", f"Selector history of `{name}` (every 1,000 steps; score = fidelity × min(1, ratio / 0.9)):",
                      "", "| step | selector fidelity | diversity ratio | score |", "|---|---|---|---|"]
            lines += [f"| {r['step']} | {r['fidelity']:.1%} | {r['diversity_ratio']:.2f} | {r['score']:.3f} |"
                      for r in b["selection"]["history"]]
    lines += ["", f"Notebook wall time: {m['_wall_seconds']} s.", "",
              "Before issue 17: the prior of `python -m gifd_lite train-gan --dataset cifar10 --steps 8000 --seed 0` "
              "with the shared class embedding and a projection discriminator only (60 min on this CPU); its "
              "numbers are `prior_metrics_shared.json`."]
    out = RESULTS
    (out / "prior.md").write_text("\n".join(lines) + "\n")
    (out / "prior_metrics.json").write_text(json.dumps(m, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
