"""Your own model (issue 20): an nn.Module the package does not define, with its own input size and
normalisation, attacked through the Python API by the pixel attacks; the generator attacks say why they cannot."""

from dataclasses import replace

import pytest
import torch
from torch import nn

from gifd_lite import data, fl, metrics, pipeline
from gifd_lite.data import InputSpec
from gifd_lite.errors import GifdError

SPEC = InputSpec(shape=(1, 24, 24), mean=(0.45,), std=(0.22,))


class TinyGreyNet(nn.Module):
    """A grey 24x24 classifier with 7 classes: one strided convolution, a hidden layer, a linear head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 5, stride=2, padding=2)
        self.hidden = nn.Linear(6 * 12 * 12, 48)
        self.head = nn.Linear(48, 7)

    def forward(self, x):
        return self.head(torch.relu(self.hidden(torch.relu(self.conv(x)).flatten(1))))


@pytest.fixture(scope="module")
def case(cifar_test):
    torch.manual_seed(0)
    model = TinyGreyNet().eval()
    x = data.fit_to_input(data.victim_batch(cifar_test, 3000, 1)[0], SPEC)
    y = torch.tensor([4])
    tm = fl.ThreatModel("TinyGreyNet", input=SPEC)
    return model, x, y, pipeline.observe(model, x, y, tm)


def test_the_update_is_computed_with_the_models_own_normalisation(case):
    model, x, y, update = case
    expected = fl.fedsgd_gradients(model, (x - 0.45) / 0.22, y)
    assert all(torch.allclose(a, b) for a, b in zip(update.tensors, expected))
    assert update.threat_model.as_dict()["input"]["shape"] == (1, 24, 24)


def test_inverting_gradients_reconstructs_the_own_models_input(case, smoke):
    model, x, y, update = case
    preset = smoke.override(ig=replace(smoke.ig, iterations=300))
    rec = pipeline.run_attack("ig", model, update, preset, batch_size=1, seed=0)
    assert rec.images.shape == (1, 1, 24, 24)
    assert int(rec.labels) == 4                                   # iDLG's label read-off works on it too
    psnr = metrics.evaluate(rec.images, x, with_lpips=False)["psnr"]
    flat = metrics.evaluate(torch.full_like(x, float(x.mean())), x, with_lpips=False)["psnr"]
    assert psnr > flat + 5, (psnr, flat)          # measured: 26.4 dB against 17.8 for the flat mean grey


def test_dlg_runs_on_the_own_model(case, smoke):
    model, x, y, update = case
    rec = pipeline.run_attack("idlg", model, update, smoke, batch_size=1, seed=0)
    assert rec.images.shape == x.shape and torch.isfinite(rec.images).all()


def test_generator_attacks_need_the_priors_input_size(case, smoke, tiny_prior):
    model, x, y, update = case
    with pytest.raises(GifdError, match="3×32×32 RGB"):
        pipeline.run_attack("gifd", model, update, smoke, batch_size=1, generator=tiny_prior)


def test_images_of_the_wrong_size_are_rejected(case):
    model, x, y, update = case
    with pytest.raises(GifdError, match="1×24×24"):
        pipeline.observe(model, torch.rand(1, 3, 32, 32), y, fl.ThreatModel("TinyGreyNet", input=SPEC))


@pytest.mark.parametrize("kwargs, message", [
    ({"shape": (3, 32)}, "channels, height, width"),
    ({"shape": (1, 8, 8), "mean": (0.5, 0.5), "std": (0.2,)}, "one mean and one std per channel"),
    ({"shape": (1, 8, 8), "mean": (0.5,), "std": (0.0,)}, "positive"),
])
def test_bad_input_specs_are_one_line_errors(kwargs, message):
    with pytest.raises(GifdError, match=message):
        InputSpec(**kwargs)
