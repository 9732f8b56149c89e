"""Judge every shipped GAN prior the same way; writes docs/results/priors.md and priors_judged.json (issue 17).

    GIFD_DATA=../shared/data GIFD_THREADS=1 .venv/bin/python tools/judge_priors.py [--report | --only NAME ...]

For each generator in data/MANIFEST (the shared-embedding priors ``cifar10``, ``cifar10-5``, the strongly
conditioned ``cifar10-strong``, ``cifar10-5-strong``, the same recipe trained longer, ``-long``, and with the
mode-seeking term, ``-ms`` and ``-ms-long``):

- class fidelity by the judge (the shipped classifier, never used in training or snapshot selection),
  100 samples per class, no truncation — notebook 03's measurement at the laptop preset;
- within-class diversity, mean pairwise **pixel l2** of 16 samples per class, over the same for real test
  images of the class (the metric of the committed records; LPIPS would not compare with them);
- the oracle's reconstruction headroom as in notebook 03 (laptop: the same 10 test images, 200 steps; images of
  classes a 5-class prior does not know are skipped): latent only, and the 8×8 features from there;
- the training record from data/MANIFEST (steps, wall time) and the selector's history from the checkpoint;
- once, the yardstick: the judge's own accuracy on the real test images, class by class (``judge_real.json``).

``--report`` rewrites the page from the committed JSON without measuring anything; ``--only NAME ...`` judges
those priors and keeps the committed numbers of the others.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from gifd_lite import data, prior_report  # noqa: E402
from gifd_lite.gan import analysis, load_classifier, load_generator  # noqa: E402
from gifd_lite.gan.checkpoint import load_payload, read_manifest  # noqa: E402
from gifd_lite.runtime import seed_everything  # noqa: E402
from gifd_lite.training import accuracy, accuracy_per_class  # noqa: E402

RESULTS = ROOT / "docs" / "results"
HEADROOM_IMAGES, HEADROOM_STEPS = 10, 200        # notebook 03's laptop preset


def judge(name: str, judge_net, test_set) -> dict:
    """Fidelity, pixel-l2 diversity, oracle headroom and training record of one shipped prior."""
    seed_everything(0)
    start = time.perf_counter()
    G = load_generator(name)
    fid = analysis.class_fidelity(G, judge_net, per_class=100, seed=0, classifier_classes=judge_net.classes)
    div = analysis.diversity(G, real=test_set, per_class=16, seed=0, metric="pixel")["mean"]
    indices = [int(i) for i in torch.linspace(5, len(test_set) - 1, HEADROOM_IMAGES).long()]
    rows, _ = prior_report.headroom(G, test_set, indices, HEADROOM_STEPS, seed=0)
    entry = read_manifest()[name]
    payload = load_payload(name)
    selection, seeking = payload.get("selection"), payload.get("recipe", {}).get("mode_seeking")
    design = G.config.conditioning + (f" + mode seeking {seeking:g}" if seeking else "")
    return {"conditioning": G.config.conditioning, "design": design, "classes": list(G.classes),
            "steps": entry["steps"], "wall_seconds": entry["wall_seconds"],
            "fidelity": fid["mean"], "fidelity_per_class": fid["per_class"],
            "weakest_class_fidelity": min(fid["per_class"].values()),
            "diversity_pixel": {**div, "ratio": div["generated"] / div["real"]},
            "headroom_images": [r["index"] for r in rows],
            "headroom_latent_psnr": sum(r["latent"] for r in rows) / len(rows),
            "headroom_stage2_psnr": sum(r["8x8"] for r in rows) / len(rows),
            "selection": selection, "seconds": round(time.perf_counter() - start, 1)}


def judge_on_real(judge_net, test_set) -> dict:
    """The judge's accuracy on the real test images, overall and per class: what a prior's fidelity compares with."""
    return {"images": len(test_set), "accuracy": accuracy(judge_net, test_set),
            "per_class": accuracy_per_class(judge_net, test_set)}


def report(judged: dict, real: dict | None = None) -> str:
    lines = ["# Every shipped prior, judged the same way", "",
             "Regenerate: `GIFD_DATA=../shared/data GIFD_THREADS=1 .venv/bin/python tools/judge_priors.py` "
             "(`--report` rewrites this page from `priors_judged.json`). The judge is the shipped classifier "
             "(`data/classifier_convnet.pt`), which no prior saw in training or snapshot selection.", "",
             "| prior | design | classes | steps | wall (min) | judge fidelity | weakest class | "
             "diversity: generated / real = ratio (pixel l2) | oracle latent (dB) | oracle 8×8 (dB) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, b in judged.items():
        weakest = min(b["fidelity_per_class"], key=b["fidelity_per_class"].get)
        d = b["diversity_pixel"]
        lines.append(f"| `{name}` | {b.get('design', b['conditioning'])} | {len(b['classes'])} | {b['steps']} | "
                     f"{b['wall_seconds'] / 60:.0f} | {b['fidelity']:.1%} | {weakest} {b['weakest_class_fidelity']:.0%} | "
                     f"{d['generated']:.2f} / {d['real']:.2f} = {d['ratio']:.2f} | {b['headroom_latent_psnr']:.2f} | "
                     f"{b['headroom_stage2_psnr']:.2f} |")
    lines += ["", "Headroom images: notebook 03's ten (test indices 5, 1115, …, 9999); a 5-class prior is scored on "
              "those of its own classes only, so compare it with the 10-class priors with care.", "",
              "## Fidelity per class", ""]
    if real:
        lines += [f"The first column is the yardstick: the judge's accuracy on the {real['images']:,} real test images "
                  f"of each class ({real['accuracy']:.1%} overall). A prior's samples can score above it: a "
                  "generator may draw a class's typical images only.", ""]
    yardstick = ["judge on real images"] if real else []
    lines += ["| class | " + " | ".join(yardstick + [f"`{n}`" for n in judged]) + " |",
              "|---|" + "---|" * (len(judged) + len(yardstick))]
    classes = list(next(iter(judged.values()))["fidelity_per_class"])
    for c in classes:
        cells = [f"{real['per_class'][c]:.0%}"] if real else []
        cells += [f"{b['fidelity_per_class'][c]:.0%}" if c in b["fidelity_per_class"] else "—" for b in judged.values()]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    for name, b in judged.items():
        if b["selection"]:
            lines += ["", f"## Selector history of `{name}`", "",
                      "Every 1,000 steps the EMA generator is scored by the *selector* (`data/selector_convnet.pt`, "
                      "not the judge): score = fidelity × min(1, diversity ratio / 0.9); the best snapshot is "
                      f"shipped (here step {b['selection']['chosen_step']}).", "",
                      "| step | selector fidelity | diversity ratio | score |", "|---|---|---|---|"]
            lines += [f"| {r['step']} | {r['fidelity']:.1%} | {r['diversity_ratio']:.2f} | {r['score']:.3f} |"
                      for r in b["selection"]["history"]]
    lines += ["", "Quotable values (`gifd_lite.results`):", "", "```quote"]
    if real:
        lines += [f"judge real accuracy: {real['accuracy']:.6f}"]
        lines += [f"judge real {c}: {v:.6f}" for c, v in real["per_class"].items()]
    for name, b in judged.items():
        lines += [f"{name} fidelity: {b['fidelity']:.6f}", f"{name} weakest: {b['weakest_class_fidelity']:.6f}",
                  f"{name} diversity ratio: {b['diversity_pixel']['ratio']:.6f}",
                  f"{name} latent: {b['headroom_latent_psnr']:.6f}", f"{name} 8x8: {b['headroom_stage2_psnr']:.6f}",
                  f"{name} steps: {b['steps']}", f"{name} minutes: {b['wall_seconds'] / 60:.1f}"]
        lines += [f"{name} class {c}: {v:.6f}" for c, v in b["fidelity_per_class"].items()]
    lines += ["```", ""]
    return "\n".join(lines)


def main() -> None:
    path, real_path = RESULTS / "priors_judged.json", RESULTS / "judge_real.json"
    if "--report" in sys.argv:
        judged = json.loads(path.read_text())
    else:
        judge_net, test_set = load_classifier("classifier"), data.load_cifar10("test")
        if "--only" not in sys.argv or not real_path.exists():      # the judge is fixed: measured once is enough
            real_path.write_text(json.dumps(judge_on_real(judge_net, test_set), indent=2) + "\n")
        names = [n for n, e in sorted(read_manifest().items()) if e["kind"] == "generator"]
        judged = {}
        if "--only" in sys.argv:                      # judge these, keep the committed numbers of the others
            only = sys.argv[sys.argv.index("--only") + 1:]
            unknown = sorted(set(only) - set(names))
            if unknown:
                sys.exit(f"judge_priors: no generator named {', '.join(unknown)} in data/MANIFEST")
            judged = {n: b for n, b in json.loads(path.read_text()).items() if n in names}
            names = only
        for name in names:
            judged[name] = judge(name, judge_net, test_set)
            print(f"{name}: fidelity {judged[name]['fidelity']:.1%} ({judged[name]['seconds']} s)", file=sys.stderr)
        path.write_text(json.dumps(judged, indent=2) + "\n")
    real = json.loads(real_path.read_text()) if real_path.exists() else None
    (RESULTS / "priors.md").write_text(report(judged, real))
    print(report(judged, real))


if __name__ == "__main__":
    main()
