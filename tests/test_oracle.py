"""The matching oracle (attacks/oracle.py): the torch.func step equals the autograd one it replaced, compiled equals
eager, and it never touches the model."""

import pytest
import torch

from gifd_lite import fl, models
from gifd_lite.attacks.core import GradientTarget, model_gradients, total_variation, unrolled_update
from gifd_lite.attacks.oracle import MatchingOracle, check_compile_mode, compile_available
from gifd_lite.data import normalize
from gifd_lite.errors import GifdError

DEFENSES = {   # every defense the adaptive attacker mirrors, and FedAvg's unrolled update
    "none": fl.ThreatModel("m"),
    "compression": fl.ThreatModel("m", defense="compression", defense_param=0.1, adaptive=True),
    "clipping": fl.ThreatModel("m", defense="clipping", defense_param=1.0, adaptive=True),
    "soteria": fl.ThreatModel("m", defense="soteria", defense_param=0.3, adaptive=True),
    "fedavg": fl.ThreatModel("m", update="fedavg", fedavg_steps=2, fedavg_lr=0.1, adaptive=True),
}


def _case(name, tm, batch=2, holdout=0.0):
    torch.manual_seed(0)
    model = models.build_model(name, seed=0).eval()
    x = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.arange(batch) + 3
    tm = fl.ThreatModel(name, **{k: v for k, v in vars(tm).items() if k != "model"})
    update = fl.client_update(model, normalize(x), y, tm, torch.Generator().manual_seed(2))
    target = GradientTarget(model, update.tensors, tm, holdout=holdout, split_seed=3)
    dummy = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    return model, target, y, dummy


def _reference(model, target, y, dummy, tv):
    """The autograd step every attack took before the oracle (create_graph, then grad w.r.t. the image)."""
    x = dummy.clone().requires_grad_(True)
    model_x = normalize(x)
    if target.unroll is None:
        grads = model_gradients(model, model_x, y, params=target.params)
    else:
        grads = unrolled_update(model, model_x, y, *target.unroll)
    fit, held = target.cosine_split(grads)
    (gx,) = torch.autograd.grad(fit + tv * total_variation(x), [x])
    return gx, fit.detach(), held


def _rel(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


@pytest.mark.parametrize("defense", DEFENSES)
@pytest.mark.parametrize("name", ["lenet", "convnet", "resnet18"])
def test_eager_oracle_equals_the_autograd_step(name, defense):
    if name == "resnet18" and defense not in ("none", "compression"):
        pytest.skip("ResNet-18 is checked on the plain and one masked update (the rest is the same code)")
    model, target, y, dummy = _case(name, DEFENSES[defense], holdout=0.2 if defense == "none" else 0.0)
    gx, fit, held = MatchingOracle(model, target, y, tv_weight=1e-3, compile="off")(dummy)
    ref_gx, ref_fit, ref_held = _reference(model, target, y, dummy, 1e-3)
    assert _rel(gx, ref_gx) < 1e-4 and abs(float(fit - ref_fit)) <= 1e-4 * abs(float(ref_fit))
    assert (held is None) == (ref_held is None)
    if held is not None:
        assert abs(float(held - ref_held)) <= 1e-4 * abs(float(ref_held))


@pytest.mark.parametrize("defense", ["none", "compression", "clipping", "soteria"])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=["contiguous", "channels_last"])
def test_distances_summed_tensor_by_tensor_equal_the_flat_formulas(defense, layout):
    """The distances are computed per tensor (no 11M-entry concatenation); they and their derivatives must equal
    the textbook formulas on the flattened, masked / clipped update, whatever layout the dummy gradients come in."""
    model, target, y, dummy = _case("convnet", DEFENSES[defense])
    grads = [g.contiguous(memory_format=layout) if g.dim() == 4 else g
             for g in model_gradients(model, normalize(dummy), y, create_graph=False)]

    def flat_formula(gs):
        flat = torch.cat([g.flatten() for g in gs])
        if target.mask is not None:
            flat = flat * target.mask
        if target.clip is not None:
            flat = flat * torch.clamp(target.clip / flat.norm(), max=1.0)
        return flat

    flat = flat_formula(grads)
    assert target.mask is None or 0 < float((target.mask == 0).float().mean()) < 1
    assert target.clip is None or float(torch.cat([g.flatten() for g in grads]).norm()) > target.clip   # active
    cosine = 1 - torch.nn.functional.cosine_similarity(flat, target.flat, dim=0)
    assert abs(float(target.cosine_split(grads, layout)[0] - cosine)) <= 1e-4 * float(cosine)   # float32 sums
    l2 = ((flat - target.flat) ** 2).sum()
    assert abs(float(target.l2(grads, layout) - l2)) <= 1e-4 * float(l2)
    assert torch.allclose(target.view(grads), flat, rtol=1e-5, atol=1e-9)
    # the derivative with respect to the dummy gradients, which every attack differentiates through
    mine = [g.detach().clone().requires_grad_(True) for g in grads]
    ours = torch.autograd.grad(target.cosine_split(mine, layout)[0], mine)
    theirs = [g.detach().clone().requires_grad_(True) for g in grads]
    textbook = torch.autograd.grad(1 - torch.nn.functional.cosine_similarity(flat_formula(theirs), target.flat, dim=0),
                                   theirs)
    scale = max(float(t.abs().max()) for t in textbook)
    assert all(torch.allclose(a, b, rtol=1e-3, atol=1e-5 * scale) for a, b in zip(ours, textbook))


