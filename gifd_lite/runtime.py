"""Device choice, seeding and progress bars (introduced in notebook 00)."""

from __future__ import annotations

import os
import random
import sys

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import GifdError

__all__ = ["resolve_device", "seed_everything", "progress", "set_threads", "check_environment", "DEPENDENCIES"]

DEPENDENCIES = ("torch", "torchvision", "numpy", "scipy", "matplotlib", "lpips", "pytorch_msssim", "cma",
                "tqdm", "ipywidgets", "papermill", "nbval", "jupyterlab")

_ANNOUNCED: set[str] = set()


def resolve_device(name: str = "auto", verbose: bool = True) -> torch.device:
    """Turn ``auto|cpu|cuda`` into a :class:`torch.device`; ``auto`` picks CUDA when available.

    The chosen device is printed once per process so every notebook states where it runs.
    """
    name = (name or "auto").lower()
    if name not in {"auto", "cpu", "cuda"} and not name.startswith("cuda:"):
        raise GifdError(f"unknown device {name!r}: use auto, cpu or cuda")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GifdError("--device cuda was asked for, but torch sees no CUDA device")
    device = torch.device(name)
    if verbose and str(device) not in _ANNOUNCED:
        _ANNOUNCED.add(str(device))
        detail = torch.cuda.get_device_name(device) if device.type == "cuda" else \
            f"{torch.get_num_threads()} thread{'s' if torch.get_num_threads() != 1 else ''}"
        print(f"gifd_lite: running on {device} ({detail})", file=sys.stderr)
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA). Returns nothing, so that a notebook cell ending with it shows
    no output."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def set_threads(n: int | None = None) -> None:
    """Limit torch's intra-op threads (``GIFD_THREADS`` or ``n``); parallel workers should use one each."""
    n = n or int(os.environ.get("GIFD_THREADS", "0") or 0)
    if n > 0:
        torch.set_num_threads(n)


def progress(iterable=None, total: int | None = None, desc: str = "", enabled: bool = True, **kwargs):
    """A ``tqdm.auto`` progress bar (a widget in notebooks, text in a terminal); ``GIFD_NO_PROGRESS=1`` hides it."""
    disable = (not enabled) or os.environ.get("GIFD_NO_PROGRESS") == "1"
    return tqdm(iterable, total=total, desc=desc, disable=disable, leave=False, **kwargs)


def check_environment(modules=DEPENDENCIES) -> list[tuple[str, str, str]]:
    """Import each dependency: rows of (name, "OK" or "FAIL", version or the error), for notebook 00."""
    import importlib

    rows = []
    for name in modules:
        try:
            mod = importlib.import_module(name)
            version = getattr(mod, "__version__", "")
            if not version:
                from importlib.metadata import PackageNotFoundError
                from importlib.metadata import version as dist_version

                try:
                    version = dist_version(name.replace("_", "-"))
                except PackageNotFoundError:
                    version = "installed"
            rows.append((name, "OK", str(version)))
        except Exception as exc:  # an import can fail in many ways; report, don't crash
            rows.append((name, "FAIL", f"{type(exc).__name__}: {exc}"))
    return rows
