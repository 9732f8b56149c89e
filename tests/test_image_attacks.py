"""image_attacks scores separate clients each against its own image, never matched across clients."""

import numpy as np
import pytest
import torch

from gifd_lite import image_attacks, metrics, models, pipeline
from gifd_lite.attacks.core import History, Reconstruction
from gifd_lite.data import ImageSet


@pytest.fixture
def two_clients():
    """Two test images far apart in pixels (a dark and a bright one), labels 0 and 1."""
    rng = np.random.default_rng(0)
    dark = 40 + rng.integers(0, 20, size=(32, 32, 3))
    bright = 200 + rng.integers(0, 20, size=(32, 32, 3))
    images = np.stack([dark, bright]).astype(np.uint8)
    classes = tuple(f"class{k}" for k in range(10))
    return ImageSet(images=images, labels=np.array([0, 1], dtype=np.int64), classes=classes, source="stub")


def test_each_client_is_scored_against_its_own_image(two_clients, monkeypatch, smoke):
    """The stub attack returns the *other* client's image: matched across clients (Hungarian), the two swapped
    reconstructions would score a perfect 100 dB; scored per client they score the low, unswapped PSNR."""
    truth_by_label = {int(y): two_clients.tensors([k])[0] for k, y in enumerate(two_clients.labels)}
    seen = []

    def swapped_attack(method, model, update, preset, batch_size, seed=0, generator=None, **kwargs):
        k = len(seen)                        # the clients come in the order of indices: 0, then 1
        seen.append({"defense": update.threat_model.defense, "generator": generator})
        return Reconstruction(images=truth_by_label[1 - k].clone(), labels=torch.tensor([k]), history=History(),
                              threat_model=update.threat_model, method=method, iterations=1, seconds=0.0,
                              gradient_loss=0.0)

    monkeypatch.setattr(pipeline, "run_attack", swapped_attack)
    model = models.build_model("lenet", seed=0).eval()
    prior = object()
    res = image_attacks.attack_images("dlg", model, two_clients, [0, 1], smoke, "lenet", generator=prior,
                                      threat={"defense": "noise", "defense_param": 0.01})

    own = [float(metrics.psnr(truth_by_label[1 - k], truth_by_label[k])[0]) for k in (0, 1)]
    assert max(own) < 10                                                    # dark against bright: a few dB
    assert metrics.evaluate(res["images"], res["truth"], with_lpips=False)["psnr"] == pytest.approx(100.0)
    assert res["scores"]["per_image"]["psnr"] == pytest.approx(own, abs=1e-4)
    assert res["scores"]["psnr"] == pytest.approx(sum(own) / 2, abs=1e-4) == res["psnr"]
    assert [r["psnr"] for r in res["rows"]] == pytest.approx(own, abs=1e-4)
    assert res["scores"]["order"] == [0, 1]
    assert res["labels"].tolist() == [0, 1] and len(res["recs"]) == 2
    assert set(res["scores"]) >= {"mse", "psnr", "ssim", "lpips", "per_image", "order"}
    assert seen == [{"defense": "noise", "generator": prior}] * 2          # threat and prior reach every client

    again = image_attacks.score_clients(res["images"], res["truth"])
    assert again["per_image"]["psnr"] == pytest.approx(own, abs=1e-4) and again["order"] == [0, 1]
