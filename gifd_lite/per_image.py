"""One attack, one client image at a time, over a list of test-set indices: the loop notebooks 04 and 05 share.

Each image is a client of its own (batch 1): the client computes its FedSGD update under the threat model, the
server infers the label from it and runs the attack (:func:`gifd_lite.pipeline.run_attack`), and the
reconstructions are scored against the truth together (:func:`gifd_lite.metrics.evaluate`).
"""

from __future__ import annotations

import torch

from . import metrics, pipeline
from .data import ImageSet, victim_batch
from .fl import ThreatModel
from .runtime import progress

__all__ = ["observe_image", "attack_images"]


def observe_image(model, test_set: ImageSet, index: int, model_name: str, seed: int = 0, **threat) -> tuple:
    """``(x, y, update)`` for test image ``index``: the image in [0, 1], its label, and the update the server
    sees under ``ThreatModel(model_name, **threat)`` (e.g. ``defense="noise", defense_param=0.01``)."""
    x, y, _ = victim_batch(test_set, index, 1)
    return x, y, pipeline.observe(model, x, y, ThreatModel(model_name, **threat), seed=seed)


def attack_images(method: str, model, test_set: ImageSet, indices: list[int], preset, model_name: str,
                  seed: int = 0, generator=None, **threat) -> dict:
    """Run ``method`` on every image in ``indices`` (one client each) and score the batch of reconstructions.

    Returns ``truth`` (the images, in order), ``labels``, ``recs`` (one :class:`Reconstruction` per image),
    ``images`` (the reconstructions, stacked) and ``scores`` (:func:`gifd_lite.metrics.evaluate`: means and
    per-image PSNR, SSIM, LPIPS)."""
    truths, labels, recs = [], [], []
    for i in progress(indices, desc=method):
        x, y, update = observe_image(model, test_set, i, model_name, seed=seed, **threat)
        recs.append(pipeline.run_attack(method, model, update, preset, batch_size=1, seed=seed, generator=generator))
        truths.append(x)
        labels.append(y)
    truth, images = torch.cat(truths), torch.cat([r.images for r in recs])
    return {"truth": truth, "labels": torch.cat(labels), "recs": recs, "images": images,
            "scores": metrics.evaluate(images, truth)}
