"""Who holds what: the named attack scenarios (notebook 07; the CLI's ``--scenario``).

- ``in-distribution``: the clients hold CIFAR-10 (labels 0–9) and the prior ``cifar10`` drew the same classes;
- ``ood-disjoint``: the prior ``cifar10-5`` drew airplane, automobile, bird, cat, deer; the clients' FL task is
  the *other* five classes with their own labels 0–4 (dog, frog, horse, ship, truck) — out of distribution
  *and* label-inconsistent, so a label mapping (``gifd_lite.label_mapping``) must choose G's class;
- ``cross-domain``: the prior ``cifar10`` attacks images that are not from CIFAR-10 at all: a user's own
  photos (``--image``), or the ten images that ship with scikit-image (astronaut, cat, coffee, rocket,
  motorcycle, camera man, coins, Hubble deep field, immunohistochemistry, retina; bundled with the package, so
  they work offline, and well known from image-processing courses).
  Their FL label (a CIFAR-10 class) is what the shipped CIFAR-10 classifier calls them: a person or a cup has
  no CIFAR-10 class, and this makes the choice reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data import CIFAR10_CLASSES, ImageSet, load_cifar10, subset_classes
from .errors import GifdError

__all__ = ["Scenario", "SCENARIOS", "get_scenario", "task_dataset", "CROSS_DOMAIN_IMAGES", "cross_domain_set"]


@dataclass(frozen=True)
class Scenario:
    name: str
    task_classes: tuple[str, ...]      # the FL task's classes; FL label i is task_classes[i]
    prior: str                         # the default GAN prior
    description: str


SCENARIOS = {
    "in-distribution": Scenario("in-distribution", CIFAR10_CLASSES, "cifar10",
                                "CIFAR-10 clients, a prior trained on the same ten classes"),
    "ood-disjoint": Scenario("ood-disjoint", ("dog", "frog", "horse", "ship", "truck"), "cifar10-5",
                             "clients hold dog, frog, horse, ship, truck (labels 0-4); the prior never saw them"),
    "cross-domain": Scenario("cross-domain", CIFAR10_CLASSES, "cifar10",
                             "a CIFAR-10 task, but the client's images are photographs from elsewhere"),
}
# the images scikit-image ships inside its wheel (no download): five everyday photographs, then five from other
# domains (a grey-scale street scene and coins, a telescope, a microscope and a retina photograph)
CROSS_DOMAIN_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle",
                       "camera", "coins", "hubble_deep_field", "immunohistochemistry", "retina")


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise GifdError(f"unknown scenario {name!r}: choose one of {', '.join(SCENARIOS)}") from None


def cross_domain_set(labeller: torch.nn.Module | None = None) -> ImageSet:
    """The scikit-image photographs at 32×32 (centre crop, bicubic), labelled by ``labeller`` (default: the
    shipped CIFAR-10 classifier)."""
    try:
        from skimage import data as skdata
    except ImportError:
        raise GifdError("the cross-domain images come from scikit-image: pip install scikit-image") from None
    from PIL import Image

    from .data import _center_square, normalize, to_tensor

    loaders = {"motorcycle": lambda: skdata.stereo_motorcycle()[0]}
    arrays = []
    for name in CROSS_DOMAIN_IMAGES:
        pixels = loaders[name]() if name in loaders else getattr(skdata, name)()
        pixels = np.asarray(pixels)
        im = Image.fromarray(pixels if pixels.ndim == 2 else pixels[..., :3]).convert("RGB")   # grey -> RGB
        arrays.append(np.asarray(_center_square(im).resize((32, 32), Image.BICUBIC)))
    images = np.stack(arrays)
    if labeller is None:
        from .gan import load_classifier

        labeller = load_classifier("classifier")
    with torch.no_grad():
        x = to_tensor(images).to(next(labeller.parameters()).device)
        labels = labeller.eval()(normalize(x)).argmax(1).cpu().numpy().astype(np.int64)
    return ImageSet(images, labels, CIFAR10_CLASSES, "scikit-image photographs: " + ", ".join(CROSS_DOMAIN_IMAGES))


def task_dataset(scenario: Scenario | str, split: str = "test") -> ImageSet:
    """The clients' images and FL labels for a scenario."""
    scenario = get_scenario(scenario) if isinstance(scenario, str) else scenario
    if scenario.name == "cross-domain":
        return cross_domain_set()
    cifar = load_cifar10(split)
    if scenario.name == "in-distribution":
        return cifar
    return subset_classes(cifar, list(scenario.task_classes))
