"""The shared optimisation core of every attack (notebook 01 writes it inline once, then imports it).

Gradient matching: find x̂ (and sometimes ŷ) whose gradient on the same model matches the observed one,

    x̂ = argmin_x  D(∇_θ L(f_θ(x), y), g)  +  λ R(x),

with D the squared L2 distance Σ_l ||∇_l - g_l||² (DLG) or the cosine distance
1 - <∇, g> / (||∇|| ||g||) over all layers at once (Inverting Gradients), and R a prior such as total
variation. Every attack returns a :class:`Reconstruction`; restarts are scored by the gradient loss alone,
a run that produces NaN is restarted, and Ctrl-C returns the best result found so far.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GifdError
from ..fl import ThreatModel

__all__ = ["Reconstruction", "History", "GradientTarget", "total_variation", "Tracker", "run_restarts",
           "model_gradients", "unrolled_update", "snapshot_steps", "holdout_split"]


@dataclass
class History:
    """What happened during an attack: loss curve of the chosen restart, snapshots, per-restart losses."""

    loss: list[float] = field(default_factory=list)
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    restart_losses: list[float] = field(default_factory=list)
    best_restart: int = 0
    interrupted: bool = False
    diverged_restarts: int = 0
    extra: dict = field(default_factory=dict)


@dataclass
class Reconstruction:
    """The result every attack returns: images in [0, 1], the labels used, history and threat model."""

    images: torch.Tensor
    labels: torch.Tensor
    history: History
    threat_model: ThreatModel
    method: str
    iterations: int
    seconds: float
    gradient_loss: float

    @property
    def seconds_per_iteration(self) -> float:
        return self.seconds / max(1, self.iterations)


class GradientTarget:
    """The observed update, prepared once: flattened, its norm precomputed, checked against the model.

    With an adaptive threat model (notebook 08) the attacker's dummy gradients pass through the same known
    transform as the client's update before they are compared: a mask of the entries the defense zeroed
    (compression, Soteria) and/or the clipping bound (clipping); and for a FedAvg client, whose local steps T
    and learning rate η are part of the protocol, the dummy update is the unrolled θ_0 - θ_T of T SGD steps on
    the dummy data (:func:`unrolled_update`) instead of one gradient.
    """

    def __init__(self, model: nn.Module, tensors: list[torch.Tensor], threat_model=None, holdout: float = 0.0,
                 split_seed: int = 0):
        from ..data import CIFAR10_INPUT
        from ..fl import attacker_mirror

        self.input = threat_model.input if threat_model is not None else CIFAR10_INPUT   # how x01 enters the model
        self.params = [p for p in model.parameters() if p.requires_grad]
        if len(tensors) != len(self.params) or any(t.shape != p.shape for t, p in zip(tensors, self.params)):
            raise GifdError("the observed update does not fit this model (different layers or shapes): "
                            "was it computed on a different model?")
        self.tensors = [t.detach().to(p.device, p.dtype) for t, p in zip(tensors, self.params)]
        self.flat = torch.cat([t.flatten() for t in self.tensors])
        self.norm = self.flat.norm()
        if not torch.isfinite(self.flat).all():
            raise GifdError("the observed update contains NaN or infinite values")
        mask, self.clip = attacker_mirror(model, self.tensors, threat_model)
        self.mask = None if mask is None else mask.to(self.flat.device, self.flat.dtype)
        unroll = threat_model is not None and threat_model.adaptive and threat_model.update == "fedavg"
        self.unroll = (threat_model.fedavg_steps, threat_model.fedavg_lr) if unroll else None
        self._pieces: dict = {}         # per-tensor views of the flat references, by memory layout (pieces())
        self.fit = None                 # with a held-out split: 1 on the entries the attack fits, 0 on the others
        if holdout:
            self.fit = holdout_split(self.tensors, holdout, split_seed).to(self.flat.device, self.flat.dtype)
            self.fit_target = self.flat * self.fit
            self.held_target = self.flat - self.fit_target
            self.fit_norm, self.held_norm = self.fit_target.norm(), self.held_target.norm()

    def dummy_update(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     create_graph: bool = True) -> list[torch.Tensor]:
        """What the client would have sent for dummy data (x, y): its gradient, or, against a FedAvg client with
        an adaptive attacker, the unrolled local update."""
        if self.unroll is None:
            return model_gradients(model, x, y, create_graph=create_graph, params=self.params)
        steps, lr = self.unroll
        return unrolled_update(model, x, y, steps, lr, create_graph=create_graph)

    def pieces(self, layout: torch.memory_format = torch.contiguous_format) -> dict:
        """The flat references (update, mask, held-out split) cut back into one piece per tensor, 4-D pieces
        stored in ``layout`` (the compiled oracle works in channels_last), made once per layout.

        Distances are summed tensor by tensor rather than over one concatenated vector: compiled, concatenating
        ResNet-18's 11M-entry dummy update (and splitting its derivative back) cost about 30% of the whole
        matching step (docs/results/profile_oracle.md, issue 16). Contiguous pieces are views of the flat vectors;
        channels_last ones are copies (on ResNet-18 ~45 MB each, up to five of them)."""
        if layout not in self._pieces:
            sizes = [t.numel() for t in self.tensors]

            def cut(flat):
                if flat is None:
                    return None
                return [p.view(t.shape).contiguous(memory_format=layout) if t.dim() == 4 else p.view(t.shape)
                        for p, t in zip(flat.split(sizes), self.tensors)]

            self._pieces[layout] = {"target": cut(self.flat), "mask": cut(self.mask), "fit": cut(self.fit),
                                    "fit_target": cut(getattr(self, "fit_target", None)),
                                    "held_target": cut(getattr(self, "held_target", None))}
        return self._pieces[layout]

    def compared(self, grads: list[torch.Tensor], layout=torch.contiguous_format) -> list[torch.Tensor]:
        """The dummy gradients as the attacker compares them, tensor by tensor: masked / clipped if adaptive."""
        mask = self.pieces(layout)["mask"]
        if mask is not None:
            grads = [g * m for g, m in zip(grads, mask)]
        if self.clip is not None:
            scale = torch.clamp(self.clip / (_norm(grads) + 1e-12), max=1.0)
            grads = [g * scale for g in grads]
        return grads

    def view(self, grads: list[torch.Tensor]) -> torch.Tensor:
        """The dummy gradients as the attacker compares them, flattened into one vector."""
        return torch.cat([g.flatten() for g in self.compared(grads)])

    def l2(self, grads: list[torch.Tensor], layout=torch.contiguous_format) -> torch.Tensor:
        """||∇ - g||² over all layers (DLG's distance)."""
        target = self.pieces(layout)["target"]
        return torch.stack([((g - t) ** 2).sum() for g, t in zip(self.compared(grads, layout), target)]).sum()

    def cosine(self, grads: list[torch.Tensor]) -> torch.Tensor:
        """1 - <∇, g> / (||∇|| ||g||), over all layers at once (Inverting Gradients' distance); with a held-out
        split, over the fitting entries only."""
        return self.cosine_split(grads)[0]

    def cosine_split(self, grads: list[torch.Tensor], layout=torch.contiguous_format
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(cosine distance on the fitting entries, cosine distance on the held-out entries) from one dummy
        gradient; without a split, (cosine over everything, None). The held-out value comes detached: it is
        for choosing among candidates (notebook 05), never for optimising. ``layout``: where the dummy
        gradients' 4-D tensors live (a hint for speed; the value does not depend on it)."""
        grads, p = self.compared(grads, layout), self.pieces(layout)
        if self.fit is None:
            return 1 - _dot(grads, p["target"]) / (_norm(grads) * self.norm + 1e-12), None
        fit = [g * f for g, f in zip(grads, p["fit"])]
        held = [(g - f).detach() for g, f in zip(grads, fit)]
        fit_cos = 1 - _dot(fit, p["fit_target"]) / (_norm(fit) * self.fit_norm + 1e-12)
        return fit_cos, 1 - _dot(held, p["held_target"]) / (_norm(held) * self.held_norm + 1e-12)


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    """Σ_l <a_l, b_l>: the inner product of two lists of tensors, as if each were flattened and concatenated."""
    return torch.stack([(x * y).sum() for x, y in zip(a, b)]).sum()


def _norm(a: list[torch.Tensor]) -> torch.Tensor:
    """The l2 norm of a list of tensors taken as one vector (the norm of the per-tensor norms: its derivative at
    an all-zero gradient is 0, as ``Tensor.norm``'s, where sqrt(Σ x²) would give NaN)."""
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x) for x in a]))


