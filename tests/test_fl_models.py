import numpy as np
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
    with pytest.raises(GifdError, match="positive local learning rate"):
        fl.ThreatModel("convnet", update="fedavg", fedavg_steps=5)        # lr left at 0: a zero update
    with pytest.raises(GifdError, match="positive local learning rate"):
        fl.fedavg_update(model, x, y, steps=2, lr=0.0)
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


def _weight_index(model):
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    return [i for i, p in enumerate(model.parameters()) if p is last.weight][0]


@pytest.mark.parametrize("name", ["lenet", "convnet"])     # ResNet-18 works the same way, at 40 s a mask here
def test_soteria_prunes_the_requested_fraction_of_last_layer_columns(name):
    model = models.build_model(name, seed=0).eval()
    # one image: the Jacobian costs a backward pass per feature and image (the sum over images is checked by
    # test_soteria_score_follows_its_definition)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([7])
    plain = fl.client_update(model, x, y, fl.ThreatModel(name)).tensors
    defended = fl.client_update(model, x, y, fl.ThreatModel(name, defense="soteria", defense_param=0.25)).tensors
    w = _weight_index(model)
    keep = fl.soteria_mask(model, x, 0.25)
    live = (plain[w] != 0).any(0)
    assert int((~keep).sum()) == round(0.25 * int(live.sum())) and not (~keep & ~live).any()
    assert torch.equal(defended[w], plain[w] * keep[None, :])
    assert (plain[w][:, ~keep] != 0).any()             # it removed information, not only dead features
    assert all(torch.equal(a, b) for i, (a, b) in enumerate(zip(plain, defended)) if i != w)


def test_soteria_reuses_its_mask_only_while_model_and_image_stay_the_same(monkeypatch):
    calls = []
    real = fl._soteria_mask
    monkeypatch.setattr(fl, "_soteria_mask", lambda *a: calls.append(1) or real(*a))
    model = models.build_model("lenet", seed=0).eval()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    first = fl.soteria_mask(model, x, 0.3)
    assert torch.equal(fl.soteria_mask(model, x.clone(), 0.3), first) and len(calls) == 1
    fl.soteria_mask(model, x, 0.5)                       # another fraction
    fl.soteria_mask(model, x + 0.01, 0.3)                # another image
    assert len(calls) == 3
    with torch.no_grad():
        next(model.parameters()).data.mul_(1.5)          # an edit that autograd's version counter does not see
    assert torch.equal(fl.soteria_mask(model, x, 0.3), real(model, x, 0.3)) and len(calls) == 4


