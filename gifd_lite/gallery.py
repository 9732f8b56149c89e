"""Reconstructions kept beside a table's records, and the table's gallery (docs/results; notebook 09).

A ``reproduce`` run that keeps its images writes, per run, one small PNG: the victim batch (ground truth) in the
top row and the attack's reconstruction, matched image to image, below it (:func:`save_pair`). The gallery of a
table (:func:`write_gallery`) puts each image's ground truth above every cell's reconstruction of it, with the
PSNR / SSIM / LPIPS of that run under each picture, so a number in the table can be looked at.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

__all__ = ["save_pair", "load_pair", "write_gallery", "image_name"]


def image_name(key: str) -> str:
    """The file name of a run's picture: a short hash of its spec key (stable across reruns)."""
    return hashlib.sha1(key.encode()).hexdigest()[:16] + ".png"


def _tiles(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> an (H, B·W, 3) uint8 strip."""
    x = images.detach().float().clamp(0, 1).cpu()
    return (torch.cat(list(x), dim=2).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def save_pair(truth: torch.Tensor, reconstruction: torch.Tensor, path: str | Path) -> Path:
    """Ground truth above the (matched) reconstruction, one 32x32 tile per image, as a lossless PNG."""
    from PIL import Image

    if truth.shape != reconstruction.shape:
        raise ValueError(f"truth {tuple(truth.shape)} and reconstruction {tuple(reconstruction.shape)} differ")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([_tiles(truth), _tiles(reconstruction)], axis=0)).save(path, optimize=True)
    return path


def load_pair(path: str | Path, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The two rows of :func:`save_pair` as lists of (H, W, 3) uint8 tiles: (truth, reconstruction)."""
    from PIL import Image

    a = np.asarray(Image.open(path).convert("RGB"))
    h, w = a.shape[0] // 2, a.shape[1] // batch_size
    rows = [a[:h], a[h:]]
    return tuple([row[:, k * w:(k + 1) * w] for k in range(batch_size)] for row in rows)


def _caption(record: dict, k: int) -> str:
    per = record.get("per_image") or {}
    values = [(name, (per.get(name) or [None] * (k + 1))[k]) for name in ("psnr", "ssim", "lpips")]
    digits = {"psnr": 1, "ssim": 2, "lpips": 3}           # LPIPS of a good reconstruction is a few thousandths
    parts = [f"{v:.{digits[name]}f}" + (" dB" if name == "psnr" else "") for name, v in values if v is not None]
    parts += ["LPIPS n/a"] if values[2][1] is None else []
    return "\n".join([parts[0], " · ".join(parts[1:])]) if parts else ""


def _scenario(record: dict) -> str:
    return record["spec"].get("scenario") or "in-distribution"


def _columns(records: list[dict], max_images: int) -> list[tuple[int, int]]:
    """(victim batch start index, image k within the batch): whole batches, as many as fit (at least the first)."""
    sizes: dict[int, int] = {}                         # victim batch start index -> its batch size
    for r in records:
        index = r["spec"]["index"]
        sizes[index] = max(sizes.get(index, 0), len(r["true_labels"]))
    columns: list[tuple[int, int]] = []
    for index in sorted(sizes):
        if columns and len(columns) + sizes[index] > max_images:
            break
        columns += [(index, k) for k in range(sizes[index])]
    return columns


def write_gallery(table: str, records: list[dict], images_dir: str | Path, path: str | Path,
                  cells: list[str] | None = None, max_images: int = 10) -> Path | None:
    """One figure: a column per victim image (whole victim batches, up to ``max_images`` images unless the first
    batch alone is larger), ground truth on top, then a row per table cell that has pictures, with that run's
    reconstruction, matched image to image, and its PSNR / SSIM / LPIPS. Cells that attack different images (the
    ``ood`` table's two scenarios: an index names a CIFAR-10 test image in one and a photograph in the other) get a
    block each, with their own ground-truth row. Records without a kept picture are left out; returns None when no
    record has one. A table run with several seeds shows each cell's lowest seed's runs (the title says which), so
    a picture and the numbers under it always come from the same run."""
    from matplotlib.figure import Figure       # not pyplot: a notebook's inline backend stays as it is

    images_dir = Path(images_dir)
    kept = [r for r in records if r.get("reconstruction_png") and (images_dir / r["reconstruction_png"]).exists()]
    if not kept:
        return None
    cells = cells or list(dict.fromkeys(r["spec"]["tag"] for r in kept))
    kept = [r for r in kept if r["spec"]["tag"] in cells]
    if not kept:
        return None
    lowest: dict[str, int] = {}                        # each cell's lowest seed: its runs are the ones shown
    for r in kept:
        tag, seed = r["spec"]["tag"], r["spec"].get("seed", 0)
        lowest[tag] = min(lowest.get(tag, seed), seed)
    seeds = {r["spec"].get("seed", 0) for r in kept}
    kept = [r for r in kept if r["spec"].get("seed", 0) == lowest[r["spec"]["tag"]]]
    scenario_of = {r["spec"]["tag"]: _scenario(r) for r in kept}
    blocks: dict[str, list[str]] = {}                  # scenario -> its cells, in the table's order
    for cell in cells:
        if cell in scenario_of:
            blocks.setdefault(scenario_of[cell], []).append(cell)
    columns = {sc: _columns([r for r in kept if _scenario(r) == sc], max_images) for sc in blocks}
    width = max(len(c) for c in columns.values())
    rows = sum(1 + len(block) for block in blocks.values())
    by_cell = {(r["spec"]["tag"], r["spec"]["index"]): r for r in kept}
    fig = Figure(figsize=(max(4.0, 1.25 * width + 1.6), 1.45 * rows + 0.5))
    axes = fig.subplots(rows, width, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
    top = 0                                            # the block's ground-truth row
    for scenario, block in blocks.items():
        for j, (index, k) in enumerate(columns[scenario]):
            for i, cell in enumerate(block):
                r = by_cell.get((cell, index))
                if r is None or k >= len(r["true_labels"]):   # no run, or a cell of a smaller batch
                    continue
                truth, recon = load_pair(images_dir / r["reconstruction_png"], len(r["true_labels"]))
                if not axes[top, j].images:
                    axes[top, j].imshow(truth[k], interpolation="nearest")
                    axes[top, j].set_title(f"image {r['indices'][k]}", fontsize=7)
                axes[top + i + 1, j].imshow(recon[k], interpolation="nearest")
                axes[top + i + 1, j].set_xlabel(_caption(r, k), fontsize=6, labelpad=1)
        axes[top, 0].set_ylabel("ground truth" + (f"\n{scenario}" if len(blocks) > 1 else ""), fontsize=7)
        for i, cell in enumerate(block):
            axes[top + i + 1, 0].set_ylabel(cell.replace(" | ", "\n"), fontsize=7)
        top += 1 + len(block)
    shown = set(lowest.values())
    seed = "" if len(seeds) == 1 else f", seed {min(shown)} of {len(seeds)} seeds" if len(shown) == 1 else \
        ", each cell's lowest seed"
    fig.suptitle(f"table {table}: ground truth, then each cell's reconstruction{seed}\n"
                 "(PSNR; SSIM · LPIPS under each)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