def holdout_split(tensors: list[torch.Tensor], fraction: float, seed: int = 0) -> torch.Tensor:
    """A 0/1 mask over the flattened update: 0 on ``fraction`` of the entries of *every* tensor, drawn at random
    (seeded), 1 on the rest (notebook 05's held-out stage choice).

    Drawing per tensor keeps every layer in both parts (a whole held-out layer would be a different signal);
    a tensor too small to split (fewer than 2 entries) stays in the fitting part.
    """
    if not 0 < fraction < 1:
        raise GifdError("the held-out fraction must be in (0, 1)")
    gen = torch.Generator().manual_seed(seed + 15485863)
    parts = []
    for t in tensors:
        n = t.numel()
        k = int(round(fraction * n)) if n >= 2 else 0
        mask = torch.ones(n)
        mask[torch.randperm(n, generator=gen)[:min(k, n - 1)]] = 0.0
        parts.append(mask)
    return torch.cat(parts)


def _cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean CE for hard labels (B,) or soft label distributions (B, K)."""
    if y.dim() == 2:
        return torch.mean(torch.sum(-y * F.log_softmax(logits, dim=-1), dim=-1))
    return F.cross_entropy(logits, y)


def model_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor, create_graph: bool = True,
                    params: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """∇_θ CE(f_θ(x), y) for hard labels (B,) or soft label distributions (B, K), keeping the graph."""
    params = params if params is not None else [p for p in model.parameters() if p.requires_grad]
    return list(torch.autograd.grad(_cross_entropy(model(x), y), params, create_graph=create_graph))


def unrolled_update(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float,
                    create_graph: bool = True) -> list[torch.Tensor]:
    """A FedAvg client's update θ_0 - θ_T for data (x, y), differentiable in x (notebook 08):

        θ_{t+1} = θ_t - η ∇_θ CE(f_{θ_t}(x), y),   t = 0 … T-1,

    run functionally (``torch.func.functional_call``) so the model itself is not changed. One attack step
    costs about T gradient steps.
    """
    from torch.func import functional_call

    if steps < 1:
        raise GifdError("FedAvg needs at least one local step")
    names, start = zip(*[(n, p) for n, p in model.named_parameters() if p.requires_grad])
    current = list(start)
    for _ in range(steps):
        logits = functional_call(model, dict(zip(names, current)), (x,), strict=False)
        grads = torch.autograd.grad(_cross_entropy(logits, y), current, create_graph=create_graph)
        current = [p - lr * g for p, g in zip(current, grads)]
    return [p0 - pt for p0, pt in zip(start, current)]


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV: mean |x[i+1, j] - x[i, j]| + mean |x[i, j+1] - x[i, j]|."""
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean()
    dy = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean()
    return dx + dy


