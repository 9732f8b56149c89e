"""Run notebook 03 in the laptop preset and write its numbers to docs/results/prior.md.

    GIFD_DATA=../shared/data .venv/bin/python tools/measure_prior.py

Class fidelity (1,000 samples, 100 per class, no truncation) by the shipped classifier, diversity, and the
oracle reconstruction headroom (latent only vs 8×8 features) on 10 CIFAR-10 test images. The numbers of the
prior shipped before issue 17 (shared class embedding, projection discriminator only) stay beside them, from
``prior_metrics_shared.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gifd_lite.course import NOTEBOOK_DIR, run_notebook  # noqa: E402
from gifd_lite.gan.checkpoint import read_manifest  # noqa: E402


def main():
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
              "", f"Notebook wall time: {m['_wall_seconds']} s.", "",
              "Before issue 17: the prior of `python -m gifd_lite train-gan --dataset cifar10 --steps 8000 --seed 0` "
              "with the shared class embedding and a projection discriminator only (60 min on this CPU); its "
              "numbers are `prior_metrics_shared.json`."]
    out = ROOT / "docs" / "results"
    (out / "prior.md").write_text("\n".join(lines) + "\n")
    (out / "prior_metrics.json").write_text(json.dumps(m, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
