"""Notebook 07's analysis: label mappings under label inconsistency, the latent stage's ceiling, cross-domain.

Under label inconsistency the FL label $\\hat y$ read off the update names a class the prior never saw; a label
mapping picks the class code $c$ that conditions $G(z, c)$ (``gifd_lite.label_mapping``). This module runs the
notebook's three measurements and returns tidy results:

- :func:`probe_mappings`: which GAN class each probe (gradient, model, oracle) picks per FL class;
- :func:`gifd_by_mapping`: GIFD with each mapping, the best image's PSNR at every stage;
- :func:`latent_ceilings`: the oracle pixel fit $\\max_z \\mathrm{PSNR}(G(z, c), x)$, the most the latent stage
  can reach under class code $c$, whatever the attacked model (as in ``docs/results/mapping_headroom.md``);
- :func:`cross_domain`: GGL and GIFD against photographs the prior never saw.
"""

from __future__ import annotations

import torch

__all__ = ["probe_mappings", "show_probe_table", "agreement", "gifd_by_mapping", "plot_stage_curves",
           "format_mapping_table", "latent_ceilings", "plot_ceilings", "cross_domain", "PROBES"]

PROBES = ("gradient", "model", "oracle")


def _observe(model, x, y, model_name, seed):
    from . import fl, labels, pipeline

    update = pipeline.observe(model, x, y, fl.ThreatModel(model_name), seed=seed)
    return update, labels.infer_labels(model, update.tensors, 1)


