"""The client side of federated learning and the threat model (notebook 01; defenses in notebook 08).

A client holding a batch (x, y) and the global model f_θ sends either

- a FedSGD gradient  g = ∇_θ (1/B) Σ_i CE(f_θ(x_i), y_i), or
- a FedAvg update    Δ = θ_0 - θ_T after T local SGD steps θ_{t+1} = θ_t - η ∇_θ CE(f_{θ_t}(x), y).

An honest-but-curious server sees that update and the model; :class:`ThreatModel` records exactly what the
attacker knew, and travels with every :class:`~gifd_lite.attacks.core.Reconstruction`.
"""

from __future__ import annotations

import copy
import weakref
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .data import InputSpec
from .errors import GifdError

__all__ = ["ThreatModel", "ClientUpdate", "fedsgd_gradients", "fedavg_update", "apply_defense", "DEFENSES",
           "client_update", "soteria_mask", "attacker_mirror", "noise_snr", "describe_defense", "SOTERIA_EPSILON"]

DEFENSES = ("none", "noise", "clipping", "compression", "soteria")
DEFAULT_DEFENSE_PARAM = {"none": 0.0, "noise": 0.01, "clipping": 1.0, "compression": 0.1, "soteria": 0.4}
SOTERIA_EPSILON = 0.1          # added to |r_i| in Soteria's score, as in Sun et al.'s reference code


