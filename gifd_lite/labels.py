"""Reading labels off the last layer's gradient (notebooks 01, 02 and 10).

For softmax cross-entropy the gradient of the logits of sample i is p_i - e_{y_i}: negative only at the
true class. The last linear layer z = W h + b then has

    ∂L/∂b_c = (1/B) Σ_i (p_ic - [y_i = c]) = p̄_c - n_c / B,      ∂L/∂W_c = (1/B) Σ_i (p_ic - [y_i = c]) h_i,

with p̄ the batch's mean softmax output and n_c how many of the B images have label c.

iDLG (batch size 1): with h ≥ 0 (sigmoid or ReLU features) the row of ∂L/∂W at the true class is the only
one with a negative sum, so y = argmin_c Σ_j ∂L/∂W_cj (or argmin_c ∂L/∂b_c when there is a bias).

Batches, counted (notebook 10): solve the bias equation for the counts, n_c = B (p̄_c - ∂L/∂b_c). The attacker
does not know p̄, the clients' mean prediction, but it has the model: its prediction q on the mean image
(x = 0 in the model's input space) stands in for p̄, and every class the counts leave out is then known
exactly, p̄_c = ∂L/∂b_c ≥ 0, so q is refitted to the rest of the mass and the counts solved again (three
times). The real counts are rounded to whole numbers summing to B (largest remainders). A class can come
back several times: repeated labels are counted, not guessed. For a FedAvg update Δ = θ_0 - θ_T the bias
entry is about T η ∂L/∂b, so it is divided by T η first. Exact while the model's predictions vary little
between images (an untrained or early model: docs/results/label_counts.json measures it).

Without a bias the LLG heuristic of Wainakh et al. remains: every class with a negative row sum once (the B most
negative if there are more), then repeatedly the lowest remaining entry, subtracting the mean "impression"
m = (1/B) Σ_{c: g_c<0} g_c after each pick.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from .errors import GifdError

__all__ = ["last_layer_signal", "idlg_label", "infer_label_counts", "infer_labels", "llg_labels", "label_accuracy",
           "counts_of", "REFIT_ROUNDS"]

REFIT_ROUNDS = 3        # refits of the mean prediction to the classes the counts leave out


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise GifdError("label inference needs a model that ends in a linear layer")
    return linears[-1]


def last_layer_signal(model: nn.Module, grads: list[torch.Tensor]) -> torch.Tensor:
    """One number per class from the update of the last linear layer: its bias gradient, else its row sums."""
    params = [p for p in model.parameters() if p.requires_grad]
    if len(params) != len(grads):
        raise GifdError(f"the update has {len(grads)} tensors but the model has {len(params)} parameters: "
                        "was it computed on a different model?")
    fc = _last_linear(model)
    index = {id(p): i for i, p in enumerate(params)}
    if fc.bias is not None:
        return grads[index[id(fc.bias)]].detach().flatten().clone()
    return grads[index[id(fc.weight)]].detach().sum(dim=1)


def idlg_label(model: nn.Module, grads: list[torch.Tensor]) -> torch.Tensor:
    """iDLG: the label of a single image is the class with the most negative last-layer signal."""
    return last_layer_signal(model, grads).argmin().view(1)


def infer_label_counts(model: nn.Module, grads: list[torch.Tensor], batch_size: int,
                       threat_model=None) -> torch.Tensor:
    """How many of the ``batch_size`` images carry each label, from the last layer's bias update: n_c =
    B (p̄_c - ∂L/∂b_c) with p̄ estimated from the model (see the module docstring). Returns a (K,) long tensor
    summing to ``batch_size``. ``threat_model`` gives the input spec (for the mean image) and, for a FedAvg
    update, the local steps and learning rate that scale the bias entry."""
    fc = _last_linear(model)
    if fc.bias is None:
        raise GifdError("counting labels needs the last linear layer's bias (this model has none)")
    g = last_layer_signal(model, grads).double()
    if threat_model is not None and threat_model.update == "fedavg":
        g = g / (threat_model.fedavg_steps * threat_model.fedavg_lr)      # Δ_b ≈ T η ∂L/∂b
    q = _mean_prediction(model, threat_model).to(g.device)
    counts = _round_counts(batch_size * (q - g), batch_size)
    for _ in range(REFIT_ROUNDS):
        absent = counts == 0
        if not absent.any() or absent.all():
            break
        p = q.clone()
        p[absent] = g[absent].clamp(min=0)                  # a missing class's entry is p̄_c itself
        rest = max(0.0, 1 - float(p[absent].sum()))
        p[~absent] = q[~absent] * rest / float(q[~absent].sum().clamp_min(1e-12))
        counts = _round_counts(batch_size * (p - g), batch_size)
    return counts.cpu()


def _mean_prediction(model: nn.Module, threat_model=None) -> torch.Tensor:
    """The model's softmax output on the mean image (0 in its input space), in eval mode, as a stand-in for the
    batch's mean prediction p̄."""
    from .data import CIFAR10_INPUT

    spec = threat_model.input if threat_model is not None else CIFAR10_INPUT
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.softmax(model(torch.zeros(1, *spec.shape, device=device)), dim=1)[0].double()
    finally:
        model.train(was_training)


def _round_counts(estimate: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Non-negative whole counts summing to ``batch_size`` closest to ``estimate`` (largest remainders)."""
    est = estimate.clamp(min=0)
    if float(est.sum()) <= 0:
        est = torch.ones_like(est)
    est = est * (batch_size / float(est.sum()))
    counts = torch.floor(est).long()
    short = batch_size - int(counts.sum())
    if short > 0:
        counts[torch.argsort(est - counts, descending=True)[:short]] += 1
    return counts


def counts_of(labels, num_classes: int) -> torch.Tensor:
    """Label counts (K,) of a batch's labels."""
    return torch.bincount(torch.as_tensor(labels).flatten().long().cpu(), minlength=num_classes)


def infer_labels(model: nn.Module, grads: list[torch.Tensor], batch_size: int, threat_model=None) -> torch.Tensor:
    """Labels of a batch of ``batch_size`` images from the last layer, sorted: iDLG at batch size 1; else
    counted from the bias (:func:`infer_label_counts`), or LLG-style picking when the last layer has no bias."""
    if batch_size == 1:
        return idlg_label(model, grads)
    if _last_linear(model).bias is not None:
        counts = infer_label_counts(model, grads, batch_size, threat_model)
        return torch.repeat_interleave(torch.arange(len(counts)), counts)
    return llg_labels(last_layer_signal(model, grads), batch_size)


def llg_labels(signal: torch.Tensor, batch_size: int) -> torch.Tensor:
    """LLG-style picking from the last-layer signal (module docstring), sorted: the rule without a bias, and the
    baseline the counting is measured against (tools/measure_label_counts.py)."""
    g = signal.double().clone()
    negative = torch.nonzero(g < 0).flatten()
    negative = negative[torch.argsort(g[negative])][:batch_size]
    impression = g[g < 0].sum() / batch_size if len(negative) else g.min()
    labels = negative.tolist()
    g[negative] -= impression
    while len(labels) < batch_size:
        c = int(torch.argmin(g))
        labels.append(c)
        g[c] -= impression
    return torch.tensor(sorted(labels), dtype=torch.long)


def label_accuracy(predicted, truth) -> float:
    """Fraction of the true labels recovered, order ignored (multiset intersection / batch size)."""
    p = Counter(int(v) for v in torch.as_tensor(predicted).flatten())
    t = Counter(int(v) for v in torch.as_tensor(truth).flatten())
    return sum((p & t).values()) / max(1, sum(t.values()))