def probe_mappings(clients, scenario, G, model, judge, judge_classes, images, seed=0, model_name="convnet"):
    """For one client image per FL class (``images[c]``): the GAN class each probe in :data:`PROBES` maps the
    inferred label to. Returns ``{fl class: {probe: gan class index}}`` and, per FL class, the client image
    followed by one sample of each chosen class (for :func:`show_probe_table`)."""
    from . import data
    from .gan import to_unit
    from .label_mapping import map_labels

    device = next(G.parameters()).device
    table, pictures = {}, []
    for c, i in enumerate(images):
        x, y, _ = data.victim_batch(clients, i, 1)
        update, y_hat = _observe(model, x, y, model_name, seed)
        row = {p: map_labels(p, y_hat.to(device), scenario.task_classes, G, model=model, update=update.tensors,
                             judge=judge, judge_classes=judge_classes, seed=seed).gan_classes[0] for p in PROBES}
        table[scenario.task_classes[c]] = row
        with torch.no_grad():
            z = torch.randn(1, G.config.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
            samples = [to_unit(G(z, torch.tensor([row[p]], device=device))).clamp(0, 1).cpu() for p in PROBES]
        pictures.append(torch.cat([x] + samples))
    return table, pictures


def show_probe_table(table: dict, pictures: list, gan_classes):
    """Per FL class: the client's image, then a sample of the GAN class each probe chose."""
    from .viz import show_images

    titles = [t for fl_class, row in table.items()
              for t in [fl_class] + [f"{p}: {gan_classes[row[p]]}" for p in PROBES]]
    return show_images(torch.cat(pictures), ncols=1 + len(PROBES), scale=1.2, titles=titles)


def agreement(table: dict) -> dict:
    """The fraction of FL classes on which each probe picked the oracle's (semantically closest) class."""
    return {p: sum(row[p] == row["oracle"] for row in table.values()) / len(table) for p in PROBES if p != "oracle"}


def gifd_by_mapping(clients, scenario, G, model, judge, judge_classes, indices, mappings, preset, seed=0,
                    model_name="convnet"):
    """GIFD on each client image with each label mapping. Returns ``{mapping: {"stage_psnr": [mean over
    images per stage], "psnr", "ssim", "oracle_class_rate"}}`` and the stage names."""
    from . import data, pipeline
    from .label_mapping import map_labels, oracle_class
    from .runtime import progress

    per_mapping, stage_names = {}, []
    for method in mappings:
        stages, psnr, ssim, chosen = [], [], [], []
        for i in progress(indices, desc=method):
            x, y, _ = data.victim_batch(clients, i, 1)
            update, _ = _observe(model, x, y, model_name, seed)

            def mapping(lab, update=update, method=method):
                return map_labels(method, lab, scenario.task_classes, G, model=model, update=update.tensors,
                                  judge=judge, judge_classes=judge_classes, seed=seed)

            rec = pipeline.run_attack("gifd", model, update, preset, 1, seed=seed, generator=G, label_mapping=mapping)
            s = pipeline.score(rec, x, y, with_lpips=False)
            stages.append([st["psnr"] for st in s["stages"]])
            stage_names = [st["stage"] for st in s["stages"]]
            psnr.append(s["psnr"])
            ssim.append(s["ssim"])
            chosen.append(s["label_mapping"]["gan_classes"][0] == oracle_class(scenario.task_classes[int(y)], G.classes))
        per_mapping[method] = {"stage_psnr": [sum(col) / len(col) for col in zip(*stages)],
                               "psnr": sum(psnr) / len(psnr), "ssim": sum(ssim) / len(ssim),
                               "oracle_class_rate": sum(chosen) / len(chosen)}
    return per_mapping, stage_names


def plot_stage_curves(per_mapping: dict, stage_names: list[str]):
    """Mean PSNR per GIFD stage, one line per mapping: where the lines meet, the class code stopped mattering."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for method, r in per_mapping.items():
        ax.plot(stage_names, r["stage_psnr"], "o-", label=method)
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("GIFD per stage, by label mapping", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def format_mapping_table(per_mapping: dict) -> str:
    """Latent-stage and output PSNR, SSIM and how often the mapping chose the oracle's class."""
    lines = [f"{'mapping':9s} {'latent':>7s} {'output':>7s} {'SSIM':>6s} {'picked oracle class':>20s}"]
    lines += [f"{m:9s} {r['stage_psnr'][0]:7.2f} {r['psnr']:7.2f} {r['ssim']:6.3f} {r['oracle_class_rate']:20.0%}"
              for m, r in per_mapping.items()]
    return "\n".join(lines)


def latent_ceilings(G, clients, scenario, indices, steps: int, seed: int = 0, restarts: int = 2) -> dict:
    """The oracle latent fit to the client images' pixels under four class codes: the raw FL label index
    (``none``), the oracle's class, the best of the GAN classes per image, and a learned mixture (``soft``).
    Returns the mean PSNR (dB) of each: the ceiling of GIFD's latent stage under that code."""
    from . import data
    from .gan.analysis import fit_to_image
    from .label_mapping import oracle_class

    victims = [data.victim_batch(clients, i, 1) for i in indices]
    truth, fl_labels = torch.cat([v[0] for v in victims]), [int(v[1]) for v in victims]
    n, k = len(indices), len(G.classes)

    def fit(code, learn_code=False):
        return fit_to_image(G, truth, code, stages=(0,), steps=steps, restarts=restarts, seed=seed,
                            learn_code=learn_code)["latent"]["psnr_per_image"]

    per_class = torch.tensor([fit(torch.full((n,), c)) for c in range(k)])           # (GAN class, image)
    oracle_of = [oracle_class(scenario.task_classes[y], G.classes) for y in fl_labels]
    cols = list(range(n))
    return {"none": float(per_class[fl_labels, cols].mean()), "oracle": float(per_class[oracle_of, cols].mean()),
            "best class": float(per_class.max(0).values.mean()),
            "soft": sum(fit(torch.full((n, k), 1 / k), learn_code=True)) / n}


def plot_ceilings(ceiling: dict, per_mapping: dict):
    """The latent ceiling under each code (grey) beside GIFD's latent stage from the gradient (blue)."""
    import matplotlib.pyplot as plt

    attack = {m: per_mapping[m]["stage_psnr"][0] for m in ("none", "oracle", "soft") if m in per_mapping}
    names = list(ceiling)
    fig, ax = plt.subplots(figsize=(5.5, 3))
    ax.bar(range(len(names)), list(ceiling.values()), color="tab:gray", label="ceiling (oracle pixel fit)")
    ax.bar([names.index(m) for m in attack], list(attack.values()), width=0.5, color="tab:blue",
           label="GIFD's latent stage (from the gradient)")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("PSNR (dB)")
    ax.set_ylim(0, 1.4 * max(ceiling.values()))
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("the latent stage: what the class code allows, what the attack gets", fontsize=10)
    fig.tight_layout()
    return fig


def cross_domain(n_images: int, gifd_preset, ggl_preset, seed: int = 0, model_name: str = "convnet", device="cpu"):
    """GGL and GIFD with the 10-class prior against the ``cross-domain`` photographs. Returns ``{"ggl": [PSNR
    per image], "gifd": [...]}`` and one picture row per image (photograph, GGL, GIFD)."""
    from . import data, metrics, models, pipeline, scenarios
    from .gan import load_generator

    cross = scenarios.task_dataset("cross-domain")
    G10 = load_generator("cifar10", device=device)
    model = models.build_model(model_name, seed=seed).to(device).eval()
    psnr, pictures = {"ggl": [], "gifd": []}, []
    for i in range(n_images):
        x, y, _ = data.victim_batch(cross, i, 1)
        update, _ = _observe(model, x, y, model_name, seed)
        row = [x]
        for method, p in (("ggl", ggl_preset), ("gifd", gifd_preset)):
            rec = pipeline.run_attack(method, model, update, p, 1, seed=seed, generator=G10)
            psnr[method].append(metrics.evaluate(rec.images, x, with_lpips=False)["psnr"])
            row.append(rec.images.detach().cpu())
        pictures.append(torch.cat(row))
    return psnr, pictures
