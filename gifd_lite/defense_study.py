"""Notebook 08's analysis: what each defense does to the update, to IG and to GIFD, and what it costs the model.

A defense transforms the update $g$ before it leaves the client (``gifd_lite.fl``): Gaussian noise
$g + \\mathcal N(0, \\sigma^2)$, clipping $g \\cdot \\min(1, C/\\lVert g\\rVert)$, top-$k$ compression (keep the largest
fraction $p$ of each layer's entries, written "kept 10% (90% pruned)" for $p = 0.1$, as
:func:`gifd_lite.fl.describe_defense` does) and Soteria (Sun et al., CVPR 2021: zero the last layer's
weight-gradient columns of the representation features whose removal perturbs a reconstruction most). An
adaptive attacker mirrors the defense on its own dummy gradients.

Every function returns tidy rows (one dict per setting × attack) or a matplotlib figure.
"""

from __future__ import annotations

import torch

__all__ = ["setting_name", "gradient_effect", "format_effect", "defense_settings", "defense_table",
           "show_defense_images", "format_by_setting", "fl_table", "utility", "plot_privacy_utility"]


def setting_name(defense: str, param=None, adaptive: bool = False) -> str:
    """A defense setting as the papers write it: ``("compression", 0.1)`` -> "compression: kept 10% (90%
    pruned)", with " (adaptive)" for an attacker that mirrors it."""
    from .fl import describe_defense

    name = "none" if defense == "none" else describe_defense(defense, param)
    return name + (" (adaptive)" if adaptive else "")


def gradient_effect(model, x, y, defenses: dict, seed: int = 0, model_name: str = "convnet") -> list[dict]:
    """Per defense: cosine similarity of the defended update to the clean one, the relative $l_2$ change
    $\\lVert g - \\tilde g\\rVert / \\lVert g\\rVert$, and the fraction of entries that are zero."""
    from . import fl, pipeline

    def flat(ts):
        return torch.cat([t.flatten() for t in ts])

    a = flat(pipeline.observe(model, x, y, fl.ThreatModel(model_name), seed=seed).tensors)
    rows = []
    for name, param in defenses.items():
        tm = fl.ThreatModel(model_name, defense=name, defense_param=param)
        b = flat(pipeline.observe(model, x, y, tm, seed=seed).tensors)
        rows.append({"defense": name, "param": param, "setting": setting_name(name, param),
                     "cosine": float(a @ b / (a.norm() * b.norm() + 1e-12)),
                     "relative_l2": float((a - b).norm() / a.norm()), "zeros": float((b == 0).float().mean())})
    return rows


def format_effect(rows: list[dict]) -> str:
    w = max(len(r["setting"]) for r in rows)
    lines = [f"{'defense':{w}s} {'cosine to clean':>16s} {'rel. l2 change':>15s} {'zeros':>7s}"]
    lines += [f"{r['setting']:{w}s} {r['cosine']:16.4f} {r['relative_l2']:15.4f} {r['zeros']:7.1%}" for r in rows]
    return "\n".join(lines)


def defense_settings(defenses: dict, adaptive: list[str]) -> list[tuple]:
    """(defense, param, adaptive) for no defense, each defense against a plain attacker, and each mirrorable
    defense in ``adaptive`` against an adaptive one."""
    return ([("none", None, False)] + [(n, p, False) for n, p in defenses.items()]
            + [(n, defenses[n], True) for n in adaptive if n in defenses])


def defense_table(model, x, y, G, settings: list[tuple], attacks, attack_preset, seed: int = 0,
                  model_name: str = "convnet"):
    """Every attack on the update under every setting of :func:`defense_settings`. Returns rows (defense,
    param, adaptive, setting, attack, PSNR, SSIM) and the reconstructions in the same order."""
    from . import fl, metrics, pipeline
    from .runtime import progress

    rows, pictures = [], []
    for name, param, adaptive in progress(settings, desc="defenses"):
        tm = fl.ThreatModel(model_name, defense=name, defense_param=param or 0.0, adaptive=adaptive)
        update = pipeline.observe(model, x, y, tm, seed=seed)
        for attack in attacks:
            rec = pipeline.run_attack(attack, model, update, attack_preset, 1, seed=seed, generator=G)
            m = metrics.evaluate(rec.images, x, with_lpips=False)
            rows.append({"defense": name, "param": param, "adaptive": adaptive,
                         "setting": setting_name(name, param, adaptive), "attack": attack,
                         "psnr": m["psnr"], "ssim": m["ssim"]})
            pictures.append(rec.images.detach().cpu())
    return rows, pictures


