"""Label mapping under label inconsistency (notebook 07).

When the FL task's classes are not the GAN's (the prior drew airplanes and cats, the clients hold dogs and
ships), the label ŷ read off the gradient (notebook 01) names an FL class the generator has never seen, so it
cannot condition G directly. A *label mapping* chooses the class code c that conditions G for each image:

- ``none``: the FL label index used as a GAN class as it is (the naive baseline);
- ``oracle``: the semantically closest GAN class (dog → cat, frog → bird, horse → deer, ship → airplane,
  truck → automobile), an upper baseline no attacker has;
- ``gradient`` (gradient probe): for each GAN class c draw a few samples G(z, c), compute their gradients under
  the FL label ŷ, and keep the c whose cosine distance to the observed update is lowest on average;
- ``model`` (model probe): a trained model of the FL task (the global model, or any judge over the FL task's
  classes) labels samples of each GAN class; keep the c whose samples it assigns most to ŷ;
- ``soft``: start from the uniform mixture of all class embeddings and let the attack optimise the mixture
  weights (a softmax) together with the latent (GIFD's and GIAS's stage 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .data import normalize
from .errors import GifdError
from .gan.generator import Generator, to_unit

__all__ = ["MAPPINGS", "SEMANTIC_NEIGHBOUR", "LabelMapping", "oracle_class", "map_labels"]

MAPPINGS = ("none", "gradient", "model", "soft", "oracle")
SEMANTIC_NEIGHBOUR = {"dog": "cat", "frog": "bird", "horse": "deer", "ship": "airplane", "truck": "automobile",
                      "cat": "dog", "bird": "frog", "deer": "horse", "airplane": "ship", "automobile": "truck"}


@dataclass
class LabelMapping:
    """The class code for G, one row per image; ``learn`` asks the attack to optimise it (soft mapping)."""

    method: str
    code: torch.Tensor                       # (B, K): one-hot rows, or the uniform start of a soft mapping
    gan_classes: list[int | None]            # the chosen GAN class per image (None while soft)
    learn: bool = False
    scores: list[list[float]] = field(default_factory=list)   # per image, per GAN class (probes only)

    def names(self, gan_class_names) -> list[str | None]:
        return [None if c is None else gan_class_names[c] for c in self.gan_classes]


def oracle_class(fl_class: str, gan_classes) -> int:
    """The GAN class of the same name, else its semantic neighbour (the oracle baseline)."""
    gan_classes = list(gan_classes)
    if fl_class in gan_classes:
        return gan_classes.index(fl_class)
    neighbour = SEMANTIC_NEIGHBOUR.get(fl_class)
    if neighbour not in gan_classes:
        raise GifdError(f"no oracle GAN class for {fl_class!r} among {', '.join(gan_classes)}")
    return gan_classes.index(neighbour)


def _one_hot(classes: list[int], k: int, device) -> torch.Tensor:
    return F.one_hot(torch.tensor(classes, device=device), k).float()


@torch.no_grad()
def _samples(G: Generator, c: int, count: int, seed: int) -> torch.Tensor:
    z = torch.randn((count, G.config.z_dim), generator=torch.Generator().manual_seed(seed))
    device = next(G.parameters()).device
    return to_unit(G(z.to(device), torch.full((count,), c, device=device))).clamp(0, 1)


def _gradient_probe(G, model, update, labels, threat_model, samples, seed) -> tuple[list[int], list[list[float]]]:
    """Coordinate-wise: image i tries every GAN class, the others stay at the uniform mixture."""
    from .attacks.core import GradientTarget

    target = GradientTarget(model, update, threat_model)
    k, b = G.config.num_classes, len(labels)
    device = labels.device
    gen = torch.Generator().manual_seed(seed)
    zs = [torch.randn((b, G.config.z_dim), generator=gen).to(device) for _ in range(samples)]
    chosen, scores = [], []
    for i in range(b):
        row = []
        for c in range(k):
            code = torch.full((b, k), 1.0 / k, device=device)
            code[i] = F.one_hot(torch.tensor(c, device=device), k).float()
            losses = []
            for z in zs:
                with torch.no_grad():
                    x = to_unit(G(z, code)).clamp(0, 1)
                grads = target.dummy_update(model, target.input.normalize(x), labels, create_graph=False)
                losses.append(float(target.cosine(grads)))
            row.append(sum(losses) / len(losses))
        scores.append(row)
        chosen.append(min(range(k), key=row.__getitem__))
    return chosen, scores


@torch.no_grad()
def _model_probe(G, judge, labels, judge_classes, samples, seed) -> tuple[list[int], list[list[float]]]:
    """For each FL label, the GAN class whose samples the judge assigns most probability to that label."""
    k = G.config.num_classes
    device = next(judge.parameters()).device
    prob = []
    for c in range(k):
        logits = judge(normalize(_samples(G, c, samples, seed + c).to(device)))
        if judge_classes is not None:
            logits = logits[:, judge_classes]
        prob.append(logits.softmax(1).mean(0))
    prob = torch.stack(prob)                        # (GAN class, FL class)
    scores = [[float(prob[c, int(y)]) for c in range(k)] for y in labels]
    return [max(range(k), key=row.__getitem__) for row in scores], scores


def map_labels(method: str, labels: torch.Tensor, task_classes, G: Generator, model: nn.Module | None = None,
               update: list[torch.Tensor] | None = None, threat_model=None, judge: nn.Module | None = None,
               judge_classes: list[int] | None = None, samples: int = 4, seed: int = 0) -> LabelMapping:
    """Choose G's class code for FL labels ``labels`` (indices into ``task_classes``) by ``method``.

    ``gradient`` needs the FL ``model`` and the observed ``update``; ``model`` needs a trained ``judge`` whose
    outputs (or the columns ``judge_classes`` of them) are the FL task's classes — the global model itself
    when it is trained.
    """
    if method not in MAPPINGS:
        raise GifdError(f"unknown label mapping {method!r}: choose one of {', '.join(MAPPINGS)}")
    k = G.config.num_classes
    device = labels.device
    gan_names = list(getattr(G, "classes", [str(i) for i in range(k)]))
    if method == "none":
        bad = [int(y) for y in labels if int(y) >= k]
        if bad:
            raise GifdError(f"FL label {bad[0]} is not a class of this {k}-class prior: choose a label mapping")
        chosen = [int(y) for y in labels]
        return LabelMapping(method, _one_hot(chosen, k, device), chosen)
    if method == "oracle":
        chosen = [oracle_class(task_classes[int(y)], gan_names) for y in labels]
        return LabelMapping(method, _one_hot(chosen, k, device), chosen)
    if method == "soft":
        return LabelMapping(method, torch.full((len(labels), k), 1.0 / k, device=device), [None] * len(labels),
                            learn=True)
    if method == "gradient":
        if model is None or update is None:
            raise GifdError("the gradient probe needs the FL model and the observed update")
        chosen, scores = _gradient_probe(G, model, update, labels, threat_model, samples, seed)
    else:
        if judge is None:
            raise GifdError("the model probe needs a trained model of the FL task (the global model or a judge)")
        chosen, scores = _model_probe(G, judge, labels, judge_classes, samples, seed)
    return LabelMapping(method, _one_hot(chosen, k, device), chosen, scores=scores)
