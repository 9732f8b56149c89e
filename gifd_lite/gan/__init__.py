"""The GAN prior (notebook 03): a class-conditional generator with addressable stages, its training, I/O."""

from .generator import Generator, GeneratorConfig, class_code, to_unit
from .prior import load_classifier, load_generator

__all__ = ["Generator", "GeneratorConfig", "class_code", "to_unit", "load_generator", "load_classifier"]