@pytest.mark.parametrize("defense", ["none", "clipping"])
def test_an_all_zero_dummy_gradient_gives_a_finite_derivative(defense):
    """A saturated softmax gives an all-zero dummy gradient: the distance is 1 and its derivative finite (zero),
    as with the flat norm, not the NaN that sqrt(Σ x²) would give."""
    model, target, _, _ = _case("convnet", DEFENSES[defense])
    zeros = [torch.zeros_like(t).requires_grad_(True) for t in target.tensors]
    distance = target.cosine_split(zeros)[0]
    derivative = torch.autograd.grad(distance, zeros)
    assert float(distance) == pytest.approx(1.0) and all(torch.isfinite(d).all() for d in derivative)


@pytest.mark.skipif(not compile_available(torch.device("cpu")), reason="torch.compile needs a C++ compiler")
@pytest.mark.parametrize("defense", ["none", "compression", "fedavg"])
def test_compiled_oracle_equals_eager(defense):
    """LeNet (compiles in seconds) under a plain, a masked and an unrolled update; the ConvNet and ResNet-18 are
    compared by ``python -m gifd_lite bench`` (each compile takes 1-2 minutes here)."""
    model, target, y, dummy = _case("lenet", DEFENSES[defense], holdout=0.2 if defense == "none" else 0.0)
    eager = MatchingOracle(model, target, y, tv_weight=1e-3, compile="off")(dummy)
    compiled_oracle = MatchingOracle(model, target, y, tv_weight=1e-3, compile="on")
    compiled = compiled_oracle(dummy)
    assert compiled_oracle.compiled
    assert _rel(compiled[0], eager[0]) < 1e-4
    assert abs(float(compiled[1] - eager[1])) <= 1e-4 * abs(float(eager[1]))


def test_the_oracle_leaves_the_model_alone_in_both_batch_norm_modes():
    for train in (False, True):
        model, target, y, dummy = _case("convnet", DEFENSES["none"])
        model.train(train)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        MatchingOracle(model, target, y, compile="off")(dummy)
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
        assert model.training == train and all(p.grad is None for p in model.parameters())


