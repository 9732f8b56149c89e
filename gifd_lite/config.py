"""The three presets, ``smoke``, ``laptop`` and ``paper``: one place for every default (notebook 00).

``smoke`` keeps each notebook near a minute on a 2-core CPU (tests, CI); ``laptop`` (the default) keeps
each notebook under ten minutes on such a CPU; ``paper`` follows the papers' schedules and wants a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = ["DLGConfig", "IGConfig", "Preset", "PRESETS", "get_preset"]


@dataclass(frozen=True)
class DLGConfig:
    """DLG / iDLG (notebook 01): L-BFGS on the squared L2 gradient distance."""

    iterations: int = 100        # outer L-BFGS steps (each runs up to ``inner_steps`` evaluations)
    inner_steps: int = 20
    lr: float = 1.0
    restarts: int = 2            # a fresh random start when a run ends with a high loss or diverges
    good_enough: float = 1e-5    # stop restarting once the gradient distance is below this × ||g||²
    snapshots: int = 6


@dataclass(frozen=True)
class IGConfig:
    """Inverting Gradients (notebook 02): cosine distance + total variation, signed Adam, restarts."""

    iterations: int = 400
    restarts: int = 1
    lr: float = 0.1
    distance: str = "cosine"     # "cosine" (IG) or "l2" (DLG's distance, for comparison)
    tv_weight: float = 1e-2
    signed: bool = True
    boxed: bool = True
    snapshots: int = 6


@dataclass(frozen=True)
class Preset:
    """Every default a notebook or the CLI needs, by preset name."""

    name: str
    dlg: DLGConfig = field(default_factory=DLGConfig)
    ig: IGConfig = field(default_factory=IGConfig)
    n_images: int = 4             # how many victim images a notebook loops over
    label_trials: int = 50        # images used to measure label-inference accuracy
    classifier_steps: int = 300   # SGD steps for the briefly trained model of notebook 02

    def override(self, **changes) -> "Preset":
        """A copy with some fields changed, e.g. ``preset.override(ig=replace(preset.ig, iterations=10))``."""
        return replace(self, **changes)


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        name="smoke",
        dlg=DLGConfig(iterations=8, inner_steps=10, restarts=1, snapshots=3),
        ig=IGConfig(iterations=24, restarts=1, snapshots=3),
        n_images=2,
        label_trials=8,
        classifier_steps=10,
    ),
    "laptop": Preset(
        name="laptop",
        dlg=DLGConfig(iterations=300, inner_steps=20, restarts=2),
        ig=IGConfig(iterations=500, restarts=1),
        n_images=4,
        label_trials=50,
    ),
    "paper": Preset(
        name="paper",
        dlg=DLGConfig(iterations=300, inner_steps=20, restarts=4),
        ig=IGConfig(iterations=24_000, restarts=4, tv_weight=1e-2),
        n_images=10,
        label_trials=200,
        classifier_steps=5000,
    ),
}


def get_preset(name: str) -> Preset:
    """Look up a preset by name, with a one-line error for an unknown one."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}") from None