def show_defense_images(rows: list[dict], pictures: list, truth: torch.Tensor | None = None):
    """The reconstructions of :func:`defense_table`: one column per setting (its name wrapped above it), one row
    per attack, each image's PSNR under it; the client's image first in every row, if ``truth`` is given."""
    import textwrap

    import matplotlib.pyplot as plt

    from .viz import _hwc

    settings = list(dict.fromkeys(r["setting"] for r in rows))
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    where = {(r["setting"], r["attack"]): i for i, r in enumerate(rows)}
    first = 1 if truth is not None else 0
    ncols = first + len(settings)
    fig, axes = plt.subplots(len(attacks), ncols, figsize=(1.25 * ncols, 1.75 * len(attacks) + 0.7), squeeze=False)
    for a, attack in enumerate(attacks):
        if truth is not None:
            axes[a, 0].imshow(_hwc(truth[0].cpu()), interpolation="nearest")
        for s, setting in enumerate(settings):
            ax = axes[a, first + s]
            if (setting, attack) in where:
                i = where[setting, attack]
                ax.imshow(_hwc(pictures[i][0]), interpolation="nearest")
                ax.text(0.5, -0.04, f"{rows[i]['psnr']:.1f} dB", transform=ax.transAxes, ha="center", va="top",
                        fontsize=7)
        axes[a, 0].text(-0.08, 0.5, attack, transform=axes[a, 0].transAxes, rotation=90, ha="right", va="center",
                        fontsize=9, weight="bold")
    for s, setting in enumerate(settings):
        axes[0, first + s].set_title(textwrap.fill(setting, 14), fontsize=7)
    if truth is not None:
        axes[0, 0].set_title("the client's\nimage", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig


def format_by_setting(rows: list[dict], attacks, key: str = "psnr") -> str:
    """One line per setting, one column per attack (PSNR in dB)."""
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    w = max(len(s) for s in settings + ["setting"])
    lines = [f"{'setting':{w}s} " + " ".join(f"{a:>8s}" for a in attacks)]
    for s in settings:
        vals = {r["attack"]: r[key] for r in rows if r["setting"] == s}
        lines.append(f"{s:{w}s} " + " ".join(f"{vals[a]:8.2f}" if a in vals else f"{'':8s}" for a in attacks))
    return "\n".join(lines)


def fl_table(model, trained, test_set, index: int, G, attacks, attack_preset, seed: int = 0,
             model_name: str = "convnet", reference: list[dict] | None = None) -> list[dict]:
    """The clean update changed one thing at a time: a batch of 4, a FedAvg update of 5 local steps, and the
    trained classifier (a ConvNet) as the global model. Rows: setting, attack, PSNR. ``reference``: the
    :func:`defense_table` rows of the same image, model and preset, whose ``none`` rows are the batch-1 reference
    (the same runs: not run again)."""
    from . import data, fl, metrics, pipeline

    rows = [{"setting": "batch 1 (reference)", "attack": r["attack"], "psnr": r["psnr"]}
            for r in reference or [] if r["defense"] == "none" and r["attack"] in attacks]
    if {r["attack"] for r in rows} != set(attacks):
        rows = []
    # the shipped trained classifier is a ConvNet, whatever model the other rows attack
    scenarios = {"batch 1 (reference)": (model, model_name, 1, {}), "batch 4": (model, model_name, 4, {}),
                 "FedAvg, 5 local steps": (model, model_name, 1, {"update": "fedavg", "fedavg_steps": 5, "fedavg_lr": 0.1}),
                 "trained global model" + ("" if model_name == "convnet" else " (ConvNet)"):
                     (trained, "convnet", 1, {"trained_model": True})}
    if rows:
        del scenarios["batch 1 (reference)"]
    for setting, (m_model, name, batch, kwargs) in scenarios.items():
        xb, yb, _ = data.victim_batch(test_set, index, batch)
        tm = fl.ThreatModel(name, batch_size=batch, **kwargs)
        update = pipeline.observe(m_model, xb, yb, tm, seed=seed)
        for attack in attacks:
            rec = pipeline.run_attack(attack, m_model, update, attack_preset, batch, seed=seed, generator=G)
            rows.append({"setting": setting, "attack": attack,
                         "psnr": metrics.evaluate(rec.images, xb, with_lpips=False)["psnr"]})
    return rows


def utility(train_set, test_set, defenses: dict, steps: int, seed: int = 0, device="cpu",
            eval_images: int = 2000) -> dict:
    """Test accuracy (on the first ``eval_images`` test images) of a ConvNet trained ``steps`` SGD steps with every
    step's gradient defended, per defense (and ``none``)."""
    from . import models
    from .training import accuracy, train_classifier

    out = {}
    for name, param in [("none", None)] + list(defenses.items()):
        m = models.build_model("convnet", seed=seed).to(device)
        train_classifier(m, train_set, steps, batch_size=64, seed=seed, defense=name, defense_param=param,
                         show_progress=False)
        out[name] = accuracy(m, test_set, limit=eval_images)
    return out


def plot_privacy_utility(acc: dict, rows: list[dict], steps: int, attack: str = "gifd"):
    """Each defense's utility (test accuracy) against what ``attack`` still recovers from it (PSNR, plain
    attacker): down and to the right is a defense worth having."""
    import matplotlib.pyplot as plt

    psnr = {r["defense"]: r["psnr"] for r in rows if r["attack"] == attack and not r["adaptive"]}
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for name in acc:
        if name in psnr:
            ax.scatter(acc[name], psnr[name])
            ax.annotate(name, (acc[name], psnr[name]), fontsize=8)
    ax.set_xlabel(f"test accuracy after {steps} defended steps")
    ax.set_ylabel(f"{attack.upper()} PSNR (dB)")
    ax.set_title("privacy (lower is better) against utility", fontsize=10)
    fig.tight_layout()
    return fig