def test_batched_values_equal_one_by_one():
    """GGL's population: one vmap pass gives each candidate's own distance."""
    model, target, y, _ = _case("convnet", DEFENSES["none"])
    oracle = MatchingOracle(model, target, y, distance="l2", compile="off")
    xs = torch.rand(4, 2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    one_by_one = torch.stack([oracle(x)[1] for x in xs])
    assert torch.allclose(oracle.values(xs), one_by_one, rtol=1e-4)


def test_auto_compiles_only_long_runs():
    model, target, y, dummy = _case("lenet", DEFENSES["none"])
    short = MatchingOracle(model, target, y, compile="auto", calls=10)
    for _ in range(4):
        short(dummy)
    assert not short.compiled                    # 10 LeNet calls take far less than the payback time
    with pytest.raises(GifdError, match="compile mode"):
        check_compile_mode("sometimes", torch.device("cpu"))


def test_l2_distance_and_soft_labels_equal_the_autograd_step():
    """DLG's oracle: L2 distance, inputs in the model's space, and the derivative with respect to soft labels."""
    model, target, _, dummy = _case("lenet", DEFENSES["none"])
    y = torch.softmax(torch.randn(2, 10, generator=torch.Generator().manual_seed(6)), -1)
    (gx, gy), loss, _ = MatchingOracle(model, target, None, distance="l2", inputs="model", compile="off",
                                       soft_labels=True)(dummy, y)
    x, y_ref = dummy.clone().requires_grad_(True), y.clone().requires_grad_(True)
    ref = target.l2(model_gradients(model, x, y_ref, params=target.params))
    ref_gx, ref_gy = torch.autograd.grad(ref, [x, y_ref])
    assert _rel(gx, ref_gx) < 1e-4 and _rel(gy, ref_gy) < 1e-4 and abs(float(loss - ref)) <= 1e-4 * float(ref)


@pytest.mark.skipif(not compile_available(torch.device("cpu")), reason="torch.compile needs a C++ compiler")
def test_dlg_runs_with_the_compiled_oracle():
    """The compiled step computes in channels_last; L-BFGS needs gradients it can view flat."""
    from dataclasses import replace

    from gifd_lite.attacks.dlg import dlg
    from gifd_lite.config import get_preset

    model, target, y, _ = _case("lenet", DEFENSES["none"], batch=1)
    cfg = replace(get_preset("smoke").dlg, iterations=2, inner_steps=3, compile="on")
    rec = dlg(model, target.tensors, fl.ThreatModel("lenet"), cfg, batch_size=1)
    assert rec.images.shape == (1, 3, 32, 32) and torch.isfinite(rec.images).all()


def _profile_oracle_tool():
    """tools/profile_oracle.py as a module (tools/ is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "tools" / "profile_oracle.py"
    spec = importlib.util.spec_from_file_location("profile_oracle", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_the_compiled_graph_drops_the_weight_gradients_eager_double_backward_computes():
    """tools/profile_oracle.py --graph-flops on LeNet (3 convolutions): eager PyTorch's convolution double backward
    computes one unneeded weight gradient per layer that has an input gradient (layers 2 and 3); the traced graph
    the compiler receives drops them, and keeps every other operator."""
    tool = _profile_oracle_tool()
    counts = tool.graph_flops("lenet")
    eager, graph = counts["eager"], counts["compiled graph"]
    assert eager["aten.convolution"][0] - graph["aten.convolution"][0] == 2
    assert graph["aten.convolution"][1] < eager["aten.convolution"][1]
    assert eager.keys() == graph.keys() and "aten.convolution_backward" in eager
    assert all(eager[op] == graph[op] for op in eager if op != "aten.convolution")


def test_thread_scaling_profiles_the_step_in_one_and_in_two_thread_processes():
    """tools/profile_oracle.py --thread-scaling on LeNet, eager: each child process set the thread count it was
    given (the tool stops if the environment did not reach it), and both report the step and its convolutions'
    self time."""
    tool = _profile_oracle_tool()
    runs = tool.thread_scaling("lenet", "off", calls=1, rows=5, quote=None)
    assert set(runs) == {1, 2}
    for by_op in runs.values():
        assert by_op["step"] > 0 and by_op["aten::convolution_backward"] > 0