def snapshot_steps(iterations: int, count: int) -> set[int]:
    """``count`` iteration numbers spread geometrically over a run (early steps change the most)."""
    if count <= 0 or iterations <= 0:
        return set()
    steps = {int(round(iterations ** (k / max(1, count - 1)))) - 1 for k in range(count)}
    return {min(max(0, s), iterations - 1) for s in steps} | {iterations - 1}


CHECK_EVERY = 50     # steps between the host reads that look for a diverged (NaN) run


class Tracker:
    """Best-so-far of one restart: the images with the lowest gradient loss, the loss curve and snapshots.

    Everything stays on the attack's device while the attack runs (no host read per step, so a GPU never
    waits): the best point is kept with ``torch.where``, the curve as device scalars, and only every
    ``check_every`` steps one value is read back to stop a diverged run. :meth:`finish` reads the results once.
    """

    def __init__(self, snapshot_at: set[int], to_image: Callable[[torch.Tensor], torch.Tensor],
                 check_every: int = CHECK_EVERY):
        self.snapshot_at = snapshot_at
        self.to_image = to_image
        self.check_every = check_every
        self.best_loss = math.inf
        self.best_images: torch.Tensor | None = None
        self.best_extra = None
        self.loss: list[float] = []
        self.iterations = 0            # gradient evaluations (an L-BFGS step makes several)
        self.snapshots: list[tuple[int, torch.Tensor]] = []
        self._curve: list[torch.Tensor] = []
        self._best: tuple | None = None          # (loss, x, extra) on the device
        self._snaps: list[tuple[int, torch.Tensor]] = []

    def update(self, step: int, loss: torch.Tensor | float, x: torch.Tensor, extra=None) -> bool:
        """Record one step; returns False when a check finds the loss not finite (the run diverged)."""
        loss_in = loss
        loss = torch.as_tensor(loss, device=x.device).detach().reshape(()).to(torch.float32)
        x = x.detach()
        self._curve.append(loss)
        self.iterations = max(self.iterations, len(self._curve))
        if self._best is None:
            inf = torch.full((), math.inf, device=x.device)
            self._best = (inf, x.clone(), None if extra is None else extra.clone())
        ok = torch.isfinite(loss) & torch.isfinite(x).all()
        better = ok & (loss < self._best[0])
        self._best = (torch.where(better, loss, self._best[0]), torch.where(better, x, self._best[1]),
                      None if extra is None else torch.where(better, extra.to(self._best[2].device), self._best[2]))
        if step in self.snapshot_at:
            self._snaps.append((step + 1, x.clone()))
        if isinstance(loss_in, float) and not (math.isfinite(loss_in) and bool(ok)):
            return False                         # the caller read it already (DLG's L-BFGS): no extra read
        if len(self._curve) % self.check_every == 0:
            return bool(ok)                      # the one host read every ``check_every`` steps
        return True

    def finish(self) -> "Tracker":
        """Read the curve, the best loss and images back from the device (once, at the end of the restart)."""
        if not self._curve:
            return self
        values = torch.stack(self._curve + [self._best[0]]).cpu().tolist()
        self.loss, self.best_loss = values[:-1], values[-1]
        if math.isfinite(self.best_loss):
            self.best_images = self.to_image(self._best[1]).cpu()
            self.best_extra = None if self._best[2] is None else self._best[2].cpu()
        self.snapshots = [(step, self.to_image(x).cpu()) for step, x in self._snaps]
        self._curve, self._snaps = [], []
        return self


