"""The client side of federated learning and the threat model (notebook 01; defenses in notebook 08).

A client holding a batch (x, y) and the global model f_θ sends either

- a FedSGD gradient  g = ∇_θ (1/B) Σ_i CE(f_θ(x_i), y_i), or
- a FedAvg update    Δ = θ_0 - θ_T after T local SGD steps θ_{t+1} = θ_t - η ∇_θ CE(f_{θ_t}(x), y).

An honest-but-curious server sees that update and the model; :class:`ThreatModel` records exactly what the
attacker knew, and travels with every :class:`~gifd_lite.attacks.core.Reconstruction`.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .errors import GifdError

__all__ = ["ThreatModel", "ClientUpdate", "fedsgd_gradients", "fedavg_update", "apply_defense", "DEFENSES",
           "client_update"]

DEFENSES = ("none", "noise", "clipping", "compression")
DEFAULT_DEFENSE_PARAM = {"none": 0.0, "noise": 0.01, "clipping": 1.0, "compression": 0.1}


@dataclass
class ThreatModel:
    """What the attacker (the server) knew when it inverted an update."""

    model: str
    trained_model: bool = False
    bn_mode: str = "eval"               # batch norm as the client ran it: "eval" (running stats) or "train"
    update: str = "fedsgd"              # "fedsgd" gradients or "fedavg" weight differences
    fedavg_steps: int = 1
    fedavg_lr: float = 0.0
    batch_size: int = 1
    labels: str = "inferred"           # "given" (known to the attacker), "inferred" from the gradient, "joint"
    defense: str = "none"
    defense_param: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ClientUpdate:
    """What crosses the network: one tensor per model parameter, in ``model.parameters()`` order."""

    tensors: list[torch.Tensor]
    threat_model: ThreatModel


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


def fedsgd_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """g = ∇_θ mean_i CE(f_θ(x_i), y_i): what a FedSGD client sends (detached copies)."""
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(_loss(model, x, y), params)
    return [g.detach().clone() for g in grads]


def fedavg_update(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float) -> list[torch.Tensor]:
    """Δ = θ_0 - θ_T after ``steps`` full-batch SGD steps of size ``lr`` on a copy of the model."""
    if steps < 1:
        raise GifdError("FedAvg needs at least one local step")
    local = copy.deepcopy(model)
    params = [p for p in local.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in params]
    for _ in range(steps):
        grads = torch.autograd.grad(_loss(local, x, y), params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= lr * g
    return [(s - p).detach() for s, p in zip(start, params)]


def apply_defense(tensors: list[torch.Tensor], name: str, param: float | None = None,
                  generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Transform an update before it leaves the client.

    - ``noise``: add N(0, σ²) to every entry (σ = ``param``, default 0.01);
    - ``clipping``: scale the whole update to l2 norm at most C (``param``, default 1.0);
    - ``compression``: keep the largest ``param`` fraction (default 0.1 = top 10%) of entries per layer by
      magnitude, zero the rest.
    """
    if name not in DEFENSES:
        raise GifdError(f"unknown defense {name!r}: choose one of {', '.join(DEFENSES)}")
    p = DEFAULT_DEFENSE_PARAM[name] if param is None else float(param)
    if name == "none":
        return [t.clone() for t in tensors]
    if name == "noise":
        if p < 0:
            raise GifdError("noise σ must be non-negative")
        return [t + p * torch.randn(t.shape, generator=generator, dtype=t.dtype).to(t.device) for t in tensors]
    if name == "clipping":
        if p <= 0:
            raise GifdError("clipping bound must be positive")
        norm = torch.sqrt(sum((t.double() ** 2).sum() for t in tensors)).item()
        scale = min(1.0, p / max(norm, 1e-12))
        return [t * scale for t in tensors]
    if not 0 < p <= 1:
        raise GifdError("compression keeps a fraction in (0, 1]")
    out = []
    for t in tensors:
        k = max(1, int(round(p * t.numel())))
        threshold = t.abs().flatten().kthvalue(t.numel() - k + 1).values
        out.append(torch.where(t.abs() >= threshold, t, torch.zeros_like(t)))
    return out


def client_update(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat_model: ThreatModel,
                  generator: torch.Generator | None = None) -> ClientUpdate:
    """Run the client as the threat model says (BN mode, FedSGD or FedAvg, defense) and return its update."""
    client = copy.deepcopy(model)  # the client's forward pass must not touch the server's BN statistics
    client.train(threat_model.bn_mode == "train")
    if threat_model.update == "fedsgd":
        tensors = fedsgd_gradients(client, x, y)
    elif threat_model.update == "fedavg":
        tensors = fedavg_update(client, x, y, threat_model.fedavg_steps, threat_model.fedavg_lr)
    else:
        raise GifdError(f"unknown update type {threat_model.update!r}: use fedsgd or fedavg")
    tensors = apply_defense(tensors, threat_model.defense, threat_model.defense_param, generator)
    return ClientUpdate(tensors, threat_model)
