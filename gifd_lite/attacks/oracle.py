"""The gradient-matching oracle every attack calls once per step, optionally compiled (notebook 02 introduces it).

For a dummy input x (and labels y) the oracle returns the matching loss and the derivative of the objective,

    x ↦ ( D(∇_θ CE(f_θ(x), y), g),  ∂/∂x [D(∇_θ CE(f_θ(x), y), g) + λ_TV TV(x)] ),

built from ``torch.func``: ``grad`` gives the FL model's gradient with respect to θ as a pure function of x
(for a FedAvg client with an adaptive attacker, the unrolled θ_0 - θ_T of T local steps), the distance D
(cosine or L2, through the attacker's mirror of a defense: :class:`~gifd_lite.attacks.core.GradientTarget`)
compares it with the observed update g, and an outer ``grad_and_value`` differentiates D back to x only: no
gradient ever flows into θ. Pixel attacks (IG) call the oracle on their variable directly; generator attacks
render x = G(·) eagerly and push the oracle's ∂loss/∂x back through the generator
(``torch.autograd.grad(x, variables, grad_outputs=grad_x)``).

Compiled (``compile="on"``, or ``"auto"`` where it pays: :meth:`MatchingOracle.worth_compiling`) the same
function runs under ``torch.compile`` (inductor: fused C++ kernels on CPU, Triton on GPU); the first call of each
(model, batch shape, threat model) compiles, and inductor's on-disk cache (``TORCHINDUCTOR_CACHE_DIR``, by default
``~/.cache/gifd_lite/inductor``) lets a later process skip most of that. ``compile="off"`` runs the identical
function eagerly; the two agree up to float32 rounding (tests/test_oracle.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GifdError
from .core import GradientTarget, _cross_entropy, total_variation

__all__ = ["MatchingOracle", "COMPILE_MODES", "COMPILE_PAYBACK_SECONDS", "compile_available", "check_compile_mode"]

COMPILE_MODES = ("auto", "on", "off")
# ``auto`` compiles when the eager run would take at least this long: a cold inductor compile of a ResNet-18
# matching step costs 1-1.5 min on a 2-core CPU and the compiled step is 1.5-2x faster than the eager one, so a
# run of 5 eager minutes earns it back (docs/results/bench_*.md); the ConvNet's laptop runs never do.
COMPILE_PAYBACK_SECONDS = 300.0
AUTO_PROBE_CALLS = 3            # eager calls ``auto`` times (the last two) before it decides
# where inductor keeps what it compiled, so a later process skips most of the compile (unless
# TORCHINDUCTOR_CACHE_DIR is set): a user cache directory survives reboots, unlike inductor's /tmp default
INDUCTOR_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gifd_lite" / "inductor"


def compile_available(device: torch.device) -> bool:
    """Whether inductor can run here: a C++ compiler on CPU (Triton ships with CUDA builds of torch)."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "clang++"))


def check_compile_mode(mode: str, device: torch.device) -> str:
    """``mode`` checked: one of :data:`COMPILE_MODES`, and ``on`` only where inductor can run. The environment
    variable ``GIFD_COMPILE`` (auto / on / off) replaces ``auto`` for a whole process (``reproduce --compile``)."""
    if mode == "auto":
        mode = os.environ.get("GIFD_COMPILE", "auto")
    if mode not in COMPILE_MODES:
        raise GifdError(f"unknown compile mode {mode!r}: choose one of {', '.join(COMPILE_MODES)}")
    if mode == "on" and not compile_available(device):
        raise GifdError("--compile on needs a C++ compiler (g++ or clang++) on the PATH for torch.compile on CPU")
    if mode == "auto" and not compile_available(device):
        return "off"
    return mode


