"""Notebook 06's radius ablation: one deep GIFD stage searched from a shared start with several l1 radii.

GIFD keeps each feature stage near where it started: after every step the change $v = h - h^0$ is projected
onto $\\{w : \\lVert w\\rVert_1 \\le r\\}$ with $r = \\rho\\,\\lVert h^0\\rVert_1$. Here the stages before the deep
one run once, then the deep stage is searched again *from that same start* once per $\\rho$ (``None``: no ball;
``gifd_lite.attacks.gifd.radius_sweep``), so only the ball differs between the results, and a radius can be
compared with no ball image by image (a paired difference, ``gifd_lite.paired``).

Everything returns tidy rows (one dict per setting × image × radius) or a matplotlib figure.
"""

from __future__ import annotations

import torch

__all__ = ["run_sweep", "mean_table", "radius_effect", "format_table", "plot_sweep", "show_sweep_images",
           "radius_explorer", "radius_label"]


def radius_label(rho) -> str:
    """``None`` -> "free" (no ball), 0.3 -> "ρ=0.3"."""
    return "free" if rho is None else f"ρ={rho:g}"


def run_sweep(model, test_set, indices, settings: dict, G, config, deep_stage: int, radii, seed: int = 0,
              device="cpu", model_name: str = "convnet"):
    """For every client setting (``{name: ThreatModel fields}``) and test image: observe the update, infer the
    label, run :func:`~gifd_lite.attacks.gifd.radius_sweep`. Returns (rows, pictures): rows carry setting,
    image, radius, loss (the gradient-matching loss the attacker sees), PSNR, SSIM, LPIPS; pictures map
    (setting, image) to the truth followed by one reconstruction per radius."""
    from . import data, fl, labels, metrics, pipeline
    from .attacks.gifd import radius_sweep

    rows, pictures = [], {}
    for name, setting in settings.items():
        for i in indices:
            x, y, _ = data.victim_batch(test_set, i, 1)
            tm = fl.ThreatModel(model_name, **setting)
            update = pipeline.observe(model, x, y, tm, seed=seed)
            found = labels.infer_labels(model, update.tensors, 1).to(device)
            _, searched = radius_sweep(model, update.tensors, found, tm, G, config, deep_stage, radii, seed=seed)
            for rho, result in zip(radii, searched):
                m = metrics.evaluate(result.images, x)
                rows.append({"setting": name, "image": i, "radius": rho, "loss": result.loss,
                             "psnr": m["psnr"], "ssim": m["ssim"], "lpips": m["lpips"]})
            pictures[(name, i)] = torch.cat([x] + [r.images.detach().cpu() for r in searched])
    return rows, pictures


def _mean(vals):
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def mean_table(rows: list[dict]) -> list[dict]:
    """One row per (setting, radius): the mean loss, PSNR, SSIM, LPIPS over the images, and ``psnr_vs_free``,
    the mean paired PSNR difference to no ball on the same images."""
    out = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        mine = [r for r in rows if r["setting"] == setting]
        free = {r["image"]: r["psnr"] for r in mine if r["radius"] is None}
        for rho in dict.fromkeys(r["radius"] for r in mine):
            cell = [r for r in mine if r["radius"] == rho]
            diffs = [r["psnr"] - free[r["image"]] for r in cell if r["image"] in free]
            out.append({"setting": setting, "radius": rho, "n": len(cell),
                        **{k: _mean([r[k] for r in cell]) for k in ("loss", "psnr", "ssim", "lpips")},
                        "psnr_vs_free": _mean(diffs) if rho is not None else None})
    return out


def radius_effect(table: list[dict]) -> dict:
    """Per setting: the best radius's mean PSNR minus no ball's (dB), from :func:`mean_table` rows."""
    effect = {}
    for setting in dict.fromkeys(r["setting"] for r in table):
        mine = [r for r in table if r["setting"] == setting]
        free = next(r["psnr"] for r in mine if r["radius"] is None)
        effect[setting] = max(r["psnr"] for r in mine if r["radius"] is not None) - free
    return effect


