"""Measuring a prior (notebook 03): class fidelity, diversity, and how close it can get to a real image.

- **class fidelity**: a trained classifier labels G(z, y) for z ~ N(0, I); the fraction labelled y;
- **diversity**: mean pairwise distance of samples within a class (LPIPS when available, else pixel l2),
  next to the same number for a collapsed generator (one z repeated: zero) and for real images of the class;
- **reconstruction headroom** (an oracle that sees the image): the best PSNR reachable by optimising only
  the latent z, min_z ||G(z, y) - x||², against optimising the stage-k features h_k from that optimum,
  min_h ||G_{k→}(h, y) - x||². The gap is what searching intermediate features (GIFD) can gain.
"""

from __future__ import annotations

import torch

from ..data import ImageSet, normalize
from ..metrics import lpips_distance, psnr
from ..runtime import progress
from .generator import Generator, class_code, to_unit

__all__ = ["sample", "class_fidelity", "diversity", "fit_to_image"]


@torch.no_grad()
def sample(G: Generator, labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Images in [0, 1] for the given labels, z ~ N(0, I) from ``seed``."""
    device = next(G.parameters()).device
    z = torch.randn((len(labels), G.config.z_dim), generator=torch.Generator().manual_seed(seed)).to(device)
    return to_unit(G(z, labels.to(device))).cpu()


@torch.no_grad()
def class_fidelity(G: Generator, classifier: torch.nn.Module, per_class: int = 100, seed: int = 0,
                   classifier_classes: tuple[str, ...] | None = None) -> dict:
    """Fraction of samples of each class that ``classifier`` assigns to that class (by class name)."""
    names = G.classes
    classifier_classes = classifier_classes or names
    device = next(classifier.parameters()).device
    per = {}
    for k, name in enumerate(names):
        images = sample(G, torch.full((per_class,), k), seed=seed + k)
        predicted = classifier(normalize(images.to(device))).argmax(1).cpu()
        per[name] = float((predicted == classifier_classes.index(name)).float().mean())
    return {"per_class": per, "mean": sum(per.values()) / len(per)}


def _mean_pairwise(images: torch.Tensor, metric: str = "auto") -> tuple[float, str]:
    n = len(images)
    i, j = torch.triu_indices(n, n, offset=1)
    lp = lpips_distance(images[i], images[j]) if metric == "auto" else None
    if lp is not None:
        return float(lp.mean()), "lpips"
    return float((images[i] - images[j]).flatten(1).norm(dim=1).mean()), "pixel l2"


def diversity(G: Generator, real: ImageSet | None = None, per_class: int = 16, seed: int = 0,
              metric: str = "auto") -> dict:
    """Mean pairwise distance within each class: generated, collapsed (same z repeated) and real.

    ``metric``: ``"auto"`` is LPIPS where its weights are available, else pixel l2; ``"pixel"`` is always pixel l2
    (to compare with records made without LPIPS).
    """
    rows = {}
    for k, name in enumerate(G.classes):
        fake = sample(G, torch.full((per_class,), k), seed=seed + k)
        collapsed = sample(G, torch.full((1,), k), seed=seed + k).repeat(per_class, 1, 1, 1)
        row = {}
        row["generated"], used = _mean_pairwise(fake, metric)
        row["collapsed"], _ = _mean_pairwise(collapsed, metric)
        if real is not None and name in real.classes:
            idx = (real.labels == real.classes.index(name)).nonzero()[0][:per_class]
            row["real"], _ = _mean_pairwise(real.tensors(idx)[0], metric)
        rows[name] = row
    mean = {key: sum(r[key] for r in rows.values() if key in r) / len(rows) for key in ("generated", "collapsed")}
    if all("real" in r for r in rows.values()):
        mean["real"] = sum(r["real"] for r in rows.values()) / len(rows)
    return {"metric": used, "per_class": rows, "mean": mean}


def fit_to_image(G: Generator, target01: torch.Tensor, label: torch.Tensor, stages: tuple[int, ...] = (0, 2),
                 steps: int = 300, lr: float = 0.05, restarts: int = 4, seed: int = 0,
                 learn_code: bool = False) -> dict:
    """Oracle inversion of G by pixel loss: PSNR after optimising z, then the features of each later stage.

    Stage 0 optimises z from ``restarts`` random starts (the best is kept per image); every later stage in
    ``stages`` starts from the features the stage-0 optimum produces and optimises them directly. ``label``
    holds hard classes (B,) or soft class codes (B, K); ``learn_code`` also optimises the class mixture
    softmax(a) with z, from ``label`` (the ceiling of the soft label mapping, notebook 07). Each stage gives
    ``psnr`` (the batch mean), ``psnr_per_image`` and ``image``; the latent stage also its ``code``.
    """
    device = next(G.parameters()).device
    target = target01.to(device)
    code = class_code(label.to(device), G.config.num_classes)
    gen = torch.Generator().manual_seed(seed)

    def per_image_mse(z, c):
        return (to_unit(G(z, c)) - target).pow(2).flatten(1).mean(1)

    best_z, best_code, best_loss = None, code, torch.full((len(target),), float("inf"), device=device)
    for _ in range(restarts):
        z = torch.randn((len(target), G.config.z_dim), generator=gen).to(device).requires_grad_(True)
        mix = code.clamp_min(1e-6).log().requires_grad_(True) if learn_code else None
        code_now = (lambda: mix.softmax(1)) if learn_code else (lambda: code)  # noqa: E731
        opt = torch.optim.Adam([z, mix] if learn_code else [z], lr=lr)
        for _ in progress(range(steps), desc="fit latent"):
            loss = per_image_mse(z, code_now()).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            c = code_now()
            final = per_image_mse(z, c)
            if best_z is None:
                best_z, best_code = z.detach().clone(), c.clone()
            better = final < best_loss
            best_z[better], best_code[better] = z.detach()[better], c[better]
            best_loss = torch.minimum(best_loss, final)
    results = {}
    for k in stages:
        h = G.features(best_z, best_code, upto=k).detach().clone().requires_grad_(True)
        if k > 0:
            opt = torch.optim.Adam([h], lr=lr)
            for _ in progress(range(steps), desc=f"fit stage {k}"):
                loss = (to_unit(G.forward_from(k, h, best_code)) - target).pow(2).flatten(1).mean(1).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            image = to_unit(G.forward_from(k, h, best_code)).clamp(0, 1)
        per_image = psnr(image.cpu(), target01)
        results[G.STAGES[k]] = {"psnr": float(per_image.mean()), "psnr_per_image": per_image.tolist(),
                                "image": image.cpu()}
    if 0 in stages:
        results[G.STAGES[0]]["code"] = best_code.cpu()
    return results
