"""Notebook 03's look at the GAN prior: its stages, what they hold, what it draws, and how good a prior it is.

Every function returns tidy rows (a list of dicts), images or a matplotlib figure, so that the notebook's cells
stay a call and a print. The measurements themselves (class fidelity, diversity, the oracle's headroom) are in
:mod:`gifd_lite.gan.analysis`; the committed laptop-preset values they are compared with are
``docs/results/prior_metrics.json`` (read with :func:`gifd_lite.results.lookup`).
"""

from __future__ import annotations

import torch

from .data import ImageSet, normalize, victim_batch
from .gan.analysis import fit_to_image
from .gan.generator import class_code, to_unit

__all__ = ["stage_table", "plot_stage_features", "interpolations", "judge", "fidelity_rows", "plot_fidelity",
           "headroom", "class_browser", "truncation_rows", "morph_verdicts"]


@torch.no_grad()
def stage_table(G, z: torch.Tensor, y: torch.Tensor) -> list[dict]:
    """One row per stage k: ``k``, ``stage``, ``shape`` (one example's features h_k), ``numbers`` (their size) and
    ``gap`` = max |G_{k→}(h_k, y) − G(z, y)| with h_k = ``G.features(z, y, upto=k)``: splitting the generator at
    any stage and finishing the forward pass from there must give the same image (gap ~ 1e-7, float error)."""
    full = G(z, y)
    rows = []
    for k, (name, shape) in enumerate(G.stages()):
        h = G.features(z, y, upto=k)
        rows.append({"k": k, "stage": name, "shape": tuple(shape), "numbers": h[0].numel(),
                     "gap": float((G.forward_from(k, h, y) - full).abs().max())})
    return rows


@torch.no_grad()
def plot_stage_features(G, z: torch.Tensor, y: torch.Tensor, channels: int = 6):
    """For one sample G(z, y): its image, then the first ``channels`` feature maps of every spatial stage
    (4×4 … 32×32), one stage per row. Coarse layout sits in the small maps, edges and texture in the large."""
    import matplotlib.pyplot as plt

    image = to_unit(G(z[:1], y[:1]))[0].clamp(0, 1).permute(1, 2, 0).cpu()
    rows = range(1, len(G.STAGES))
    fig, axes = plt.subplots(len(rows), channels + 1, figsize=(1.3 * (channels + 1), 1.5 * len(rows)))
    for row, k in zip(axes, rows):
        h = G.features(z[:1], y[:1], upto=k)[0].cpu()
        row[0].imshow(image)
        row[0].set_ylabel(G.STAGES[k], fontsize=9)
        for c in range(channels):
            row[c + 1].imshow(h[c], cmap="viridis")
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"the image, and {channels} channels of each stage's features", fontsize=10)
    fig.tight_layout()
    return fig


@torch.no_grad()
def interpolations(G, seed: int = 0, klass: int = 0, from_class: int = 0, to_class: int = 3,
                   steps: int = 8) -> torch.Tensor:
    """Two rows of ``steps`` images in [0, 1]: G((1−t) z0 + t z1, ``klass``), a walk in the latent with the class
    fixed; and G(z0, (1−t) e_a + t e_b), a walk in the class code from ``from_class`` to ``to_class`` with z0
    fixed (t from 0 to 1). The class code is continuous: notebook 07's soft label mapping uses the mixtures."""
    device = next(G.parameters()).device
    k = G.config.num_classes
    t = torch.linspace(0, 1, steps)[:, None]
    z0, z1 = torch.randn(2, G.config.z_dim, generator=torch.Generator().manual_seed(seed))
    latent = to_unit(G(((1 - t) * z0 + t * z1).to(device), torch.full((steps,), klass, device=device)))
    a, b = class_code(torch.tensor([from_class, to_class]), k)
    codes = (1 - t) * a + t * b
    morph = to_unit(G(z0.repeat(steps, 1).to(device), codes.to(device)))
    return torch.cat([latent, morph]).clamp(0, 1).cpu()


@torch.no_grad()
def judge(classifier, images01: torch.Tensor, classes: tuple[str, ...]) -> list[str]:
    """The class name the classifier gives each image (its arg-max): the judge of class fidelity."""
    device = next(classifier.parameters()).device
    return [classes[int(i)] for i in classifier(normalize(images01.to(device))).argmax(1).cpu()]


def fidelity_rows(fidelity: dict, committed: dict | None = None) -> list[dict]:
    """One row per class: ``class``, ``fidelity`` (the fraction of its samples the judge labels as that class,
    from :func:`gifd_lite.gan.analysis.class_fidelity`) and, when given, ``committed`` (the laptop-preset value
    in docs/results/prior_metrics.json); a last row ``mean``."""
    committed = committed or {}
    rows = [{"class": name, "fidelity": value, "committed": committed.get(name)}
            for name, value in fidelity["per_class"].items()]
    mean = sum(committed.values()) / len(committed) if committed else None
    return rows + [{"class": "mean", "fidelity": fidelity["mean"], "committed": mean}]


def plot_fidelity(rows: list[dict], chance: float = 0.1):
    """Bars of each class's fidelity (this run, and the committed run if the rows carry it), with chance level
    (a judge that guesses) as a dashed line."""
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["class"] != "mean"]
    x = torch.arange(len(rows)).float()
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.bar(x - 0.2, [r["fidelity"] for r in rows], 0.4, label="this run")
    if all(r["committed"] is not None for r in rows):
        ax.bar(x + 0.2, [r["committed"] for r in rows], 0.4, label="committed (laptop, 100 per class)")
    ax.axhline(chance, ls="--", color="0.4", lw=1, label="chance")
    ax.set_xticks(x.tolist(), [r["class"] for r in rows], fontsize=8, rotation=30)
    ax.set_ylim(0, 1.25)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel("labelled as its class")
    ax.legend(fontsize=7, ncol=3, loc="upper center")
    fig.tight_layout()
    return fig


