"""One call from a victim batch to a scored reconstruction: what the CLI and the notebooks share.

    client  : x, y, model  →  update g (FedSGD / FedAvg, defense)        (gifd_lite.fl)
    attacker: g, model     →  labels ŷ (inferred unless given)          (gifd_lite.labels)
              g, ŷ, model  →  x̂ (DLG, iDLG, IG, ...)                    (gifd_lite.attacks)
    report  : x̂ vs x       →  PSNR, SSIM, LPIPS, label accuracy          (gifd_lite.metrics)
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from torch import nn

from . import __version__
from .attacks import Reconstruction, dlg, inverting_gradients
from .attacks.gan_latent import ggl, gias
from .attacks.gifd import gifd
from .config import Preset
from .errors import GifdError
from .fl import ClientUpdate, ThreatModel, client_update
from .labels import infer_labels, label_accuracy
from .metrics import evaluate

__all__ = ["METHODS", "GENERATIVE_METHODS", "observe", "run_attack", "attack_copy", "score"]

METHODS = ("dlg", "idlg", "ig", "ggl", "gias", "gifd")
GENERATIVE_METHODS = ("ggl", "gias", "gifd")
PRIOR_SHAPE = (3, 32, 32)          # what the shipped GAN priors draw: the generator attacks need a model taking it


def observe(model: nn.Module, images01: torch.Tensor, labels: torch.Tensor, threat_model: ThreatModel,
            seed: int = 0) -> ClientUpdate:
    """The update the server receives from a client holding ``images01`` (in [0, 1]) and ``labels``; the images
    have the threat model's input shape and are normalised with its statistics (``threat_model.input``)."""
    device = next(model.parameters()).device
    num_classes = _num_classes(model)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise GifdError(f"label {int(labels.max())} is out of range for a {num_classes}-class model (0..{num_classes - 1})")
    spec = threat_model.input
    if tuple(images01.shape[1:]) != spec.shape:
        raise GifdError(f"images must be {'×'.join(map(str, spec.shape))} (the threat model's input shape), "
                        f"got {'×'.join(map(str, images01.shape[1:]))}")
    gen = torch.Generator().manual_seed(seed + 104729)
    return client_update(model, spec.normalize(images01.to(device)), labels.to(device), threat_model, gen)


def _num_classes(model: nn.Module) -> int:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features


def run_attack(method: str, model: nn.Module, update: ClientUpdate, preset: Preset, batch_size: int,
               seed: int = 0, labels: torch.Tensor | None = None, generator=None,
               class_code: torch.Tensor | None = None, label_mapping=None) -> Reconstruction:
    """Run one attack on an observed update. Labels are inferred from the update unless given.

    GGL, GIAS and GIFD need ``generator`` (a loaded prior, :func:`gifd_lite.gan.load_generator`); it is
    conditioned on ``class_code`` when given, else on the FL labels. ``label_mapping`` (a callable
    ``labels -> LabelMapping``, notebook 07) chooses the class code from the inferred labels instead.
    """
    if method not in METHODS:
        raise GifdError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    if method in GENERATIVE_METHODS and generator is None:
        raise GifdError(f"method {method!r} needs a GAN prior (load one with gifd_lite.gan.load_generator)")
    tm = update.threat_model
    if method in GENERATIVE_METHODS and tm.input.shape != PRIOR_SHAPE:
        raise GifdError(f"{method} searches the GAN prior's 3×32×32 RGB images, but this model takes "
                        f"{'×'.join(map(str, tm.input.shape))} inputs: use ig, dlg or idlg (pixel attacks)")
    device = next(model.parameters()).device
    if method == "dlg":
        tm.labels = "joint"
        labels = None
    elif labels is None:
        tm.labels = "inferred"
        labels = infer_labels(model, update.tensors, batch_size, tm)
    else:
        tm.labels = "given"
    if labels is not None:
        labels = labels.to(device)
    with attack_copy(model, tm.bn_mode) as attacked:
        return _run(method, attacked, update, preset, batch_size, seed, labels, generator, class_code, label_mapping)