def test_soteria_score_follows_its_definition():
    """On a linear 'representation' r = A x the Jacobian row norms are ||A_i||: the pruned features are the
    ones with the smallest Σ_b ||A_i|| / |r_{b,i}|."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 6, bias=False), torch.nn.Linear(6, 3))
    x = torch.rand(2, 3, 2, 2)
    A = model[1].weight.detach()
    r = model[1](x.flatten(1)).detach()
    scores = (A.norm(dim=1)[None, :] / (r.abs() + fl.SOTERIA_EPSILON)).sum(0)
    keep = fl.soteria_mask(model, x, 0.5)
    assert set(torch.nonzero(~keep).flatten().tolist()) == set(scores.argsort()[:3].tolist())
    with pytest.raises(GifdError):
        fl.soteria_mask(model, x, 1.0)


def test_adaptive_attacker_mirrors_compression_soteria_and_clipping():
    from gifd_lite.attacks.core import GradientTarget

    model = models.build_model("convnet", seed=0).eval()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([4])
    truth = fl.fedsgd_gradients(model, x, y)
    for defense, param in (("compression", 0.1), ("soteria", 0.5)):
        tm = fl.ThreatModel("convnet", defense=defense, defense_param=param, adaptive=True)
        update = fl.client_update(model, x, y, tm).tensors
        plain, adaptive = GradientTarget(model, update), GradientTarget(model, update, tm)
        # the client's own (undefended) gradient, seen through the mirror, matches the defended update exactly
        assert float(adaptive.cosine(truth)) < 1e-5 < float(plain.cosine(truth))
    tm = fl.ThreatModel("convnet", defense="clipping", defense_param=0.01, adaptive=True)
    update = fl.client_update(model, x, y, tm).tensors
    assert float(GradientTarget(model, update, tm).l2(truth)) < 1e-10 < float(GradientTarget(model, update).l2(truth))
    noise = fl.ThreatModel("convnet", defense="noise", adaptive=True)
    assert GradientTarget(model, update, noise).mask is None


def test_clipping_leaves_the_cosine_matching_problem_unchanged():
    """Clipping rescales the whole update (and, mirrored, the dummy gradient): the cosine loss and its gradient in
    the dummy image are the clean problem's up to float rounding (docs/results/README.md, claim 6: the clean and
    clipped GIFD runs differ only by how a long search amplifies that rounding)."""
    from gifd_lite.attacks.core import GradientTarget, model_gradients

    model = models.build_model("convnet", seed=0).eval()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([4])
    dummy = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))

    def loss_and_grad(tm):
        target = GradientTarget(model, fl.client_update(model, x, y, tm).tensors, tm)
        d = dummy.clone().requires_grad_(True)
        loss = target.cosine(model_gradients(model, d, y, params=target.params))
        return loss.detach(), torch.autograd.grad(loss, [d])[0]

    clean_loss, clean_grad = loss_and_grad(fl.ThreatModel("convnet"))
    norm = torch.cat([t.flatten() for t in fl.fedsgd_gradients(model, x, y)]).norm()
    dummy_norm = torch.cat([t.flatten() for t in fl.fedsgd_gradients(model, dummy, y)]).norm()
    assert float(dummy_norm) > 0.5 * float(norm)          # so the mirrored clip binds on the dummy gradient too
    for bound in (0.5 * float(norm), 0.05 * float(norm)):            # both bounds bind
        for adaptive in (False, True):
            loss, grad = loss_and_grad(fl.ThreatModel("convnet", defense="clipping", defense_param=bound,
                                                      adaptive=adaptive))
            assert loss == pytest.approx(float(clean_loss), rel=1e-5)
            assert float((grad - clean_grad).norm() / clean_grad.norm()) < 1e-4
    # an l2 distance (DLG, GGL) does see the scale
    l2 = GradientTarget(model, fl.client_update(model, x, y, fl.ThreatModel("convnet", defense="clipping",
                                                                           defense_param=0.05 * float(norm))).tensors)
    assert float(l2.l2(fl.fedsgd_gradients(model, x, y))) > 0.5 * float(norm) ** 2


def test_adaptive_attacker_unrolls_a_fedavg_clients_local_steps():
    from gifd_lite.attacks.core import GradientTarget

    model = models.build_model("convnet", seed=0).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([4, 7])
    tm = fl.ThreatModel("convnet", update="fedavg", fedavg_steps=5, fedavg_lr=0.1, batch_size=2, adaptive=True)
    update = fl.client_update(model, x, y, tm).tensors
    before = [p.detach().clone() for p in model.parameters()]
    unrolled = GradientTarget(model, update, tm)
    # with the client's own data, the unrolled dummy update is the client's update (and the model is untouched)
    mine = unrolled.dummy_update(model, x, y)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(mine, update))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert float(unrolled.cosine(mine).detach()) < 1e-5
    # the plain attacker compares one gradient with the 5-step update: a visible mismatch even at the truth
    plain = GradientTarget(model, update, fl.ThreatModel("convnet", update="fedavg", fedavg_steps=5, fedavg_lr=0.1))
    assert float(plain.cosine(plain.dummy_update(model, x, y)).detach()) > 1e-3
    # differentiable in the data, as an attack needs; away from the truth: at the truth the distance is at its
    # minimum and its derivative zero (an earlier version of this check passed there on rounding noise alone)
    xd = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))).requires_grad_(True)
    (g,) = torch.autograd.grad(unrolled.cosine(unrolled.dummy_update(model, xd, y)), xd)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize("defense", ["compression", "soteria"])
def test_training_with_a_defense_transforms_each_step(defense, cifar_test):
    from gifd_lite.training import train_classifier

    plain, defended = (models.build_model("convnet", seed=0) for _ in range(2))
    train_classifier(plain, cifar_test, 2, batch_size=8, show_progress=False)
    train_classifier(defended, cifar_test, 2, batch_size=8, show_progress=False, defense=defense)
    a, b = (torch.cat([p.detach().flatten() for p in m.parameters()]) for m in (plain, defended))
    assert torch.isfinite(b).all() and not torch.allclose(a, b)


def test_training_with_soteria_refreshes_its_mask_every_k_steps(cifar_test, monkeypatch):
    from gifd_lite import training

    calls = []
    real = fl.soteria_mask
    monkeypatch.setattr(fl, "soteria_mask", lambda *a, **k: calls.append(1) or real(*a, **k))
    training.train_classifier(models.build_model("lenet", seed=0), cifar_test, 3, batch_size=2,
                              show_progress=False, defense="soteria", soteria_every=2)
    assert len(calls) == 2          # steps 0 and 2
    with pytest.raises(GifdError, match="soteria_every"):
        training.train_classifier(models.build_model("convnet", seed=0), cifar_test, 1, defense="soteria",
                                  show_progress=False, soteria_every=0)


def test_noise_snr_is_the_energy_ratio():
    from gifd_lite.fl import noise_snr

    total, per_layer = noise_snr([torch.ones(4), torch.full((2, 2), 3.0)], sigma=1.0)
    assert per_layer == [1.0, 9.0] and total == pytest.approx((4 + 36) / 8)
    # empirically: the clean energy over the energy the noise added
    g = [torch.randn(1000) * 0.05]
    noised = fl.apply_defense(g, "noise", 0.1, generator=torch.Generator().manual_seed(0))
    added = float(((noised[0] - g[0]) ** 2).sum())
    assert noise_snr(g, 0.1)[0] == pytest.approx(float((g[0] ** 2).sum()) / added, rel=0.15)
    with pytest.raises(GifdError):
        noise_snr(g, 0.0)


def test_accuracy_per_class_on_a_known_case():
    """A model that always answers class 1 is right on every class-1 image and on no other; the overall accuracy
    is the image-weighted mean of the per-class ones; a class without images is left out."""
    from gifd_lite.data import ImageSet
    from gifd_lite.training import accuracy, accuracy_per_class

    class AlwaysOne(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.tensor([0.0, 1.0, 0.0]).expand(len(x), 3) + 0 * self.w

    labels = np.array([0, 0, 1, 1, 1, 2], dtype=np.int64)
    split = ImageSet(np.zeros((6, 32, 32, 3), np.uint8), labels, ("a", "b", "c", "d"), "stub")
    assert accuracy_per_class(AlwaysOne(), split, batch_size=4) == {"a": 0.0, "b": 1.0, "c": 0.0}
    assert accuracy(AlwaysOne(), split, batch_size=4) == pytest.approx(0.5)