def describe_defense(name: str, param: float) -> str:
    """How the papers write a defense setting, e.g. compression 0.1 -> "compression: kept 10% (90% pruned)"."""
    if name == "compression":
        return f"compression: kept {100 * param:.0f}% ({100 * (1 - param):.0f}% pruned)"
    if name == "soteria":
        return f"soteria: {100 * param:.0f}% of the representation pruned"
    if name == "noise":
        return f"noise σ = {param:g}"
    if name == "clipping":
        return f"clipping to norm {param:g}"
    return name


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
    adaptive: bool = False              # the attacker mirrors the known defense on its own dummy gradients
    notes: list[str] = field(default_factory=list)
    input: InputSpec = field(default_factory=InputSpec)   # the model's input shape and normalisation

    def __post_init__(self):
        if self.update == "fedavg" and not self.fedavg_lr > 0:
            # a zero rate sends a zero update, and the attacker's label counts and unrolling divide by T·η
            raise GifdError(f"a FedAvg threat model needs a positive local learning rate (fedavg_lr, CLI "
                            f"--fedavg-lr), got {self.fedavg_lr:g}")

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
    if not lr > 0:
        raise GifdError(f"FedAvg needs a positive local learning rate (got {lr:g}); set ThreatModel(fedavg_lr=...)")
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
    - ``compression``: keep the largest ``param`` fraction (default 0.1: kept 10%, i.e. the papers' "90%
      pruned") of entries per layer by magnitude, zero the rest.

    ``soteria`` needs the client's data and model, so :func:`client_update` applies it (:func:`soteria_mask`).
    """
    if name not in DEFENSES:
        raise GifdError(f"unknown defense {name!r}: choose one of {', '.join(DEFENSES)}")
    p = DEFAULT_DEFENSE_PARAM[name] if param is None else float(param)
    if name in ("none", "soteria"):
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
    if threat_model.defense == "soteria":
        keep = soteria_mask(client, x, threat_model.defense_param)
        index = _last_linear_weight_index(client)
        tensors[index] = tensors[index] * keep.to(tensors[index].dtype)[None, :]
    return ClientUpdate(tensors, threat_model)


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise GifdError("this defense needs a model that ends in a linear layer")
    return linears[-1]


def _last_linear_weight_index(model: nn.Module) -> int:
    weight = _last_linear(model).weight
    return next(i for i, p in enumerate(p for p in model.parameters() if p.requires_grad) if p is weight)


def soteria_mask(model: nn.Module, x: torch.Tensor, fraction: float) -> torch.Tensor:
    """Soteria (Sun et al., CVPR 2021; notebook 08): which features r_i of the representation fed to the last
    linear layer keep their weight gradient.

    Removing feature i perturbs what an attacker can reconstruct by about ||r_i|| / ||∇_x r_i||; Soteria removes
    the ``fraction`` of features where that perturbation is largest, i.e. where Σ_b ||∇_x r_{b,i}|| / |r_{b,i}|
    is smallest, by zeroing those columns of the last layer's weight gradient. Returns a bool mask (d,), True = kept.
    The fraction counts the live features: a feature that is zero for every image (a dead ReLU) already has a
    zero column, so pruning it would remove nothing.
    """
    if not 0 <= fraction < 1:
        raise GifdError("soteria prunes a fraction in [0, 1) of the representation")
    # the Jacobian costs one backward pass per feature (2048 on the ConvNet): a lesson that defends the same image
    # against several attackers asks for the same mask again, so it is kept while the model and x stay the same
    # (the model's tensors compared by their sums and sums of squares, which also see in-place edits of .data)
    with torch.no_grad():
        tensors = [t.detach().double() for t in (*model.parameters(), *model.buffers())]
        fingerprint = torch.stack([torch.stack([t.sum(), (t * t).sum()]) for t in tensors] or [torch.zeros(2)]).cpu()
    for old_fingerprint, old_mode, old_fraction, old_x, old_keep in _SOTERIA_MASKS.get(model, []):
        if (old_mode, old_fraction) == (model.training, fraction) and old_x.shape == x.shape \
                and old_x.device == x.device and torch.equal(old_x, x) and torch.equal(old_fingerprint, fingerprint):
            return old_keep.clone()
    keep = _soteria_mask(model, x, fraction)
    entry = (fingerprint, model.training, fraction, x.detach().clone(), keep.clone())
    _SOTERIA_MASKS[model] = [entry] + _SOTERIA_MASKS.get(model, [])[:3]
    return keep


_SOTERIA_MASKS: "weakref.WeakKeyDictionary[nn.Module, list]" = weakref.WeakKeyDictionary()


def _soteria_mask(model: nn.Module, x: torch.Tensor, fraction: float) -> torch.Tensor:
    captured = {}
    handle = _last_linear(model).register_forward_hook(lambda m, inp, out: captured.update(r=inp[0]))
    x = x.detach().clone().requires_grad_(True)
    try:
        model(x)
    finally:
        handle.remove()
    r = captured["r"]
    d = r.shape[1]
    eye = torch.eye(d, device=r.device, dtype=r.dtype)[:, None, :].expand(d, *r.shape)
    (jac,) = torch.autograd.grad(r, x, grad_outputs=eye, is_grads_batched=True)   # (d, B, C, H, W)
    # the reference implementation's constant: ||∇_x r|| / (r + 0.1); a tiny ε would let near-zero features,
    # whose ratio explodes, dominate the ranking
    scores = (jac.flatten(2).norm(dim=2) / (r.detach().abs().T + SOTERIA_EPSILON)).sum(1)       # (d,)
    live = (r.detach() != 0).any(0)            # a feature that is 0 for every image has a zero column already
    keep = torch.ones(d, dtype=torch.bool, device=r.device)
    pruned = int(round(fraction * int(live.sum())))
    if pruned:
        keep[scores.masked_fill(~live, float("inf")).argsort()[:pruned]] = False
    return keep


def attacker_mirror(model: nn.Module, tensors: list[torch.Tensor], threat_model: ThreatModel | None):
    """What an adaptive attacker (``threat_model.adaptive``) applies to its own dummy gradients: a 0/1 mask over
    the flattened update (compression and Soteria zero entries, and the zeros are visible in the update) and a
    clipping bound (clipping). Noise cannot be mirrored. Returns ``(mask or None, clip or None)``.
    """
    if threat_model is None or not threat_model.adaptive or threat_model.defense in ("none", "noise"):
        return None, None
    if threat_model.defense == "clipping":
        return None, float(threat_model.defense_param)
    if threat_model.defense == "compression":
        return torch.cat([(t != 0).flatten() for t in tensors]).float(), None
    # soteria: the pruned features are the all-zero columns of the last layer's weight gradient
    index = _last_linear_weight_index(model)
    masks = [torch.ones_like(t, dtype=torch.bool) for t in tensors]
    masks[index] = (tensors[index] != 0).any(0, keepdim=True).expand_as(tensors[index])
    return torch.cat([m.flatten() for m in masks]).float(), None


def noise_snr(tensors: list[torch.Tensor], sigma: float) -> tuple[float, list[float]]:
    """How much of a noised update is signal (notebook 08): the energy ratio ||g||² / E||n||² = ||g||² / (σ² N),
    over the whole update and per layer (||g_l||² / (σ² n_l)). Below 1 a layer is mostly noise; an attack can
    only use the layers (and directions) where the ratio is well above 1.
    """
    if sigma <= 0:
        raise GifdError("the noise σ must be positive")
    per_layer = [float((t.double() ** 2).sum()) / (sigma ** 2 * t.numel()) for t in tensors]
    total = sum(float((t.double() ** 2).sum()) for t in tensors) / (sigma ** 2 * sum(t.numel() for t in tensors))
    return total, per_layer