@contextmanager
def attack_copy(model: nn.Module, bn_mode: str):
    """The model as the attack runs it, leaving the caller's model exactly as it was (parameters, buffers,
    mode, ``.grad``): in ``eval`` mode the model itself, switched to eval for the attack and back after; in
    ``train`` mode (batch statistics, whose running averages every forward pass would update) a copy."""
    if bn_mode == "train":
        yield copy.deepcopy(model).train()
        return
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _run(method, model, update, preset, batch_size, seed, labels, generator, class_code, label_mapping):
    tm = update.threat_model
    mapping = None
    if label_mapping is not None and method in GENERATIVE_METHODS:
        mapping = label_mapping(labels)
        if mapping.learn and method == "ggl":
            raise GifdError("the soft label mapping optimises the class mixture by gradient: use gifd or gias")
        class_code = mapping.code
        tm.notes.append(f"label mapping {mapping.method}")
    if method in ("dlg", "idlg"):
        return dlg(model, update.tensors, tm, preset.dlg, labels=labels, batch_size=batch_size,
                   num_classes=_num_classes(model), seed=seed)
    if method == "ig":
        return inverting_gradients(model, update.tensors, labels, tm, preset.ig, seed=seed)
    learn_code = mapping is not None and mapping.learn
    if method == "ggl":
        rec = ggl(model, update.tensors, labels, tm, generator, preset.ggl, class_code=class_code, seed=seed)
    elif method == "gias":
        rec = gias(model, update.tensors, labels, tm, generator, preset.gias, class_code=class_code, seed=seed,
                   learn_code=learn_code)
    else:
        rec = gifd(model, update.tensors, labels, tm, generator, preset.gifd, class_code=class_code, seed=seed,
                   learn_code=learn_code)
    if mapping is not None:
        learned = rec.history.extra.get("class_code")
        chosen = ([int(c) for c in learned.argmax(1)] if mapping.learn and learned is not None
                  else mapping.gan_classes)
        rec.history.extra["label_mapping"] = {"method": mapping.method, "gan_classes": chosen,
                                              "scores": mapping.scores}
    return rec


def _stage_scores(reconstruction: Reconstruction, truth01: torch.Tensor) -> dict:
    """GIFD only: the stage it chose; per stage, the best gradient loss and the PSNR it would give; and every
    (restart, stage) candidate with its fitting and held-out losses and PSNR (so that selection rules can be
    compared on the same runs, :func:`gifd_lite.attacks.gifd.choose_candidate`)."""
    extra = reconstruction.history.extra
    if "best_layer" not in extra:
        return {}
    stages = []
    for st in extra["stages"]:
        row = {"stage": st["stage"], "gradient_loss": st["best_loss"]}
        if st["images"] is not None:
            row["psnr"] = evaluate(st["images"], truth01, with_lpips=False)["psnr"]
        stages.append(row)
    candidates = [{"restart": c["restart"], "stage": c["stage"], "by": c["by"], "fit": c["fit"], "held": c["held"],
                   "psnr": evaluate(c["images"], truth01, with_lpips=False)["psnr"]} for c in extra["candidates"]]
    chosen = next(i for i, c in enumerate(extra["candidates"]) if c is extra["chosen"])
    return {"best_layer": extra["best_layer"], "select": extra["select"], "stages": stages,
            "candidates": candidates, "chosen_candidate": chosen}


def score(reconstruction: Reconstruction, truth01: torch.Tensor, true_labels: torch.Tensor,
          with_lpips: bool = True) -> dict:
    """Metrics of one attack, matched to the truth: the fields of the CLI's ``metrics.json``."""
    m = evaluate(reconstruction.images, truth01, with_lpips=with_lpips)
    return {
        "method": reconstruction.method,
        "model": reconstruction.threat_model.model,
        "psnr": m["psnr"], "ssim": m["ssim"], "lpips": m["lpips"], "mse": m["mse"],
        "label_accuracy": label_accuracy(reconstruction.labels, true_labels),
        "labels_used": [int(v) for v in reconstruction.labels],
        "true_labels": [int(v) for v in true_labels],
        "gradient_loss": reconstruction.gradient_loss,
        "iterations": reconstruction.iterations,
        "seconds": round(reconstruction.seconds, 3),
        "seconds_per_iteration": round(reconstruction.seconds_per_iteration, 5),
        "restarts": len(reconstruction.history.restart_losses),
        "best_restart": reconstruction.history.best_restart,
        "interrupted": reconstruction.history.interrupted,
        **_stage_scores(reconstruction, truth01),
        **({"label_mapping": reconstruction.history.extra["label_mapping"]}
           if "label_mapping" in reconstruction.history.extra else {}),
        "per_image": m["per_image"],
        "order": m["order"],
        "threat_model": reconstruction.threat_model.as_dict(),
        "version": __version__,
    }
