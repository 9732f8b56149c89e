"""GIFD: Gradient Inversion over Feature Domains (Fang et al., ICCV 2023), notebook 05.

Searching only the latent z of a generator (GGL, notebook 04) leaves the attack inside the generator's range,
which rarely contains the client's exact image. GIFD moves *into* the generator, stage by stage:

1. stage 0: optimise z by cosine gradient matching (with a small TV term; z is kept on its sphere ||z|| = √d
   after every step, so a norm penalty on z would always be zero and there is none);
2. stage k = 1, 2, …: take the stage-k features h_0 that the previous stage's optimum produces and optimise
   them, projecting after every step onto the l1 ball ||h - h_0||_1 ≤ r_k (r_k a fraction of ||h_0||_1,
   notebook 06), so each stage can only move so far from an image the generator could make;
3. choose the output among every (stage, restart) without the ground truth.

Why step 3 needs care: stage k+1 starts from stage k's optimum, so within a restart the matching loss can only
fall from stage to stage, and the lowest-loss rule (``select="loss"``) always picks the deepest stage, even where
the deeper stage's extra freedom fits noise rather than the image. ``select="holdout"`` splits the
observed update once, seeded, into a fitting part (a random 1 - ``holdout`` of the entries of every tensor) and
a held-out part; every stage fits only the fitting part, and the held-out cosine distance, which overfitting
cannot lower, chooses the stage: see :func:`choose_candidate` for the exact rule and docs/results for why.
Then the chosen stage is refitted for ``refit_steps`` steps, at ``refit_lr_scale`` times its learning rate, to the
*whole* update from the chosen features (a feature stage within an l1 ball of the stage's radius around them,
so up to about twice the radius from where the stage began; the latent on its sphere), so the output does not
pay for the entries held out: the depth is chosen on held-out data, the image fitted on all of it.
``select="auto"``, the default, uses the held-out rule where it paid (a noised update), and elsewhere the lowest
loss, stopping after the 16x16 stage for batches of four or more (:func:`resolve_selection`).

``best_layer`` names the stage chosen; ``history.extra["candidates"]`` holds every (restart, stage) candidate
with its fitting and held-out loss and image; ``history.extra["stages"]`` holds, per stage, every restart's
loss and image (``losses``, ``restart_images``) and the best of them (``best_loss``, ``images``, ``features``).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import torch
from torch import nn

from ..config import GIFDConfig
from ..errors import GifdError
from ..fl import ThreatModel
from ..gan.generator import Generator
from .core import History, Reconstruction, snapshot_steps
from .generative import matching_loss, optimise_stage, prepare, render, sphere
from .oracle import MatchingOracle

__all__ = ["gifd", "choose_candidate", "resolve_selection", "SELECTION_RULES", "search_stage_again", "radius_sweep"]

SELECTION_RULES = ("auto", "holdout", "loss")


AUTO_LAST_STAGE = "16x16"     # where ``auto`` ends the search for a batch of AUTO_BATCH or more
AUTO_BATCH = 4


def resolve_selection(select: str, threat_model: ThreatModel | None,
                      batch_size: int | None = None) -> tuple[str, str | None]:
    """The rule GIFD applies and the stage it stops after (None: the config's last): ``auto`` (the default) is

    - ``holdout`` for an update with the noise defense: the deep stages fit the noise, the held-out loss sees it
      (+1.30 ± 0.86 dB over the lowest loss, ConvNet, 10 images);
    - ``loss``, stopping after 16x16, for a batch of 4 or more: there a deeper stage explains the averaged
      gradient with a wrong image set, on the held-out entries too, so holding out does not help (−0.11 dB at
      batch 8), while stopping after 16x16 gains +1.13 ± 0.44 dB at batch 4 and +0.93 ± 0.24 at batch 8;
    - ``loss`` otherwise: on a clean single-example gradient the held-out rule shows no established gain
      (−0.88 ± 1.64 dB on the ConvNet, +0.69 ± 3.28 on ResNet-18: fitting only 80% of the update costs about
      what the held-out choice wins back), and the last stage is worth keeping (on ResNet-18 it adds 4 dB).

    Numbers: docs/results/stage_selection.md (ConvNet, paired on the same images). Both facts the rule reads are
    the server's: the protocol reveals how many examples a client used, and a noise defense is announced (its σ
    is a privacy parameter).
    """
    if select not in SELECTION_RULES:
        raise GifdError(f"unknown stage selection {select!r}: choose one of {', '.join(SELECTION_RULES)}")
    if select != "auto":
        return select, None
    batch = batch_size if batch_size is not None else (threat_model.batch_size if threat_model else 1)
    if threat_model is not None and threat_model.defense == "noise":
        return "holdout", None
    return ("loss", AUTO_LAST_STAGE) if batch >= AUTO_BATCH else ("loss", None)


def gifd(model: nn.Module, update: list[torch.Tensor], labels: torch.Tensor, threat_model: ThreatModel,
         G: Generator, config: GIFDConfig, class_code: torch.Tensor | None = None, seed: int = 0,
         learn_code: bool = False) -> Reconstruction:
    """Invert ``update`` through the generator ``G``.

    ``labels`` are the FL labels used in the gradient; ``class_code`` conditions G (hard labels or soft
    class mixtures, default ``labels``, i.e. the FL task and the GAN share classes). ``learn_code`` (the soft
    label mapping, notebook 07) optimises the mixture with the latent at stage 0 and keeps it fixed after.
    ``config.select`` picks the output (module docstring, :func:`resolve_selection`); the split is drawn from
    ``seed``.
    """
    n = len(config.stages)
    if not (len(config.iterations) == len(config.lr) == len(config.radius) == n) or n == 0:
        raise GifdError("GIFD config: stages, iterations, lr and radius need one entry per stage")
    if config.stages[0] != 0 or list(config.stages) != sorted(set(config.stages)):
        raise GifdError("GIFD stages must start at 0 (the latent) and increase")
    if config.stages[-1] >= len(G.STAGES):
        raise GifdError(f"the generator has stages 0..{len(G.STAGES) - 1}")
    select, last = resolve_selection(config.select, threat_model, batch_size=len(labels))
    if last is not None and last in G.STAGES:
        keep = [i for i, k in enumerate(config.stages) if k <= G.STAGES.index(last)]
        config = replace(config, **{f: tuple(getattr(config, f)[i] for i in keep)
                                    for f in ("stages", "iterations", "lr", "radius")})
    device = next(model.parameters()).device
    target, labels, code = prepare(model, update, labels, class_code, threat_model,
                                   num_classes=G.config.num_classes if learn_code else None,
                                   holdout=config.holdout if select == "holdout" else 0.0, split_seed=seed)
    batch = len(labels)
    oracle = MatchingOracle(model, target, labels, tv_weight=config.tv_weight, compile=config.compile,
                            calls=sum(config.iterations) * config.restarts)

    history = History()
    per_stage = [{"stage": G.STAGES[k], "k": k, "losses": [], "held_losses": [], "restart_images": [],
                  "best_loss": math.inf, "images": None, "features": None} for k in config.stages]
    candidates, curves = [], []
    iterations = 0
    snap_at = snapshot_steps(sum(config.iterations), config.snapshots)
    t0 = time.perf_counter()
    try:
        for restart in range(config.restarts):
            gen = torch.Generator().manual_seed(seed * 7919 + restart)
            h = sphere(torch.randn((batch, G.config.z_dim), generator=gen)).to(device)
            prev_stage, offset, code_r = 0, 0, code
            curves.append([])
            for i, k in enumerate(config.stages):
                start = G.advance(prev_stage, h, code_r, k).detach()

                def on_step(step, feats, offset=offset, k=k, code_r=code_r):
                    nonlocal iterations
                    iterations += 1
                    if restart == 0 and offset + step in snap_at and not (learn_code and k == 0):
                        with torch.no_grad():
                            history.snapshots.append((offset + step + 1, render(G, k, feats, code_r).clamp(0, 1)))

                result = optimise_stage(oracle, G, k, start, code_r, config.iterations[i], config.lr[i],
                                        radius=config.radius[i], warmup=config.warmup,
                                        on_step=on_step, desc=f"GIFD restart {restart + 1} stage {G.STAGES[k]}",
                                        learn_code=learn_code and k == 0)
                code_r = result.code
                curves[-1] += result.curve
                offset += config.iterations[i]
                stage = per_stage[i]
                stage["losses"].append(result.loss)
                stage["held_losses"].append(result.held_loss)
                stage["restart_images"].append(result.images)
                if result.loss < stage["best_loss"]:
                    stage.update(best_loss=result.loss, images=result.images, features=result.features.cpu())
                for by, r in (("fit", result), ("held", result.held_candidate)):
                    if r is not None and math.isfinite(r.loss):
                        candidates.append({"restart": restart, "stage": G.STAGES[k], "k": k, "i": i, "by": by,
                                           "fit": r.loss, "held": r.held_loss, "images": r.images,
                                           "features": r.features.detach(), "code": r.code.detach()})
                h, prev_stage = result.features, k
            history.restart_losses.append(min(s["losses"][-1] for s in per_stage))
    except KeyboardInterrupt:
        history.interrupted = True
    history.snapshots = [(step, images.cpu()) for step, images in history.snapshots]   # kept on the device until now
    if not candidates:
        raise GifdError("GIFD produced no finite result (NaN losses in every stage)")
    best = candidates[choose_candidate(candidates, select)]
    history.loss, history.best_restart = curves[best["restart"]], best["restart"]
    history.extra.update(stages=per_stage, candidates=candidates, best_layer=best["stage"],
                         class_code=best["code"].cpu(), select=select, last_stage=G.STAGES[config.stages[-1]],
                         chosen=best)
    images, loss = best["images"], best["fit"]
    if select == "holdout":
        whole, _, _ = prepare(model, update, labels, best["code"], threat_model)
        with torch.no_grad():
            chosen = render(G, best["k"], best["features"], best["code"])
        loss = float(matching_loss(model, whole, chosen, labels, create_graph=False))   # as the loss rule reports it
        if config.refit_steps and not history.interrupted:
            # the depth is chosen; now fit the chosen stage to the *whole* update, as one refits a model on all
            # the data once validation has chosen its size
            try:
                i = best["i"]
                refit_oracle = MatchingOracle(model, whole, labels, tv_weight=config.tv_weight,
                                              compile=config.compile, calls=config.refit_steps)
                refit = optimise_stage(refit_oracle, G, best["k"], best["features"], best["code"],
                                       config.refit_steps, config.refit_lr_scale * config.lr[i],
                                       radius=config.radius[i], warmup=config.warmup,
                                       desc=f"GIFD refit {best['stage']} on the whole update")
                iterations += len(refit.curve)
                history.extra["refit"] = {"steps": len(refit.curve), "loss": refit.loss, "images_before": images}
                images, loss = refit.images, refit.loss
            except KeyboardInterrupt:                     # keep the chosen candidate, as any interrupted attack
                history.interrupted = True
    return Reconstruction(images, labels.cpu(), history, threat_model, "gifd", iterations,
                          time.perf_counter() - t0, loss)


def choose_candidate(candidates: list[dict], rule: str = "holdout", restart_by: str = "fit",
                     steps: bool = True) -> int:
    """The index of the (stage, restart) candidate GIFD outputs; only losses are used, never the truth.

    Each candidate has ``fit`` (its loss on the fitting part, the whole update without a split), ``held`` (its
    held-out loss, None without a split) and ``by`` ("fit": a stage's lowest-fitting-loss step; "held": its
    lowest-held-out-loss step).

    - ``loss``: the lowest fitting loss over all "fit" candidates (with stages chained, the deepest stage).
    - ``holdout``: first the restart, ranked by its lowest fitting loss (``restart_by="fit"``: how well it fits
      is what separates a search that locked on from one that did not), or by its lowest held-out loss
      (``"held"``); then, within that restart, the candidate with the lowest held-out loss (both kinds with
      ``steps``, only the "fit" ones without).
    """
    if rule == "loss":
        pool = [i for i, c in enumerate(candidates) if c["by"] == "fit"]
        return min(pool, key=lambda i: candidates[i]["fit"])
    if rule != "holdout":
        raise GifdError(f"unknown stage selection {rule!r}: choose holdout or loss")
    if any(c["held"] is None for c in candidates):
        raise GifdError("the holdout rule needs held-out losses (a GIFD run with a held-out split)")
    pool = [i for i, c in enumerate(candidates) if steps or c["by"] == "fit"]
    rank = "fit" if restart_by == "fit" else "held"
    per_restart: dict[int, float] = {}
    for i in pool:
        r = candidates[i]["restart"]
        per_restart[r] = min(per_restart.get(r, math.inf), candidates[i][rank])
    restart = min(per_restart, key=per_restart.get)
    return min((i for i in pool if candidates[i]["restart"] == restart), key=lambda i: candidates[i]["held"])


def search_stage_again(model: nn.Module, update: list[torch.Tensor], labels: torch.Tensor, G: Generator,
                       previous: Reconstruction, k: int, iterations: int, lr: float, radius: float | None,
                       tv_weight: float = 1e-4, class_code: torch.Tensor | None = None, compile: str = "auto"):
    """Notebook 06's ablation: search stage ``k`` again from where a GIFD run's earlier stage left off.

    Starts from the best features of the last stage of ``previous`` that lies before ``k`` and advances them to
    stage ``k``; returns that stage's :class:`~gifd_lite.attacks.generative.StageResult` (best features by
    gradient loss, image, curve). Only the radius (``None`` = unconstrained) differs between calls.
    """
    stages = [st for st in previous.history.extra["stages"] if st["k"] < k and st["features"] is not None]
    if not stages:
        raise GifdError(f"the previous GIFD run has no stage before stage {k}")
    device = next(model.parameters()).device
    if class_code is None and previous.history.extra.get("class_code") is not None:
        class_code = previous.history.extra["class_code"]          # e.g. the mixture a soft mapping learned
    target, labels, code = prepare(model, update, labels, class_code, previous.threat_model)
    before = stages[-1]
    start = G.advance(before["k"], before["features"].to(device), code, k).detach()
    oracle = MatchingOracle(model, target, labels, tv_weight=tv_weight, compile=compile, calls=iterations)
    return optimise_stage(oracle, G, k, start, code, iterations, lr, radius=radius,
                          desc=f"stage {G.STAGES[k]}, radius {radius}")


def radius_sweep(model: nn.Module, update: list[torch.Tensor], labels: torch.Tensor, threat_model: ThreatModel,
                 G: Generator, config: GIFDConfig, deep_stage: int, radii, seed: int = 0,
                 class_code: torch.Tensor | None = None) -> tuple[Reconstruction, list]:
    """Notebook 06's l1-ball ablation with only the radius varying.

    GIFD runs its stages before ``deep_stage`` once (``config``'s radii, restarts and steps); then ``deep_stage``
    is searched again from that shared start once per radius ρ in ``radii`` (``None``: no ball), with the
    steps and learning rate ``config`` gives it. Returns the shared run and one StageResult per radius.
    """
    if deep_stage not in config.stages or deep_stage == 0:
        raise GifdError(f"deep_stage must be one of the config's feature stages {list(config.stages[1:])}")
    keep = [i for i, k in enumerate(config.stages) if k < deep_stage]
    prefix = replace(config, **{f: tuple(getattr(config, f)[i] for i in keep) for f in ("stages", "iterations", "lr", "radius")})
    first = gifd(model, update, labels, threat_model, G, prefix, class_code=class_code, seed=seed)
    d = config.stages.index(deep_stage)
    return first, [search_stage_again(model, update, first.labels, G, first, deep_stage, config.iterations[d],
                                      config.lr[d], radius=rho, tv_weight=config.tv_weight, compile=config.compile)
                  for rho in radii]