class MatchingOracle:
    """``oracle(x) -> (grad_x, loss, held)``: the matching loss of ``x`` (detached), its held-out loss (with a
    held-out split, else None) and ∂(loss + λ_TV TV)/∂x; see the module docstring.

    ``inputs="unit"``: x is an image in [0, 1], normalised for the FL model inside with the threat model's input
    spec (generator attacks);
    ``"model"``: x is already in the model's input space (IG, DLG). ``distance`` is ``cosine`` or ``l2``.
    With ``soft_labels`` the oracle also differentiates with respect to y (DLG's label search):
    ``oracle(x, y) -> ((grad_x, grad_y), loss, held)``.
    """

    def __init__(self, model: nn.Module, target: GradientTarget, labels: torch.Tensor, distance: str = "cosine",
                 tv_weight: float = 0.0, inputs: str = "unit", compile: str = "off", calls: int = 0,
                 soft_labels: bool = False):
        from torch.func import functional_call, grad, grad_and_value

        if distance not in ("cosine", "l2"):
            raise GifdError(f"unknown gradient distance {distance!r}: use cosine or l2")
        if inputs not in ("unit", "model"):
            raise GifdError(f"inputs must be 'unit' or 'model', not {inputs!r}")
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in model.modules()):
            # train-mode batch norm normalises with the batch's own statistics; its running averages do not
            # enter the output, and updating them in place is what function transforms cannot do: a copy
            # without them computes the same gradient (and leaves the caller's model alone)
            import copy

            model = torch.func.replace_all_batch_norm_modules_(copy.deepcopy(model))
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
        fixed = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
        fixed.update({n: b.detach() for n, b in model.named_buffers()})
        self.device = next(model.parameters()).device
        self.mode = check_compile_mode(compile, self.device)
        self.labels, self.has_held, self.calls, self.expected_calls = labels, target.fit is not None, 0, calls
        self.compiled = False

        def ce(p, x, y):
            return _cross_entropy(functional_call(model, ({**p, **fixed},), (x,)), y)

        model_grad = grad(ce)

        def dummy_update(x, y, params) -> list[torch.Tensor]:
            if target.unroll is None:
                g = model_grad(params, x, y)
                return [g[n] for n in names]
            steps, lr = target.unroll
            current = params
            for _ in range(steps):
                g = model_grad(current, x, y)
                current = {n: current[n] - lr * g[n] for n in names}
            return [params[n] - current[n] for n in names]

        def step_for(memory_format):
            """The oracle's step with images and 4-D weights in ``memory_format`` (channels_last was ~13% faster
            compiled on ResNet-18 at two threads when issue 16 measured it, and no faster eager)."""
            weights = {n: p.contiguous(memory_format=memory_format) if p.dim() == 4 else p for n, p in params.items()}
            target.pieces(memory_format)        # made here, eagerly: the compiled step only reads them

            def objective(x, y):
                model_x = (target.input.normalize(x) if inputs == "unit" else x).contiguous(memory_format=memory_format)
                grads = dummy_update(model_x, y, weights)
                if distance == "l2":
                    fit, held = target.l2(grads, memory_format), None
                else:
                    fit, held = target.cosine_split(grads, memory_format)
                total = fit + tv_weight * total_variation(x) if tv_weight else fit
                return total, (fit.detach(), fit.detach() if held is None else held)   # aux holds tensors only

            return grad_and_value(objective, argnums=(0, 1) if soft_labels else 0, has_aux=True)

        def distance_only(x):
            model_x = target.input.normalize(x) if inputs == "unit" else x
            grads = dummy_update(model_x, self.labels, params)
            return target.l2(grads) if distance == "l2" else target.cosine_split(grads)[0]

        self._values = torch.func.vmap(distance_only)      # many candidates at once (GGL's population)
        self._step_for = step_for
        self.eager: Callable = step_for(torch.contiguous_format)
        self._step = self.eager
        self.probe_seconds: list[float] = []
        self.batched: bool | None = None        # values(): vmap or a loop, decided by the first population
        if self.mode == "on":
            self._compile()

    def _compile(self) -> None:
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(INDUCTOR_CACHE))
        # every oracle compiles the same wrapper code; each new model, target shape or threat model is one more
        # specialisation of it, and past dynamo's limit (8) it would fall back to eager without a word: a sweep
        # or a course process builds dozens
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 256)
        if self.device.type == "cpu":          # inductor's C++ build warns, on CPU, that it found no CUDA runtime
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        self._step = torch.compile(self._step_for(torch.channels_last), dynamic=False)
        self.compiled = True

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """(∂loss/∂x, the matching loss, the held-out loss or None); ``x`` is not modified."""
        probing = self.mode == "auto" and not self.compiled and 0 < self.calls < AUTO_PROBE_CALLS
        if probing:
            self._sync()
            t0 = time.perf_counter()
        grads, (_, (fit, held)) = self._step(x.detach(), self.labels if y is None else y.detach())
        # the compiled step works in channels_last; callers (L-BFGS's flat view) expect the input's layout
        grads = tuple(g.contiguous() for g in grads) if isinstance(grads, tuple) else grads.contiguous()
        self.calls += 1
        if probing:
            self._sync()
            self.probe_seconds.append(time.perf_counter() - t0)
            if self.calls == AUTO_PROBE_CALLS and self.worth_compiling():
                self._compile()
        return grads, fit, held if self.has_held else None

    def values(self, xs: torch.Tensor) -> torch.Tensor:
        """The matching distance (no TV, no derivative) of each candidate ``xs[i]`` (shape (P, *x.shape)): GGL's
        CMA-ES population, with one host read per population at most (by the caller).

        One batched ``vmap`` pass or a loop over candidates, whichever the first call measured faster here: the
        batch pays where one candidate leaves the device idle (ConvNet on a 2-core CPU: 1.7× faster) and not
        where per-candidate weight gradients dominate (ResNet-18 on that CPU: 16% slower); see bench_*.md."""
        xs = xs.detach()
        with torch.no_grad():
            if self.batched is None and len(xs) >= 4:          # the first population: time both on parts of it
                k = max(2, len(xs) // 5)
                first = self._values(xs[:1])[0]                 # unmeasured: the loop's warm-up
                self._sync()
                t0 = time.perf_counter()
                looped = torch.stack([first] + [self._values(x[None])[0] for x in xs[1:k]])
                self._sync()
                t1 = time.perf_counter()
                batched = self._values(xs[k:])
                self._sync()
                t2 = time.perf_counter()
                self.batched = (t2 - t1) / (len(xs) - k) < (t1 - t0) / (k - 1)
                return torch.cat([looped, batched])
            if self.batched is False:
                return torch.stack([self._values(x[None])[0] for x in xs])
            return self._values(xs)

    def worth_compiling(self) -> bool:
        """``auto``'s rule: the calls still to come, at the measured eager speed, take at least
        :data:`COMPILE_PAYBACK_SECONDS`."""
        per_call = min(self.probe_seconds)
        return per_call * max(0, self.expected_calls - self.calls) >= COMPILE_PAYBACK_SECONDS

    def _sync(self) -> None:           # only while ``auto`` times its probe calls
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