def headroom(G, test_set: ImageSet, indices: list[int], steps: int, seed: int = 0) -> tuple[list[dict], list]:
    """The oracle's reach (it sees the image): for each test image of a class the prior knows, the PSNR of
    min_z ||G(z, y) − x||² (``latent``) and, from that optimum, of min_h ||G_{2→}(h, y) − x||² over the 8×8
    features (``8x8``). Returns the rows (``index``, ``class``, ``latent``, ``8x8``) and, per image, the three
    pictures (image, best latent, best 8×8 features) in a flat list."""
    rows, pictures = [], []
    for i in indices:
        x, y, _ = victim_batch(test_set, i, 1)
        name = test_set.classes[int(y)]
        if name not in G.classes:
            continue
        fit = fit_to_image(G, x, torch.tensor([G.classes.index(name)]), stages=(0, 2), steps=steps, seed=seed)
        rows.append({"index": i, "class": name, "latent": fit["latent"]["psnr"], "8x8": fit["8x8"]["psnr"]})
        pictures += [x, fit["latent"]["image"], fit["8x8"]["image"]]
    return rows, pictures


def class_browser(samples: torch.Tensor, labels: torch.Tensor, verdicts: list[str], classes: tuple[str, ...]):
    """Notebook 03 (``INTERACTIVE``): a dropdown over the prior's classes showing the stored samples of that
    class, each titled with the judge's verdict (red where it names another class). Nothing is recomputed."""
    import ipywidgets as W
    import matplotlib.pyplot as plt

    pick = W.Dropdown(options=list(classes), description="class")
    out = W.Output()

    def draw(*_):
        k = classes.index(pick.value)
        mine = [j for j in range(len(labels)) if int(labels[j]) == k]
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, len(mine), figsize=(1.6 * len(mine), 2.0), squeeze=False)
            for ax, j in zip(axes[0], mine):
                ax.imshow(samples[j].permute(1, 2, 0).numpy(), interpolation="nearest")
                ax.set_title(verdicts[j], fontsize=8, color="black" if verdicts[j] == pick.value else "tab:red")
                ax.axis("off")
            right = sum(verdicts[j] == pick.value for j in mine)
            fig.suptitle(f"G(z, '{pick.value}'): the judge agrees on {right} of {len(mine)}", fontsize=9)
            plt.show()

    pick.observe(draw, "value")
    draw()
    return W.VBox([pick, out])


@torch.no_grad()
def truncation_rows(G, classifier, scales=(0.5, 1.0, 1.5), per_class: int = 16, seed: int = 0) -> list[dict]:
    """Exercise 2 of notebook 03: samples G(s·z, y), z ~ N(0, I), at each latent scale s. One row per s:
    ``scale``, ``fidelity`` (the fraction the judge assigns to y, over all classes) and ``diversity`` (the mean
    pairwise pixel l2 within a class, averaged over classes). s < 1 is the "truncation trick" in its simplest
    form: samples nearer the latent's mode."""
    device = next(G.parameters()).device
    rows = []
    for s in scales:
        right, spread = 0, 0.0
        for k, name in enumerate(G.classes):
            z = torch.randn((per_class, G.config.z_dim), generator=torch.Generator().manual_seed(seed + k))
            images = to_unit(G(s * z.to(device), torch.full((per_class,), k, device=device))).clamp(0, 1).cpu()
            right += sum(v == name for v in judge(classifier, images, classifier.classes))
            i, j = torch.triu_indices(per_class, per_class, offset=1)
            spread += float((images[i] - images[j]).flatten(1).norm(dim=1).mean())
        rows.append({"scale": s, "fidelity": right / (per_class * len(G.classes)), "diversity": spread / len(G.classes)})
    return rows


@torch.no_grad()
def morph_verdicts(G, classifier, from_class: int, to_class: int, n_z: int = 8, steps: int = 11,
                   seed: int = 0) -> list[dict]:
    """Exercise 3 of notebook 03: for ``n_z`` latents, the judge's verdict along the class-code walk
    G(z, (1−t) e_from + t e_to), t = 0 … 1 in ``steps`` steps. One row per z: ``z``, ``verdicts`` (a class name
    per t), ``t`` (the grid) and ``switch`` (the first t at which the verdict is ``to_class``'s name, or None)."""
    device = next(G.parameters()).device
    t = torch.linspace(0, 1, steps)
    a, b = class_code(torch.tensor([from_class, to_class]), G.config.num_classes)
    codes = ((1 - t[:, None]) * a + t[:, None] * b).to(device)
    zs = torch.randn((n_z, G.config.z_dim), generator=torch.Generator().manual_seed(seed))
    target = G.classes[to_class]
    rows = []
    for n, z in enumerate(zs):
        images = to_unit(G(z.repeat(steps, 1).to(device), codes)).clamp(0, 1)
        verdicts = judge(classifier, images, classifier.classes)
        switch = next((float(t[k]) for k, v in enumerate(verdicts) if v == target), None)
        rows.append({"z": n, "verdicts": verdicts, "t": t.tolist(), "switch": switch})
    return rows
