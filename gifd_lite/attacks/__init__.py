"""Gradient inversion attacks, one module per family, over a shared core (:mod:`.core`)."""

from .core import GradientTarget, History, Reconstruction, total_variation
from .dlg import dlg
from .inverting import inverting_gradients

__all__ = ["GradientTarget", "History", "Reconstruction", "total_variation", "dlg", "inverting_gradients"]
