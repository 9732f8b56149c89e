"""Notebook 04: how far a search of the generator's latent gets, and whether the generator's range or the search
is what stops it.

Two bounds are compared for each client image x:

- what the attacks reach from the gradient alone: GGL (CMA-ES, or Adam at the same compute) and GIAS's latent
  phase, all of the form G(ẑ, ŷ);
- the **oracle latent**, ẑ* = argmin_z ||G(z, y) − x||² (it sees the pixels; :func:`gifd_lite.gan.analysis.
  fit_to_image`): about the best any latent of this generator can do for x.

If the attacks stay well below the oracle, the generator *could* draw something closer and the search did not
find it. :func:`search_or_range` makes that concrete: it scores every candidate by the attacker's own objective,
the gradient distance D(∇_θ CE(f_θ(G(z, ŷ)), ŷ), g), next to its PSNR. A candidate with a higher PSNR *and* a lower
gradient distance than the attack's output is a better point of the attack's own objective inside the generator's
range: the search, not the range, stopped short of it.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from . import metrics
from .attacks.gan_latent import ggl
from .data import ImageSet, normalize
from .fl import fedsgd_gradients
from .gan.analysis import fit_to_image
from .image_attacks import observe_image

__all__ = ["adam_at_equal_compute", "right_class", "oracle_latents", "gradient_distances", "search_or_range",
           "oracle_fits_better", "plot_latent_gap"]


def adam_at_equal_compute(model, test_set: ImageSet, indices: list[int], cma_recs: list, preset, G,
                          model_name: str, seed: int = 0) -> list[dict]:
    """GGL's fitness searched by Adam instead of CMA-ES, on the same updates and inferred labels. An Adam step
    needs second derivatives (about two CMA-ES evaluations), so it gets half of GGL's evaluations: the same
    compute. One row per image: ``index``, ``image`` (the reconstruction), ``psnr``, and the two fitness curves
    ``cma`` (best of each generation) and ``adam`` (every step)."""
    budget = replace(preset.ggl, evaluations=preset.ggl.evaluations // 2)
    device = next(model.parameters()).device
    rows = []
    for i, rec in zip(indices, cma_recs):
        x, _, update = observe_image(model, test_set, i, model_name, seed=seed)
        a = ggl(model, update.tensors, rec.labels.to(device), update.threat_model, G, budget, seed=seed,
                optimizer="adam")
        rows.append({"index": i, "image": a.images, "psnr": metrics.evaluate(a.images, x, with_lpips=False)["psnr"],
                     "cma": rec.history.loss, "adam": a.history.loss})
    return rows


@torch.no_grad()
def right_class(classifier, images01: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of ``images01`` the trained classifier assigns to the client's class ``labels``."""
    device = next(classifier.parameters()).device
    predicted = classifier(normalize(images01.to(device))).argmax(1).cpu()
    return float((predicted == labels.cpu()).float().mean())


def oracle_latents(G, truth01: torch.Tensor, labels: torch.Tensor, steps: int, seed: int = 0) -> dict:
    """The oracle latent of each image: min_z ||G(z, y) − x||² by Adam from 4 random starts (the best kept),
    conditioned on the true class. Returns ``images`` (G(ẑ*, y)), ``psnr`` (per image) and ``mean``."""
    fits = [fit_to_image(G, truth01[j:j + 1], labels[j:j + 1], stages=(0,), steps=steps, seed=seed)["latent"]
            for j in range(len(truth01))]
    psnr = [f["psnr"] for f in fits]
    return {"images": torch.cat([f["image"] for f in fits]), "psnr": psnr, "mean": sum(psnr) / len(psnr)}


def gradient_distances(model, images01: torch.Tensor, labels: torch.Tensor, update: list[torch.Tensor]) -> list[float]:
    """For each candidate image (one row of ``images01``, a batch-1 client): the cosine distance
    1 − <∇_θ CE(f_θ(x), y), g> / (||∇_θ CE|| ||g||) between its FedSGD gradient and the observed clean update
    ``update`` (all layers at once, as GIAS and GIFD compare them; GGL minimises the squared L2 version)."""
    device = next(model.parameters()).device
    target = torch.cat([t.flatten() for t in update]).to(device)
    out = []
    for j in range(len(images01)):
        grads = fedsgd_gradients(model, normalize(images01[j:j + 1].to(device)), labels[j:j + 1].to(device))
        flat = torch.cat([g.flatten() for g in grads])
        out.append(float(1 - flat @ target / (flat.norm() * target.norm() + 1e-12)))
    return out


def search_or_range(model, test_set: ImageSet, indices: list[int], candidates: dict[str, torch.Tensor],
                    labels: torch.Tensor, model_name: str, seed: int = 0) -> list[dict]:
    """One row per (image, candidate): ``index``, ``candidate`` (a name of ``candidates``: one image per client
    each, in the order of ``indices``), ``psnr`` against the client's image and ``distance`` (the cosine gradient
    distance to the client's update, :func:`gradient_distances`). Read together: the attacker can only see the
    distance; the oracle latent's row says what the generator's range allows."""
    rows = []
    for j, i in enumerate(indices):
        x, _, update = observe_image(model, test_set, i, model_name, seed=seed)
        for name, images in candidates.items():
            image = images[j:j + 1]
            rows.append({"index": i, "candidate": name,
                         "psnr": metrics.evaluate(image, x, with_lpips=False)["psnr"],
                         "distance": gradient_distances(model, image, labels[j:j + 1], update.tensors)[0]})
    return rows


def oracle_fits_better(rows: list[dict], oracle: str = "oracle latent") -> dict[str, dict]:
    """From :func:`search_or_range`'s rows, per search (every candidate but ``oracle``): on how many images the
    oracle's image has the higher PSNR (``closer``) and the lower gradient distance (``fits_better``), of ``n``.
    Closer *and* fitting better: the search stopped short of its own objective's better point inside the range.
    Closer but fitting worse: the search fits the update better than the oracle's image and still looks less like
    the client — gradient matching does not single out the latent nearest the image."""
    ref = {r["index"]: r for r in rows if r["candidate"] == oracle}
    out = {}
    for r in rows:
        if r["candidate"] == oracle:
            continue
        o = ref[r["index"]]
        tally = out.setdefault(r["candidate"], {"closer": 0, "fits_better": 0, "n": 0})
        tally["closer"] += o["psnr"] > r["psnr"]
        tally["fits_better"] += o["distance"] < r["distance"]
        tally["n"] += 1
    return out


def plot_latent_gap(means: dict[str, float], committed: dict[str, float] | None = None, title: str = ""):
    """Horizontal bars: the mean PSNR of every latent-only result of this run (``means``: name → dB), and, as
    black ticks, the committed laptop-preset records for the same names where given (``committed``)."""
    import matplotlib.pyplot as plt

    names = list(means)
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(names) + 1.0))
    colors = ["tab:green" if "oracle" in n else "tab:blue" for n in names]
    ax.barh(range(len(names)), [means[n] for n in names], color=colors, alpha=0.7)
    for k, n in enumerate(names):
        if committed and n in committed:
            ax.plot([committed[n]] * 2, [k - 0.4, k + 0.4], color="black", lw=2,
                    label="committed (laptop, 10 images)" if k == min(i for i, m in enumerate(names) if m in committed)
                    else None)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("PSNR (dB)")
    ax.set_xlim(0, 1.4 * max(list(means.values()) + list((committed or {}).values())))
    if committed:
        ax.legend(fontsize=7, loc="center right")
    ax.set_title(title or "latent-only results: the searches (blue) against the oracle latent (green)", fontsize=9)
    fig.tight_layout()
    return fig