def format_table(table: list[dict]) -> str:
    """:func:`mean_table` rows as a fixed-width text table."""
    lines = [f"{'setting':16s} {'radius':>7s} {'loss':>8s} {'PSNR':>6s} {'vs free':>8s} {'SSIM':>6s} {'LPIPS':>6s}"]
    for r in table:
        vs = "" if r["psnr_vs_free"] is None else f"{r['psnr_vs_free']:+.2f}"
        lp = "n/a" if r["lpips"] is None else f"{r['lpips']:.3f}"
        lines.append(f"{r['setting']:16s} {radius_label(r['radius']):>7s} {r['loss']:8.4f} {r['psnr']:6.2f} "
                     f"{vs:>8s} {r['ssim']:6.3f} {lp:>6s}")
    return "\n".join(lines)


def plot_sweep(table: list[dict]):
    """PSNR (what the attacker wants) and gradient-matching loss (what it sees) against the radius, one line per
    setting: where the loss falls while PSNR falls too, the free search is fitting what is not the image."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for setting in dict.fromkeys(r["setting"] for r in table):
        mine = [r for r in table if r["setting"] == setting]
        xs = range(len(mine))
        axes[0].plot(xs, [r["psnr"] for r in mine], "o-", label=setting)
        axes[1].plot(xs, [r["loss"] for r in mine], "o-", label=setting)
        ticks = [radius_label(r["radius"]) for r in mine]
    for ax, title in zip(axes, ("PSNR (dB)", "gradient-matching loss")):
        ax.set_xticks(list(range(len(ticks))), ticks)
        ax.set_ylabel(title)
        ax.legend(fontsize=8)
    axes[1].set_yscale("log")
    fig.tight_layout()
    return fig


def show_sweep_images(pictures: dict, rows: list[dict], radii, stage_name: str):
    """One figure per (setting, image): the truth, then the deep stage searched with each radius, titled with
    its PSNR and gradient loss."""
    from .viz import show_images

    figures = []
    for (name, i), imgs in pictures.items():
        scores = [r for r in rows if r["setting"] == name and r["image"] == i]
        titles = ["truth"] + [f"{radius_label(rho)}\n{s['psnr']:.1f} dB\nloss {s['loss']:.4f}"
                              for rho, s in zip(radii, scores)]
        figures.append(show_images(imgs, titles, suptitle=f"{name}, image {i}: the {stage_name} stage searched "
                                                            "with each radius"))
    return figures


def radius_explorer(pictures: dict, rows: list[dict], radii):
    """A widget over the stored sweep (nothing is optimised): pick a setting and image, slide the radius, and
    see the truth beside that radius's reconstruction with its PSNR and gradient loss."""
    import ipywidgets as W
    import matplotlib.pyplot as plt

    which = W.Dropdown(options=[(f"{n}, image {i}", (n, i)) for n, i in pictures], description="run")
    radius = W.SelectionSlider(options=[(radius_label(r), j) for j, r in enumerate(radii)], description="radius")
    out = W.Output()

    def draw(*_):
        name, i = which.value
        j = radius.value
        score = [r for r in rows if r["setting"] == name and r["image"] == i][j]
        imgs = pictures[which.value]
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 2, figsize=(4.2, 2.4))
            for ax, img, t in zip(axes, (imgs[0], imgs[1 + j]), ("truth", radius_label(radii[j]))):
                ax.imshow(img.clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
                ax.set_title(t, fontsize=9)
                ax.axis("off")
            fig.suptitle(f"{score['psnr']:.2f} dB, gradient loss {score['loss']:.4f}", fontsize=9)
            plt.show()

    which.observe(draw, "value")
    radius.observe(draw, "value")
    draw()
    return W.VBox([W.HBox([which, radius]), out])
