"""Explanatory figures drawn from the code they explain (notebooks 01, 03, 05, 06 and 10).

Each function returns a matplotlib :class:`~matplotlib.figure.Figure` and reads what it draws from the
package where the package knows it: the generator's stages and shapes from the generator itself, the
l1 projection from :func:`gifd_lite.attacks.l1ball.project_l1_ball`, the attacker's knowledge from
:class:`gifd_lite.fl.ThreatModel`. So a figure cannot disagree with the code it illustrates.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = ["threat_model", "generator_stages", "l1_ball", "federation_round"]


def _box(ax, xy, w, h, text, color, fontsize=8, gid=None, left=False):
    x, y = xy
    patch = FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.04", fc=color, ec="0.3",
                           lw=0.8, gid=gid)
    ax.add_patch(patch)
    if left:
        ax.text(x + 0.12, y + h / 2, text, ha="left", va="center", fontsize=fontsize, linespacing=1.5)
    else:
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)
    return patch


def _arrow(ax, start, end, text=None, color="0.25", offset=(0.0, 0.04), fontsize=7.5):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10, color=color, lw=1.0))
    if text:
        ax.text((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1], text, ha="center",
                va="bottom", fontsize=fontsize, color=color)


def threat_model(tm=None) -> Figure:
    """Notebook 01: who holds what when an honest-but-curious server inverts a client's update.

    The client computes, on its private batch (x, y) and the global model f_θ, either a FedSGD gradient
    g = ∇_θ (1/B) Σ_i CE(f_θ(x_i), y_i) or a FedAvg delta Δ = θ_0 − θ_T after T local steps
    (:mod:`gifd_lite.fl`), and sends only that. The server knows θ, the update and the protocol (batch size B,
    local steps T and rate η); it can read labels off the last layer's gradient (:mod:`gifd_lite.labels`);
    it never sees x. ``tm``, a :class:`gifd_lite.fl.ThreatModel`, fills in the protocol of a given run.
    """
    from .fl import ThreatModel

    tm = tm or ThreatModel(model="convnet")
    if tm.update == "fedavg":
        update = f"FedAvg delta\nΔ = θ₀ − θ_T\n(T = {tm.fedavg_steps} local steps, η = {tm.fedavg_lr:g})"
    else:
        update = "FedSGD gradient\ng = ∇_θ (1/B) Σ CE(f_θ(xᵢ), yᵢ)"
    labels = {"given": "labels y: given to the attacker", "inferred": "labels y: read off the last layer's gradient",
              "joint": "labels y: optimised jointly with x"}.get(tm.labels, f"labels y: {tm.labels}")
    defense = "none" if tm.defense == "none" else f"{tm.defense} ({tm.defense_param:g})"

    fig, ax = plt.subplots(figsize=(9.5, 4.2))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 4.4)
    ax.axis("off")
    ax.add_patch(FancyBboxPatch((0.1, 0.15), 4.4, 4.05, boxstyle="round,pad=0.02", fc="none", ec="tab:green",
                                ls="--", lw=1.0))
    ax.text(0.25, 4.0, "client (private)", fontsize=9, color="tab:green", weight="bold")
    ax.add_patch(FancyBboxPatch((5.5, 0.15), 4.4, 4.05, boxstyle="round,pad=0.02", fc="none", ec="tab:red",
                                ls="--", lw=1.0))
    ax.text(5.65, 4.0, "server = attacker (honest but curious)", fontsize=9, color="tab:red", weight="bold")

    _box(ax, (0.35, 2.55), 1.6, 1.0, f"data (x, y)\nbatch of B = {tm.batch_size}\nnever leaves", "#d9f0d3",
         gid="data")
    _box(ax, (2.65, 2.55), 1.6, 1.0, f"FL model f_θ\n({tm.model})", "#deebf7", gid="model")
    _box(ax, (1.0, 0.45), 2.9, 1.35, update, "#fee8c8", gid="update")
    _arrow(ax, (1.95, 3.05), (2.65, 3.05))
    _arrow(ax, (3.45, 2.55), (2.9, 1.8), "loss, backprop", offset=(0.45, -0.05))
    ax.text(1.1, 1.9, f"defense: {defense}", fontsize=7, ha="left", color="0.35")

    _arrow(ax, (3.9, 1.12), (5.75, 1.12), "only the update\ncrosses the network", color="tab:red", offset=(0, 0.05))
    _arrow(ax, (5.75, 3.05), (4.25, 3.05), "sends θ each round", offset=(0, 0.04))

    known = ["model θ (architecture and weights)", "the update it received",
             f"protocol: batch size B = {tm.batch_size}, update = {tm.update}"
             + (f", T = {tm.fedavg_steps}" if tm.update == "fedavg" else ""),
             labels, f"defense: {defense}" + (" (mirrored)" if tm.adaptive else "")]
    _box(ax, (5.75, 1.75), 4.0, 2.0, "knows\n" + "\n".join("• " + k for k in known), "#fde0dd", fontsize=7.5,
         gid="knows", left=True)
    _box(ax, (5.75, 0.45), 4.0, 1.05, "does not know\n• the images x (what it reconstructs)\n"
         "• anything else on the client", "#f0f0f0", fontsize=7.5, gid="unknown", left=True)
    ax.set_title("The threat model: the server inverts the update to recover x", fontsize=10)
    fig.tight_layout()
    return fig


def _shape(t: torch.Tensor) -> str:
    return "×".join(str(s) for s in t.shape[1:])


def generator_stages(G, searched=None, radius=None) -> Figure:
    """Notebooks 03 and 05: the generator's stages with the shapes of their features, and where GIFD searches.

    Names come from ``G.STAGES``; shapes from running ``G.features(z, y, upto=0)`` and then ``G.advance``
    stage by stage on one latent z ~ N(0, I) (class 0), and the image from ``G.forward_from``. GIFD
    (notebook 05) optimises z on its sphere ||z|| = √d first, then each later stage k's features h within
    ||h − h₀||₁ ≤ r_k ||h₀||₁ around the features h₀ the previous optimum produced, and finishes the forward
    pass from there. ``searched`` and ``radius`` default to :class:`gifd_lite.config.GIFDConfig`'s.
    """
    from .config import GIFDConfig

    cfg = GIFDConfig()
    searched = tuple(cfg.stages if searched is None else searched)
    radius = tuple(cfg.radius if radius is None else radius)
    r_of = dict(zip(searched, radius))
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        z = torch.randn(1, G.config.z_dim, generator=gen).to(device)
        y = torch.zeros(1, dtype=torch.long, device=device)
        feats = [G.features(z, y, upto=0)]
        for k in range(1, len(G.STAGES)):
            feats.append(G.advance(k - 1, feats[-1], y, k))
        image = G.forward_from(len(G.STAGES) - 1, feats[-1], y)

    n = len(G.STAGES) + 1
    fig, ax = plt.subplots(figsize=(1.75 * n + 0.6, 2.6))
    ax.set_xlim(0, 1.75 * n)
    ax.set_ylim(0.7, 3.4)
    ax.axis("off")
    w, h = 1.3, 1.0
    for k, (name, f) in enumerate(zip(G.STAGES, feats)):
        x = 0.2 + 1.75 * k
        on = k in r_of
        _box(ax, (x, 1.6), w, h, f"stage {k}\n{name}\n{_shape(f)}", "#fdd0a2" if on else "#f0f0f0", gid=f"stage{k}")
        _arrow(ax, (x + w, 2.1), (x + 1.75, 2.1))
        if on:
            r = r_of[k]
            what = "optimise z\non ||z|| = √d" if k == 0 else (
                "optimise h,\nunconstrained" if r is None else f"optimise h in\n||h−h₀||₁ ≤ {r:g}·||h₀||₁")
            ax.text(x + w / 2, 1.45, what, ha="center", va="top", fontsize=7, color="tab:red")
    x = 0.2 + 1.75 * (n - 1)
    _box(ax, (x, 1.6), w, h, f"image\ntanh(conv(·))\n{_shape(image)}", "#c6dbef", gid="image")
    ax.text(0.2, 3.2, "GIFD searches the shaded stages in order; each starts from the previous stage's optimum "
            "and runs the rest of G forward", fontsize=8, va="top")
    ax.set_title(f"{type(G).__name__}: stages and feature shapes (width c = {G.config.width})", fontsize=10)
    fig.tight_layout()
    return fig


def l1_ball(radius: float = 1.0, start=(0.4, 0.3), step=(1.3, 0.8)) -> Figure:
    """Notebook 06: one projected step in 2-D: the ball ||h − h₀||₁ ≤ r around the start h₀ (a diamond),
    an unconstrained step to h₀ + v that leaves it, and its Euclidean projection back,
    h₀ + P(v) with P = :func:`gifd_lite.attacks.l1ball.project_l1_ball` (soft-thresholding |v| by θ so that
    ||P(v)||₁ = r). The projected point is the scatter with gid ``"projected"``.
    """
    from .attacks.l1ball import project_l1_ball

    h0 = torch.tensor(start, dtype=torch.float64)
    v = torch.tensor(step, dtype=torch.float64)
    p = h0 + project_l1_ball(v[None], radius)[0]
    corners = torch.tensor([[radius, 0], [0, radius], [-radius, 0], [0, -radius], [radius, 0]],
                           dtype=torch.float64) + h0
    fig, ax = plt.subplots(figsize=(4.6, 4.6))
    ax.fill(corners[:, 0], corners[:, 1], color="tab:blue", alpha=0.15)
    ax.plot(corners[:, 0], corners[:, 1], color="tab:blue", label=f"||h − h₀||₁ = {radius:g}")
    ax.annotate("", xy=(h0 + v).tolist(), xytext=h0.tolist(),
                arrowprops={"arrowstyle": "->", "color": "tab:red"})
    ax.annotate("", xy=p.tolist(), xytext=(h0 + v).tolist(),
                arrowprops={"arrowstyle": "->", "color": "0.4", "ls": "--"})
    ax.scatter([h0[0]], [h0[1]], color="k", s=20, zorder=3, label="start h₀")
    ax.scatter([h0[0] + v[0]], [h0[1] + v[1]], color="tab:red", s=20, zorder=3, label="after the step, h₀ + v")
    ax.scatter([p[0]], [p[1]], color="tab:blue", s=26, zorder=4, gid="projected", label="projected, h₀ + P(v)")
    ax.set_aspect("equal")
    lo = torch.minimum(corners.min(0).values, h0 + v).min().item() - 0.2
    hi = torch.maximum(corners.max(0).values, h0 + v).max().item() + 0.2
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"one projected step: P keeps ||h − h₀||₁ ≤ {radius:g}", fontsize=10)
    fig.tight_layout()
    return fig


def federation_round(index: dict) -> Figure:
    """Notebook 10: one round of the Flower federation a federation folder's ``index.json`` describes.

    The ``ServerApp``'s strategy sends every client the global weights θ_r and the protocol (FedSGD or FedAvg,
    T, η, B); each ``ClientApp`` draws a batch from its own shard and answers with its update u_k and its number of
    examples n_k; the curious server writes (θ_r, u_k, n_k, protocol) to disk before it aggregates,
    θ_{r+1} = θ_r − s Σ_k n_k u_k / Σ_k n_k (s = η for FedSGD, 1 for FedAvg) (:mod:`gifd_lite.federation`).
    """
    p, sim = index["protocol"], index["simulation"]
    n = int(index["num_clients"])
    shown = min(n, 3)
    update = "g = ∇θ loss (FedSGD)" if p["update"] == "fedsgd" else f"Δ = θ₀ − θ_T, T = {p['local_steps']} (FedAvg)"
    fig, ax = plt.subplots(figsize=(9.5, 3.9))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 4.2)
    ax.axis("off")
    _box(ax, (0.2, 1.3), 2.9, 1.7, f"ServerApp\nCuriousFedAvg\n(Flower's FedAvg)\nmodel: {index['model']}",
         "#fde0dd", gid="server")
    _box(ax, (0.45, 0.1), 2.4, 0.8, "records on disk\nround_RRR_node_N.pt\n+ index.json", "#f0f0f0", fontsize=7,
         gid="records")
    _arrow(ax, (1.65, 1.3), (1.65, 0.9), None)
    for k in range(shown):
        y = 3.1 - 1.2 * k
        label = f"ClientApp {k}" if k < shown - 1 or shown == n else f"… {n} clients"
        _box(ax, (6.9, y), 2.9, 0.9, f"{label}\nshard: {sim['partition']}, {sim['split']} split\nbatch of B = "
             f"{p['batch_size']}", "#d9f0d3", fontsize=7, gid=f"client{k}")
        _arrow(ax, (3.1, 2.45), (6.9, y + 0.62), "θ_r, protocol" if k == 0 else None, offset=(0, 0.12))
        _arrow(ax, (6.9, y + 0.28), (3.1, 1.75), f"u_k: {update}, n_k" if k == shown - 1 else None,
               color="tab:red", offset=(0.3, -0.3))
    ax.set_title(f"one round of the federation ({index['engine']}, {n} clients, η = {p['lr']:g})", fontsize=10)
    fig.tight_layout()
    return fig
