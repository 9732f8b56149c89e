"""Pictures of attacks: ground truth above reconstruction, loss curves, snapshot strips (notebook 01 on)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid, save_image

__all__ = ["save_comparison", "show_comparison", "plot_loss", "show_snapshots", "show_images", "grid"]


def _hwc(img: torch.Tensor):
    return img.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


def save_comparison(truth: torch.Tensor, reconstruction: torch.Tensor, path: str | Path) -> Path:
    """Write one PNG: the ground-truth batch in the top row, the reconstruction below (torchvision grid)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.cat([truth.detach().cpu(), reconstruction.detach().cpu().clamp(0, 1)])
    save_image(batch, path, nrow=len(truth), padding=2, pad_value=1.0)
    return path


def show_images(images: torch.Tensor, titles=None, ncols: int | None = None, scale: float = 1.6, suptitle=None):
    """A row (or grid) of [0, 1] images with optional titles; returns the figure."""
    n = len(images)
    ncols = ncols or n
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows + 0.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(_hwc(images[i]), interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def show_comparison(truth: torch.Tensor, reconstruction: torch.Tensor, scores: dict | None = None,
                    title: str | None = None, class_names=None, labels=None):
    """Ground truth above, reconstruction below, each reconstruction titled with its PSNR (and LPIPS)."""
    n = len(truth)
    fig, axes = plt.subplots(2, n, figsize=(1.8 * n + 0.6, 4.0), squeeze=False)
    order = scores.get("order") if scores else None
    recon = reconstruction[order] if order is not None else reconstruction
    for i in range(n):
        axes[0, i].imshow(_hwc(truth[i]), interpolation="nearest")
        axes[1, i].imshow(_hwc(recon[i]), interpolation="nearest")
        if class_names is not None and labels is not None:
            axes[0, i].set_title(class_names[int(labels[i])], fontsize=8)
        if scores:
            per = scores["per_image"]
            text = f"{per['psnr'][i]:.1f} dB"
            if per.get("lpips") and per["lpips"][i] is not None:
                text += f"\nLPIPS {per['lpips'][i]:.2f}"
            axes[1, i].set_title(text, fontsize=8)
        for ax in axes[:, i]:
            ax.axis("off")
    axes[0, 0].text(-4, 16, "truth", rotation=90, va="center", ha="right", fontsize=9)
    axes[1, 0].text(-4, 16, "recon.", rotation=90, va="center", ha="right", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_loss(curves: dict[str, list[float]], title: str = "gradient-matching loss", log: bool = True, ax=None):
    """Loss curves by name on one axis (log scale by default)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    for name, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, label=name)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=10)
    if len(curves) > 1:
        ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


def show_snapshots(snapshots: list[tuple[int, torch.Tensor]], index: int = 0, title: str | None = None):
    """How one image emerged during an attack: a strip of the stored snapshots, titled by iteration."""
    images = torch.stack([imgs[index] for _, imgs in snapshots])
    return show_images(images, [f"it {step}" for step, _ in snapshots], suptitle=title)


def grid(images: torch.Tensor, nrow: int = 8) -> torch.Tensor:
    """A torchvision grid of [0, 1] images as one (3, H, W) tensor."""
    return make_grid(images.detach().cpu().clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)


def plot_l1_projection(points: torch.Tensor, radius: float = 1.0, ax=None):
    """Notebook 06: the 2-D l1 ball ||w||_1 ≤ r (a diamond), some points and their Euclidean projections.

    Points inside stay put; points outside land on an edge or, past a corner's cone, exactly on the corner,
    which is why projecting onto an l1 ball also makes the change sparse.
    """
    from .attacks.l1ball import project_l1_ball

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    diamond = torch.tensor([[radius, 0], [0, radius], [-radius, 0], [0, -radius], [radius, 0]])
    ax.fill(diamond[:, 0], diamond[:, 1], color="tab:blue", alpha=0.15)
    ax.plot(diamond[:, 0], diamond[:, 1], color="tab:blue")
    projected = project_l1_ball(points.double(), radius).float()
    for p, q in zip(points, projected):
        ax.annotate("", xy=q.tolist(), xytext=p.tolist(), arrowprops={"arrowstyle": "->", "color": "gray"})
    ax.scatter(points[:, 0], points[:, 1], color="tab:red", s=14, label="v", zorder=3)
    ax.scatter(projected[:, 0], projected[:, 1], color="tab:blue", s=14, label="P(v)", zorder=3)
    ax.set_aspect("equal")
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(0, color="k", lw=0.5)
    ax.legend(fontsize=8)
    ax.set_title(f"projection onto the l1 ball of radius {radius:g}", fontsize=10)
    return ax.figure
