"""Run notebook 03 in the laptop preset and write its numbers to docs/results/prior.md.

    GIFD_DATA=../shared/data .venv/bin/python tools/measure_prior.py

Class fidelity (1,000 samples, 100 per class, no truncation) by the shipped classifier, diversity, and the
oracle reconstruction headroom (latent only vs 8×8 features) on 10 CIFAR-10 test images.
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
              "| class | labelled as its class |", "|---|---|"]
    lines += [f"| {c} | {v:.0%} |" for c, v in m["fidelity_per_class"].items()]
    lines += [f"| **mean** | **{m['fidelity']:.1%}** |", "",
              f"## Diversity (mean pairwise {m['diversity_metric']} within a class, 16 per class)", "",
              "| generated | collapsed (one z repeated) | real test images |", "|---|---|---|",
              f"| {m['diversity']['generated']:.3f} | {m['diversity']['collapsed']:.3f} | {m['diversity'].get('real', float('nan')):.3f} |",
              "", "## Reconstruction headroom (oracle pixel loss, 10 test images spread over the classes)", "",
              "| searched | mean PSNR (dB) |", "|---|---|",
              f"| latent only | {m['headroom_latent_psnr']:.2f} |", f"| 8×8 features (stage 2) | {m['headroom_stage2_psnr']:.2f} |",
              "", f"Notebook wall time: {m['_wall_seconds']} s."]
    out = ROOT / "docs" / "results"
    (out / "prior.md").write_text("\n".join(lines) + "\n")
    (out / "prior_metrics.json").write_text(json.dumps(m, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
