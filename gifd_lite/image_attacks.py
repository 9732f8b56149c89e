"""Attack test images one client at a time and collect tidy rows (notebooks 01, 02, 04, 05 and their solutions).

Each image i is its own client: it sends u_i = update(f_θ; x_i, y_i) (batch 1, FedSGD, no defense unless a
threat model says otherwise), the attacker reconstructs x̂_i from u_i alone, and x̂_i is scored against x_i only.
A set of images is summarised by the mean over images of the per-image scores,

    PSNR̄ = (1/n) Σ_i PSNR(x̂_i, x_i),   PSNR(x̂, x) = 10 log10(1 / MSE(x̂, x))   (pixels in [0, 1]),

never by matching reconstructions of different clients to each other: :func:`gifd_lite.metrics.evaluate`'s
Hungarian matching pairs the images of *one* client's batch, whose order the update does not reveal; between
separate clients the pairing is known, and matching across them would let client j's reconstruction be scored
against client i's image. The rows are plain dicts, so a notebook can print them (:func:`format_rows`) or hand
them to the ``results`` dict it writes to metrics.json.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from . import data, fl, metrics, pipeline
from .runtime import progress

__all__ = ["observe_image", "attack_images", "client_scores", "score_clients", "compare", "ablation_rows",
           "short_budget", "equal_budget_runs", "restart_runs", "format_rows"]


def _model_name(model, name):
    return name or getattr(model, "name", None) or type(model).__name__.lower()


def observe_image(model, test_set, index: int, model_name: str | None = None, seed: int = 0,
                  threat: dict | None = None) -> tuple:
    """``(x, y, update)`` for test image ``index`` as a batch-1 client: the image in [0, 1], its label, and the
    update the server sees under ``ThreatModel(model_name, **threat)`` (e.g. ``{"defense": "noise",
    "defense_param": 0.01}``). Notebooks 04 and 05 (through :func:`attack_images` and
    :mod:`gifd_lite.latent_limits`)."""
    x, y, _ = data.victim_batch(test_set, index, 1)
    tm = fl.ThreatModel(_model_name(model, model_name), **(threat or {}))
    return x, y, pipeline.observe(model, x, y, tm, seed=seed)


def attack_images(method: str, model, test_set, indices, preset, model_name: str | None = None, seed: int = 0,
                  with_lpips: bool = False, threat: dict | None = None, generator=None) -> dict:
    """One attack on each test image ``indices[i]`` as a separate batch-1 client (notebooks 01, 02, 04, 05).

    Returns ``rows`` (one dict per image: index, class, MSE, PSNR, SSIM, LPIPS, label accuracy, gradient loss,
    iterations, seconds), the means ``psnr``/``ssim``/``lpips``/``label_accuracy`` over images, the stacked
    ``truth``, ``labels`` and ``images``, ``recs`` (one :class:`~gifd_lite.attacks.core.Reconstruction` per
    image) and ``scores``: the means and ``per_image`` lists in the form of :func:`gifd_lite.metrics.evaluate`
    (and ``viz.show_comparison``), each image scored against its own client's image (:func:`client_scores`,
    ``order`` the identity). ``threat`` adds fields to every client's :class:`~gifd_lite.fl.ThreatModel`
    (e.g. a defense); ``generator`` is the prior GGL, GIAS and GIFD need.
    """
    name = _model_name(model, model_name)
    rows, truths, labels, images, recs, per_client = [], [], [], [], [], []
    for i in progress(list(indices), desc=method):
        x, y, update = observe_image(model, test_set, i, name, seed=seed, threat=threat)
        rec = pipeline.run_attack(method, model, update, preset, batch_size=1, seed=seed, generator=generator)
        s = pipeline.score(rec, x, y, with_lpips=with_lpips)
        rows.append({"index": int(i), "class": test_set.classes[int(y)], "method": method, "model": name,
                     "mse": s["mse"], "psnr": s["psnr"], "ssim": s["ssim"], "lpips": s["lpips"],
                     "label_accuracy": s["label_accuracy"], "gradient_loss": rec.gradient_loss,
                     "iterations": rec.iterations, "seconds": rec.seconds})
        truths.append(x)
        labels.append(y)
        images.append(rec.images.detach().cpu())
        recs.append(rec)
        per_client.append(s)
    scores = client_scores(per_client)
    mean = {k: scores[k] for k in ("psnr", "ssim", "lpips")}
    mean["label_accuracy"] = _mean([r["label_accuracy"] for r in rows])
    return {"rows": rows, **mean, "truth": torch.cat(truths), "labels": torch.cat(labels),
            "images": torch.cat(images), "recs": recs, "scores": scores}


def client_scores(per_client: list[dict]) -> dict:
    """Scores of several separate clients, each already scored against its own images (a
    :func:`gifd_lite.metrics.evaluate` or :func:`gifd_lite.pipeline.score` result per client), in the form of
    one ``evaluate`` result: ``per_image`` lists concatenated in client order, their means (finite values, as
    ``evaluate``), and ``order`` = each client's own order shifted by the images before it (the identity for
    batch-1 clients). Nothing is matched across clients. Notebooks 04 and 05 (through :func:`attack_images`)."""
    keys = ("mse", "psnr", "ssim", "lpips")
    per_image = {k: [v for s in per_client for v in s["per_image"][k]] for k in keys}
    order, offset = [], 0
    for s in per_client:
        order += [offset + int(o) for o in s["order"]]
        offset += len(s["order"])
    return {**{k: _mean(per_image[k]) for k in keys}, "per_image": per_image, "order": order}


def score_clients(images: torch.Tensor, truth: torch.Tensor, with_lpips: bool = False) -> dict:
    """Score ``images[i]`` against ``truth[i]`` only, for n separate batch-1 clients (e.g. the GIAS latent-phase
    images of notebook 04): :func:`client_scores` of n one-image :func:`gifd_lite.metrics.evaluate` calls."""
    return client_scores([metrics.evaluate(images[i:i + 1], truth[i:i + 1], with_lpips=with_lpips)
                          for i in range(len(truth))])


def _mean(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    return sum(values) / len(values) if values else None


def compare(variants: dict, method: str, model, test_set, indices, preset, seed: int = 0,
            with_lpips: bool = True) -> dict:
    """Notebook 02's ablation: the same images attacked once per variant, ``variants`` = {name: config of the
    method} (e.g. ``{"L2 + TV": replace(preset.ig, distance="l2")}``); everything else identical. Returns
    {name: :func:`attack_images` result}."""
    key = {"dlg": "dlg", "idlg": "dlg", "ig": "ig"}[method]
    return {name: attack_images(method, model, test_set, indices, preset.override(**{key: cfg}), seed=seed,
                                with_lpips=with_lpips)
            for name, cfg in variants.items()}


def ablation_rows(results: dict, reference: str) -> list[dict]:
    """Notebook 02: one row per variant of :func:`compare`: the means over images and, paired on the same
    images, the PSNR difference to the ``reference`` variant, d̄ = (1/n) Σ_i (PSNR_i(variant) − PSNR_i(reference)),
    with the half-width of its 95% t interval and on how many of the n images the variant was higher
    (:func:`gifd_lite.paired.paired_difference`)."""
    from .paired import paired_difference

    ref = [r["psnr"] for r in results[reference]["rows"]]
    rows = []
    for name, res in results.items():
        row = {"variant": name, "psnr": res["psnr"], "ssim": res["ssim"], "lpips": res["lpips"]}
        if name != reference:
            d = paired_difference([r["psnr"] for r in res["rows"]], ref)
            row.update(d_psnr=d["mean"], d_ci=d["ci"], higher=f"{d['higher']} of {d['n']}")
        rows.append(row)
    return rows


def short_budget(preset, divisor: int = 6, minimum: int = 6):
    """Notebook 01's failure demo: the preset's DLG budget cut to max(``minimum``, iterations // ``divisor``)
    L-BFGS steps and one restart. Returns the new preset and a dict saying what the budget was."""
    steps = max(minimum, preset.dlg.iterations // divisor)
    short = preset.override(dlg=replace(preset.dlg, iterations=steps, restarts=1))
    return short, {"lbfgs_steps": steps, "of_steps": preset.dlg.iterations, "restarts": 1,
                   "of_restarts": preset.dlg.restarts, "inner_steps": preset.dlg.inner_steps,
                   "max_evaluations": preset.dlg.max_evaluations}


def equal_budget_runs(cases: list[dict], test_set, index: int, preset, models_by_name: dict, seed: int = 0) -> list[dict]:
    """Notebook 01: several (model, method, batch size) cases on the same client image ``index`` and the same
    ``preset``, so that a difference between two rows is the case's and not the budget's.

    ``cases`` = [{"name": ..., "model": "lenet" | "convnet", "method": "dlg" | "idlg", "batch": B}, ...];
    ``models_by_name`` maps a model name to the (untrained, eval-mode) network. A batch of B takes image
    ``index`` and the next images with labels not yet in the batch. Each row: the case, PSNR (batch matched
    by the Hungarian algorithm), label accuracy, the gradient distance reached, the images, the ``score`` that
    ``viz.show_comparison`` takes and the run's ``snapshots``.
    """
    rows = []
    for case in cases:
        x, y, _ = data.victim_batch(test_set, index, case["batch"])
        net = models_by_name[case["model"]]
        update = pipeline.observe(net, x, y, fl.ThreatModel(case["model"], batch_size=case["batch"]), seed=seed)
        rec = pipeline.run_attack(case["method"], net, update, preset, batch_size=case["batch"], seed=seed)
        s = pipeline.score(rec, x, y, with_lpips=False)
        rows.append({**case, "psnr": s["psnr"], "label_accuracy": s["label_accuracy"],
                     "gradient_loss": rec.gradient_loss, "iterations": rec.iterations, "truth": x,
                     "images": rec.images.detach().cpu(), "score": s, "snapshots": rec.history.snapshots})
    return rows


def restart_runs(method: str, model, update, truth, preset, restarts: int, seed: int = 0) -> dict:
    """Notebook 02: ``restarts`` separate one-restart runs from seeds seed, seed+1, …; the attacker keeps the
    run with the lowest gradient loss (it cannot see PSNR). Returns ``rows`` (gradient loss, PSNR, images),
    the ``chosen`` row's index and ``best`` (the index of the highest PSNR, which only we can see)."""
    key = {"dlg": "dlg", "idlg": "dlg", "ig": "ig"}[method]
    one = preset.override(**{key: replace(getattr(preset, key), restarts=1)})
    rows = []
    for k in range(restarts):
        rec = pipeline.run_attack(method, model, update, one, batch_size=len(truth), seed=seed + k)
        rows.append({"seed": seed + k, "gradient_loss": rec.gradient_loss,
                     "psnr": metrics.evaluate(rec.images, truth, with_lpips=False)["psnr"],
                     "images": rec.images.detach().cpu()})
    chosen = min(range(restarts), key=lambda k: rows[k]["gradient_loss"])
    best = max(range(restarts), key=lambda k: rows[k]["psnr"])
    return {"rows": rows, "chosen": chosen, "best": best}


def format_rows(rows: list[dict], columns: list[str] | None = None, digits: int = 2) -> str:
    """A plain-text table of tidy rows (the columns given, else every plain field of any row, in order)."""
    if columns is None:
        columns = []
        for r in rows:
            columns += [k for k, v in r.items() if k not in columns and not isinstance(v, (torch.Tensor, dict, list))]

    def cell(v):
        if v is None:
            return "n/a"
        if isinstance(v, float):
            return f"{v:.{digits}f}"
        return str(v)

    table = [columns] + [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(line[j]) for line in table) for j in range(len(columns))]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(line, widths)) for line in table)
