"""No attack waits for the device every step: host reads (``.item()``, ``float(t)``, ``bool(t)``, ``.cpu()``,
``.tolist()``) stay at most one per ten iterations (issue 16).

On a GPU every such read stalls the host until the device has caught up. The count is taken on CPU by wrapping
the Tensor methods that read values back; reads made inside ``torch.optim`` are not counted (Adam's step counter
is a CPU tensor on every device, so reading it never waits for a GPU). DLG is left out: its L-BFGS line search
is host logic that reads every loss by design.
"""

import collections
import sys
from dataclasses import replace

import pytest
import torch

from gifd_lite import fl, models
from gifd_lite.attacks import inverting_gradients
from gifd_lite.attacks.gan_latent import ggl, gias
from gifd_lite.attacks.gifd import gifd
from gifd_lite.config import get_preset
from gifd_lite.data import normalize

READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")


class HostReads:
    """Counts the value reads made while active, by caller (outside torch.optim)."""

    def __enter__(self):
        self.count, self.where, self._saved = 0, collections.Counter(), {}
        for name in READS:
            original = getattr(torch.Tensor, name)
            self._saved[name] = original

            def counted(t, *a, _original=original, _name=name, **k):
                caller = sys._getframe(1)
                if "torch/optim" not in caller.f_code.co_filename:
                    self.count += 1
                    self.where[f"{_name} {caller.f_code.co_filename.split('/')[-1]}:{caller.f_lineno}"] += 1
                return _original(t, *a, **k)

            setattr(torch.Tensor, name, counted)
        return self

    def __exit__(self, *exc):
        for name, original in self._saved.items():
            setattr(torch.Tensor, name, original)


@pytest.fixture(scope="module")
def case():
    model = models.build_model("convnet", seed=0).eval()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([3])
    tm = fl.ThreatModel("convnet")
    return model, fl.client_update(model, normalize(x), y, tm).tensors, y, tm


def _attacks(prior):
    p = get_preset("laptop").with_compile("off")
    gifd_cfg = replace(p.gifd, iterations=(100,) * 5, restarts=1, refit_steps=100)
    return {
        "ig": lambda m, u, y, tm: inverting_gradients(m, u, y, tm, replace(p.ig, iterations=300)),
        "ggl_cma": lambda m, u, y, tm: ggl(m, u, y, tm, prior, replace(p.ggl, evaluations=400, popsize=20)),
        "ggl_adam": lambda m, u, y, tm: ggl(m, u, y, tm, prior, replace(p.ggl, evaluations=300), optimizer="adam"),
        "gias": lambda m, u, y, tm: gias(m, u, y, tm, prior, replace(p.gias, latent_iterations=150,
                                                                     generator_iterations=150, restarts=1)),
        "gifd_loss": lambda m, u, y, tm: gifd(m, u, y, tm, prior, replace(gifd_cfg, select="loss")),
        "gifd_holdout": lambda m, u, y, tm: gifd(m, u, y, tm, prior, replace(gifd_cfg, select="holdout")),
    }


@pytest.mark.parametrize("attack", ["ig", "ggl_cma", "ggl_adam", "gias", "gifd_loss", "gifd_holdout"])
def test_at_most_one_host_read_per_ten_iterations(attack, case, tiny_prior):
    model, update, y, tm = case
    run = _attacks(tiny_prior)[attack]
    with HostReads() as reads:
        rec = run(model, update, y, tm)
    per_iteration = reads.count / rec.iterations
    print(f"{attack}: {reads.count} host reads in {rec.iterations} iterations; most: {reads.where.most_common(4)}")
    assert per_iteration <= 0.1, f"{attack}: {per_iteration:.3f} host reads per iteration ({reads.where.most_common(5)})"
