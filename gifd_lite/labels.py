"""Reading labels off the last layer's gradient (notebooks 01 and 02).

For softmax cross-entropy the gradient of the logits of sample i is p_i - e_{y_i}: negative only at the
true class. The last linear layer z = W h + b then has

    ∂L/∂b_c = (1/B) Σ_i (p_ic - [y_i = c]),      ∂L/∂W_c = (1/B) Σ_i (p_ic - [y_i = c]) h_i.

iDLG (batch size 1): with h ≥ 0 (sigmoid or ReLU features) the row of ∂L/∂W at the true class is the only
one with a negative sum, so y = argmin_c Σ_j ∂L/∂W_cj (or argmin_c ∂L/∂b_c when there is a bias).

Batches (the LLG idea of Wainakh et al.): every class present has a negative entry while p̄ is small
(untrained models); each occurrence of a class lowers its entry by about the same "impression"
m = (1/B) Σ_{c: g_c<0} g_c. So take every negative class once (the B most negative if there are more),
then repeatedly take the lowest remaining entry, subtracting m after each pick.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from .errors import GifdError

__all__ = ["last_layer_signal", "idlg_label", "infer_labels", "label_accuracy"]


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


def infer_labels(model: nn.Module, grads: list[torch.Tensor], batch_size: int) -> torch.Tensor:
    """Labels of a batch of ``batch_size`` images from the last layer (LLG-style counting), sorted."""
    if batch_size == 1:
        return idlg_label(model, grads)
    g = last_layer_signal(model, grads).double()
    negative = torch.nonzero(g < 0).flatten()
    negative = negative[torch.argsort(g[negative])][:batch_size]
    impression = g[g < 0].sum() / batch_size if len(negative) else g.min()
    labels = negative.tolist()
    g = g.clone()
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
