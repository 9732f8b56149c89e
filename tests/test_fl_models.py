import pytest
import torch

from gifd_lite import fl, models
from gifd_lite.errors import GifdError


@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_models_shapes_and_seeded_init(name):
    a, b, c = (models.build_model(name, seed=s) for s in (3, 3, 4))
    x = torch.randn(2, 3, 32, 32)
    assert a.eval()(x).shape == (2, 10)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    assert models.build_model(name, num_classes=5)(x).shape == (2, 5)


def test_fedsgd_gradient_matches_autograd():
    model = models.build_model("lenet")
    x, y = torch.randn(3, 3, 32, 32), torch.tensor([1, 4, 9])
    grads = fl.fedsgd_gradients(model, x, y)
    assert [g.shape for g in grads] == [p.shape for p in model.parameters()]
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    assert all(torch.allclose(g, p.grad) for g, p in zip(grads, model.parameters()))


def test_fedavg_one_step_is_lr_times_gradient_and_model_untouched():
    model = models.build_model("convnet").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    delta = fl.fedavg_update(model, x, y, steps=1, lr=0.1)
    grads = fl.fedsgd_gradients(model, x, y)
    assert all(torch.allclose(d, 0.1 * g, atol=1e-6) for d, g in zip(delta, grads))
    three = fl.fedavg_update(model, x, y, steps=3, lr=0.1)
    assert not all(torch.allclose(a, 3 * b) for a, b in zip(three, delta))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_client_in_train_mode_leaves_server_bn_statistics_alone():
    model = models.build_model("resnet18").eval()
    before = model.stem[1].running_mean.clone()
    tm = fl.ThreatModel("resnet18", bn_mode="train")
    fl.client_update(model, torch.randn(2, 3, 32, 32), torch.tensor([0, 1]), tm)
    assert torch.equal(model.stem[1].running_mean, before)


def test_defenses():
    g = [torch.randn(10, 10), torch.randn(100)]
    noisy = fl.apply_defense(g, "noise", 0.5, torch.Generator().manual_seed(0))
    assert 0.3 < float((noisy[1] - g[1]).std()) < 0.7
    clipped = fl.apply_defense(g, "clipping", 1.0)
    assert abs(float(torch.sqrt(sum((t ** 2).sum() for t in clipped))) - 1.0) < 1e-5
    kept = fl.apply_defense(g, "compression", 0.1)
    assert [int((t != 0).sum()) for t in kept] == [10, 10]
    assert float(kept[1].abs().max()) == float(g[1].abs().max())
    with pytest.raises(GifdError):
        fl.apply_defense(g, "compression", 0.0)
    with pytest.raises(GifdError):
        fl.apply_defense(g, "magic")
