"""Every attack leaves the FL model exactly as it found it: parameters, buffers, mode and ``.grad``."""

from dataclasses import replace

import pytest
import torch

from gifd_lite import fl, models, pipeline
from gifd_lite.config import get_preset

SMOKE = get_preset("smoke")
# a few steps of each attack touch the model as often as many: DLG/iDLG's L-BFGS shortened (the slowest here)
TINY = SMOKE.override(dlg=replace(SMOKE.dlg, iterations=2, inner_steps=3))


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
@pytest.mark.parametrize("method", pipeline.METHODS)
def test_attack_leaves_the_model_as_it_found_it(method, bn_mode, tiny_prior):
    model = models.build_model("convnet", seed=0)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())   # the buffers a forward pass moves
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([2, 7])
    tm = fl.ThreatModel("convnet", bn_mode=bn_mode, batch_size=2)
    update = pipeline.observe(model, x, y, tm)
    for start_in_train_mode in (True, False):
        model.train(start_in_train_mode)
        before = _state(model)
        pipeline.run_attack(method, model, update, TINY, batch_size=2, seed=0, generator=tiny_prior)
        after = model.state_dict()
        assert model.training == start_in_train_mode
        assert all(torch.equal(before[k], after[k]) for k in before), "parameters or buffers changed"
        assert all(p.grad is None for p in model.parameters()), "the attack left gradients on the model"


def test_ggl_adam_differentiates_only_its_latent(tiny_prior):
    """GGL's gradient-based variant back-propagates through the model's gradient: into z, never into θ."""
    from gifd_lite.attacks.gan_latent import ggl

    model = models.build_model("convnet", seed=0).eval()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([3])
    update = pipeline.observe(model, x, y, fl.ThreatModel("convnet"))
    before = _state(model)
    ggl(model, update.tensors, y, update.threat_model, tiny_prior, SMOKE.ggl, optimizer="adam")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
