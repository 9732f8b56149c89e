"""The three presets, ``smoke``, ``laptop`` and ``paper``: one place for every default (notebook 00).

``smoke`` keeps each notebook near a minute on a 2-core CPU (tests, CI); ``laptop`` (the default) keeps
each notebook under ten minutes on such a CPU; ``paper`` follows the papers' schedules and wants a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = ["DLGConfig", "IGConfig", "GIFDConfig", "GGLConfig", "GIASConfig", "Preset", "PRESETS", "get_preset",
           "GGL_COST_PER_GIFD_ITERATION"]


@dataclass(frozen=True)
class DLGConfig:
    """DLG / iDLG (notebook 01): L-BFGS on the squared L2 gradient distance."""

    iterations: int = 100        # outer L-BFGS steps (each: up to ``inner_steps`` iterations, ``max_evaluations`` gradients)
    inner_steps: int = 20
    lr: float = 1.0
    restarts: int = 2            # a fresh random start when a run ends with a high loss or diverges
    good_enough: float = 1e-5    # stop restarting once the gradient distance is below this × ||g||²
    snapshots: int = 6
    compile: str = "auto"        # the matching oracle under torch.compile: auto | on | off (attacks/oracle.py)

    @property
    def max_evaluations(self) -> int:
        """Gradient evaluations after which one L-BFGS step stops (its line search evaluates more often than it
        iterates): ⌊1.25 · ``inner_steps``⌋, torch's own default for ``max_eval``, passed explicitly. The line
        search checks it only between evaluations, so a step can make one more (older torch releases did not
        cap the line search at all)."""
        return self.inner_steps * 5 // 4


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
    compile: str = "auto"        # the matching oracle under torch.compile: auto | on | off (attacks/oracle.py)


@dataclass(frozen=True)
class GIFDConfig:
    """GIFD (notebook 05): latent first, then the features of later generator stages in an l1 ball.

    ``stages[i]`` is a generator stage (0 = latent z), searched for ``iterations[i]`` Adam steps at
    learning rate ``lr[i]``; the change of stage i's features is kept in an l1 ball of radius
    ``radius[i]`` × (l1 norm of the features the stage started from); ``None`` means unconstrained.
    Defaults: all five stages of the prior (latent, 4x4, 8x8, 16x16, 32x32), chosen by the tuning sweep in
    docs/results/gifd_tuning.md (``tools/tune_gifd.py``).
    """

    stages: tuple[int, ...] = (0, 1, 2, 3, 4)
    iterations: tuple[int, ...] = (120, 120, 120, 120, 120)
    lr: tuple[float, ...] = (0.1, 0.1, 0.1, 0.1, 0.1)
    radius: tuple[float | None, ...] = (None, 0.3, 0.3, 0.3, 0.3)
    restarts: int = 2
    tv_weight: float = 1e-4
    warmup: float = 0.1          # fraction of each stage's steps with a linearly rising learning rate
    snapshots: int = 4
    select: str = "auto"         # how the output's (stage, restart) is chosen: "auto", "holdout" or "loss" (gifd.py)
    holdout: float = 0.2         # with "holdout": the fraction of every tensor's entries held out of the fit
    refit_steps: int = 60        # with "holdout": steps refitting the chosen stage to the whole update (laptop)
    refit_lr_scale: float = 0.3  # the refit's learning rate, as a fraction of the chosen stage's (it starts at an
                                 # optimum: the stage's own rate kicks it out again, measured on one image)
    compile: str = "auto"        # the matching oracle under torch.compile: auto | on | off (attacks/oracle.py)

    @property
    def total_iterations(self) -> int:
        """Iterations of a run: every stage of every restart, and the refit unless the rule is ``loss`` (an
        ``auto`` run that resolves to ``loss`` does 60 fewer)."""
        refit = self.refit_steps if self.select != "loss" else 0
        return sum(self.iterations) * self.restarts + refit



# What one GGL fitness evaluation costs, as a fraction of one GIFD iteration (one ordinary gradient against a
# gradient plus its double backward), measured with `python -m gifd_lite bench` (docs/results/bench_*.md).
# "The same compute" gives GGL this many more evaluations than GIFD gets iterations.
GGL_COST_PER_GIFD_ITERATION = 0.5


@dataclass(frozen=True)
class GGLConfig:
    """GGL (notebook 04): the latent searched by CMA-ES on L2 gradient distance + KL(z || N(0, I)).

    GGL's own budget (Li et al. 2022, and their reference code): a population of 50 per generation and 500
    generations, i.e. 25,000 evaluations (the ``paper`` preset). The ``laptop`` preset gives it the compute of
    GIFD's 1,260 iterations: 1,260 / ``GGL_COST_PER_GIFD_ITERATION`` = 2,520 evaluations, rounded to whole
    generations: 2,500 (50 generations of 50).
    """

    evaluations: int = 2500       # fitness evaluations (each: one generator pass and one model gradient)
    sigma: float = 0.5
    kl_weight: float = 0.1
    popsize: int | None = 50      # None: CMA-ES default 4 + 3 ln(n) (18 in 128 dimensions)
    snapshots: int = 6            # the best candidate of this many generations, kept for notebook 04's explorer
    compile: str = "auto"        # the matching oracle under torch.compile: auto | on | off (attacks/oracle.py)

    @property
    def generations(self) -> int:
        """Whole generations the budget allows (at least one)."""
        return max(1, self.evaluations // (self.popsize or 1))


@dataclass(frozen=True)
class GIASConfig:
    """GIAS (notebook 04): latent search with Adam, then per-image fine-tuning of generator copies."""

    latent_iterations: int = 300
    generator_iterations: int = 300
    lr_latent: float = 0.1
    lr_generator: float = 1e-4
    restarts: int = 2
    tv_weight: float = 1e-4
    snapshots: int = 6           # images kept, half in each phase (the best restart's latent search, then the
                                 # fine-tuning), for notebook 04's explorer
    compile: str = "auto"        # the matching oracle under torch.compile: auto | on | off (attacks/oracle.py)


@dataclass(frozen=True)
class Preset:
    """Every default a notebook or the CLI needs, by preset name."""

    name: str
    dlg: DLGConfig = field(default_factory=DLGConfig)
    ig: IGConfig = field(default_factory=IGConfig)
    gifd: GIFDConfig = field(default_factory=GIFDConfig)
    ggl: GGLConfig = field(default_factory=GGLConfig)
    gias: GIASConfig = field(default_factory=GIASConfig)
    n_images: int = 4             # how many victim images a notebook loops over
    label_trials: int = 50        # images used to measure label-inference accuracy
    classifier_steps: int = 300   # SGD steps for the briefly trained model of notebook 02

    def override(self, **changes) -> "Preset":
        """A copy with some fields changed, e.g. ``preset.override(ig=replace(preset.ig, iterations=10))``."""
        return replace(self, **changes)

    def with_compile(self, mode: str) -> "Preset":
        """A copy whose every attack compiles its matching oracle as ``mode`` says (auto / on / off)."""
        return replace(self, **{a: replace(getattr(self, a), compile=mode) for a in ("dlg", "ig", "gifd", "ggl", "gias")})


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        name="smoke",
        dlg=DLGConfig(iterations=8, inner_steps=10, restarts=1, snapshots=3),
        ig=IGConfig(iterations=24, restarts=1, snapshots=3),
        gifd=GIFDConfig(iterations=(8, 6, 6, 6, 6), restarts=1, snapshots=2, refit_steps=4),
        ggl=GGLConfig(evaluations=40, popsize=8),
        gias=GIASConfig(latent_iterations=10, generator_iterations=10, restarts=1),
        n_images=2,
        label_trials=8,
        classifier_steps=10,
    ),
    "laptop": Preset(
        name="laptop",
        dlg=DLGConfig(iterations=300, inner_steps=20, restarts=2),
        ig=IGConfig(iterations=500, restarts=1),
        # the GAN-prior attacks share one compute budget: GIFD's 1260 iterations (5 stages x 120 x 2 restarts and
        # a 60-step refit), GGL's 2500 cheaper evaluations (50 whole generations of 50), GIAS's 300 + 600 per restart
        ggl=GGLConfig(evaluations=50 * round(GIFDConfig().total_iterations / GGL_COST_PER_GIFD_ITERATION / 50),
                      popsize=50),
        gias=GIASConfig(latent_iterations=300, generator_iterations=600, restarts=2),
        n_images=4,
        label_trials=50,
    ),
    "paper": Preset(
        name="paper",
        dlg=DLGConfig(iterations=300, inner_steps=20, restarts=4),
        ig=IGConfig(iterations=24_000, restarts=4, tv_weight=1e-2),
        gifd=GIFDConfig(iterations=(1000,) * 5, restarts=4, refit_steps=500),
        ggl=GGLConfig(evaluations=500 * 50, popsize=50),      # GGL's own budget: 500 generations of 50
        gias=GIASConfig(latent_iterations=2000, generator_iterations=12_000, restarts=4),
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
