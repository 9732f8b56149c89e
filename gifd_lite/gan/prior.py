"""Loading a shipped prior (``cifar10``, ``cifar10-5``) or a checkpoint file as a ready generator."""

from __future__ import annotations

import torch

from ..errors import GifdError
from .checkpoint import load_payload
from .generator import Generator, GeneratorConfig

__all__ = ["load_generator", "load_classifier"]


def load_generator(name_or_path: str = "cifar10", device: torch.device | str = "cpu") -> Generator:
    """The EMA generator of a shipped prior (hash-checked) or of a checkpoint file, in eval mode.

    ``G.classes`` lists the class names the prior was trained on, in its label order.
    """
    payload = load_payload(name_or_path)
    if payload["kind"] != "generator":
        raise GifdError(f"{name_or_path!r} is a {payload['kind']} checkpoint, not a generator")
    try:
        # checkpoints from before issue 17 carry no "conditioning": they are the shared-embedding design
        G = Generator(GeneratorConfig(**{"conditioning": "shared", **payload["config"]}))
        G.load_state_dict(payload["state_dict"])
    except (TypeError, RuntimeError) as exc:
        raise GifdError(f"checkpoint {name_or_path!r} does not fit the generator ({str(exc).splitlines()[0]})") from None
    G.classes = tuple(payload["classes"])
    for p in G.parameters():
        p.requires_grad_(False)
    return G.to(device).eval()


def load_classifier(name_or_path: str = "classifier", device: torch.device | str = "cpu") -> torch.nn.Module:
    """The shipped CIFAR-10 classifier (hash-checked), in eval mode; ``model.classes`` lists its classes."""
    from ..models import build_model

    payload = load_payload(name_or_path)
    if payload["kind"] != "classifier":
        raise GifdError(f"{name_or_path!r} is a {payload['kind']} checkpoint, not a classifier")
    model = build_model(payload["config"]["model"], num_classes=payload["config"]["num_classes"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise GifdError(f"checkpoint {name_or_path!r} does not fit its model ({str(exc).splitlines()[0]})") from None
    model.classes = tuple(payload["classes"])
    model.test_accuracy = payload.get("test_accuracy")
    return model.to(device).eval()