def run_restarts(run_one: Callable[[int, Tracker], None], restarts: int, new_tracker: Callable[[], Tracker],
                 max_diverged: int = 2, stop_below: float = 0.0) -> tuple[Tracker, History, int, float]:
    """Run ``restarts`` independent trials and keep the one with the lowest gradient loss.

    ``run_one(restart, tracker)`` optimises from a fresh start, reporting each step to the tracker; a trial
    whose loss went NaN is retried with the next seed (at most ``max_diverged`` times); once a trial reaches a
    loss below ``stop_below`` the remaining restarts are skipped. Ctrl-C stops the
    search and keeps the best result so far. Returns (best tracker, history, iterations, seconds).
    """
    history = History()
    best: Tracker | None = None
    iterations, diverged, trial = 0, 0, 0
    start = time.perf_counter()
    try:
        while len(history.restart_losses) < restarts:
            tracker = new_tracker()
            try:
                run_one(trial, tracker)
            finally:
                tracker.finish()
                iterations += tracker.iterations
                if tracker.best_images is not None and (best is None or tracker.best_loss < best.best_loss):
                    best = tracker
                    history.best_restart = len(history.restart_losses)
            trial += 1
            finite = tracker.loss and math.isfinite(tracker.loss[-1])
            if not finite and diverged < max_diverged:
                diverged += 1
                continue
            history.restart_losses.append(tracker.best_loss)
            if best is not None and best.best_loss < stop_below:
                break
    except KeyboardInterrupt:
        history.interrupted = True
    seconds = time.perf_counter() - start
    history.diverged_restarts = diverged
    if best is None:
        raise GifdError("the attack diverged in every restart (NaN losses); try a smaller learning rate")
    history.loss, history.snapshots = best.loss, best.snapshots
    return best, history, iterations, seconds
