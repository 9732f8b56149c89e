import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from gifd_lite import fl, models, pipeline
from gifd_lite.attacks.gan_latent import ggl, gias, kl_to_standard_normal
from gifd_lite.attacks.gifd import gifd
from gifd_lite.attacks.l1ball import project_l1_ball
from gifd_lite.config import get_preset


def _brute_force_projection(v: np.ndarray, r: float) -> np.ndarray:
    """min ||w - v||² s.t. ||w||_1 ≤ r, as a smooth QP in w = p - q with p, q ≥ 0 (SLSQP)."""
    n = len(v)
    objective = lambda pq: float(((pq[:n] - pq[n:] - v) ** 2).sum())  # noqa: E731
    constraint = {"type": "ineq", "fun": lambda pq: r - pq.sum()}
    start = np.concatenate([np.clip(v, 0, None), np.clip(-v, 0, None)]) * 0.5
    res = minimize(objective, start, bounds=[(0, None)] * (2 * n), constraints=[constraint], method="SLSQP",
                   options={"ftol": 1e-12, "maxiter": 500})
    return res.x[:n] - res.x[n:]


def test_l1_projection_inside_unchanged_and_on_the_ball():
    v = torch.randn(6, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    norms = v.flatten(1).abs().sum(1)
    radius = norms * torch.tensor([2.0, 1.0, 0.5, 0.1, 0.01, 3.0])
    w = project_l1_ball(v, radius)
    assert torch.equal(w[0], v[0]) and torch.equal(w[5], v[5]) and torch.allclose(w[1], v[1])
    assert torch.allclose(w.flatten(1).abs().sum(1)[2:5], radius[2:5], rtol=1e-4)
    assert torch.all(w.sign() * v.sign() >= 0)       # never flips a sign


@pytest.mark.parametrize("seed", range(5))
def test_l1_projection_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(3, 5))
    radii = np.array([0.3, 1.0, 2.5])
    ours = project_l1_ball(torch.tensor(v), torch.tensor(radii)).numpy()
    for i in range(3):
        assert np.allclose(ours[i], _brute_force_projection(v[i], radii[i]), atol=1e-4)


@pytest.fixture(scope="module")
def setting(tiny_prior):
    G = tiny_prior
    model = models.build_model("convnet", seed=0).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([1, 5])
    update = pipeline.observe(model, x, y, fl.ThreatModel("convnet", batch_size=2))
    return G, model, x, y, update


def test_gifd_loss_rule_keeps_the_lowest_loss_over_stages_and_restarts(setting):
    from dataclasses import replace

    G, model, x, y, update = setting
    config = replace(get_preset("smoke").gifd, select="loss")
    rec = gifd(model, update.tensors, y, update.threat_model, G, config, seed=3)
    stages = rec.history.extra["stages"]
    assert [s["stage"] for s in stages] == [G.STAGES[k] for k in config.stages]
    assert all(len(s["losses"]) == len(s["restart_images"]) == config.restarts for s in stages)
    best = min(stages, key=lambda s: s["best_loss"])
    assert rec.history.extra["best_layer"] == best["stage"]
    assert rec.gradient_loss == best["best_loss"]
    assert torch.equal(rec.images, best["images"])
    assert rec.images.shape == x.shape and rec.iterations == config.total_iterations


def test_gifd_features_stay_in_the_ball(setting):
    """With radius 0 every deeper stage must reproduce the latent stage's image exactly."""
    G, model, x, y, update = setting
    config = get_preset("smoke").gifd
    from dataclasses import replace

    frozen = replace(config, radius=(None,) + (0.0,) * (len(config.stages) - 1))
    rec = gifd(model, update.tensors, y, update.threat_model, G, frozen, seed=3)
    stages = rec.history.extra["stages"]
    for s in stages[1:]:
        assert torch.allclose(s["images"], stages[0]["images"], atol=1e-5)


def test_ggl_and_gias_shapes_and_snapshots(setting):
    """Both keep snapshots of the run they return, as every attack does (notebook 04's explorer): GGL one per
    chosen generation (its best candidate) ending at the last, GIAS over the latent search, then the fine-tuning."""
    G, model, x, y, update = setting
    preset = get_preset("smoke")
    gias_steps = preset.gias.latent_iterations + preset.gias.generator_iterations
    for rec, last in ((ggl(model, update.tensors, y, update.threat_model, G, preset.ggl), None),
                      (ggl(model, update.tensors, y, update.threat_model, G, preset.ggl, optimizer="adam"), None),
                      (gias(model, update.tensors, y, update.threat_model, G, preset.gias), gias_steps)):
        assert rec.images.shape == x.shape and 0 <= rec.images.min() and rec.images.max() <= 1
        assert np.isfinite(rec.gradient_loss)
        steps = [step for step, _ in rec.history.snapshots]
        assert 2 <= len(steps) <= 6 and steps == sorted(set(steps)) and steps[-1] == (last or rec.iterations)
        for _, images in rec.history.snapshots:
            assert images.shape == x.shape and images.device.type == "cpu" and 0 <= images.min() <= images.max() <= 1
    gias_steps_seen = [step for step, _ in rec.history.snapshots]     # the ends of both phases, and more of each
    assert preset.gias.latent_iterations in gias_steps_seen
    assert len([s for s in gias_steps_seen if s > preset.gias.latent_iterations]) >= 2


def test_keeping_snapshots_changes_nothing_in_ggl_or_gias(setting):
    """The snapshots only copy images the attacks compute anyway: with none kept, the same images and losses."""
    from dataclasses import replace

    G, model, x, y, update = setting
    preset = get_preset("smoke")
    for attack, config, kwargs in ((ggl, preset.ggl, {}), (ggl, preset.ggl, {"optimizer": "adam"}),
                                   (gias, preset.gias, {})):
        kept = attack(model, update.tensors, y, update.threat_model, G, config, **kwargs)
        none = attack(model, update.tensors, y, update.threat_model, G, replace(config, snapshots=0), **kwargs)
        assert kept.history.snapshots and not none.history.snapshots
        assert torch.equal(kept.images, none.images) and kept.history.loss == none.history.loss


@pytest.mark.parametrize("name", ["smoke", "laptop", "paper"])
def test_ggl_population_and_generations_follow_the_preset(setting, name):
    """GGL's own budget: a population of 50 for 500 generations (paper); laptop has GIFD's compute."""
    from dataclasses import replace

    from gifd_lite.config import GGL_COST_PER_GIFD_ITERATION

    config = get_preset(name).ggl
    if name == "paper":
        assert (config.popsize, config.generations) == (50, 500)
    if name == "laptop":
        gifd_iterations = get_preset(name).gifd.total_iterations
        assert config.popsize == 50
        assert abs(config.evaluations - gifd_iterations / GGL_COST_PER_GIFD_ITERATION) < config.popsize / 2
    G, model, x, y, update = setting
    short = replace(config, evaluations=3 * config.popsize)     # three generations of the preset's population
    rec = ggl(model, update.tensors, y, update.threat_model, G, short)
    assert rec.history.extra["popsize"] == config.popsize
    assert rec.history.extra["generations"] == 3 == len(rec.history.loss) and rec.iterations == 3 * config.popsize


def test_ggl_never_exceeds_its_budget(setting):
    G, model, x, y, update = setting
    from dataclasses import replace

    for budget in (5, 40, 41):
        rec = ggl(model, update.tensors, y, update.threat_model, G, replace(get_preset("smoke").ggl, evaluations=budget))
        popsize = len(rec.history.loss) and rec.iterations // len(rec.history.loss)
        assert rec.iterations <= max(budget, popsize) and rec.iterations > budget - popsize


def test_search_stage_again_starts_where_the_run_left_off(setting):
    """Radius 0 at the next stage reproduces the earlier stage's best image; a free search matches better."""
    from dataclasses import replace

    from gifd_lite.attacks.gifd import search_stage_again

    G, model, x, y, update = setting
    config = get_preset("smoke").gifd
    first = gifd(model, update.tensors, y, update.threat_model, G,
                 replace(config, stages=(0, 1), iterations=(6, 6), lr=(0.1, 0.1), radius=(None, 0.3)), seed=1)
    frozen = search_stage_again(model, update.tensors, y, G, first, 2, 4, 0.1, radius=0.0)
    assert torch.allclose(frozen.images, first.history.extra["stages"][-1]["images"], atol=1e-5)
    free = search_stage_again(model, update.tensors, y, G, first, 2, 8, 0.1, radius=None)
    assert free.loss <= frozen.loss + 1e-6
    with pytest.raises(Exception, match="no stage before"):
        search_stage_again(model, update.tensors, y, G, first, 0, 4, 0.1, radius=None)


def test_radius_sweep_searches_the_deep_stage_from_one_shared_start(setting):
    """Every radius starts from the same prefix run; radius 0 keeps its image, no ball matches at least as well."""
    from dataclasses import replace

    from gifd_lite.attacks.gifd import radius_sweep

    G, model, x, y, update = setting
    config = replace(get_preset("smoke").gifd, stages=(0, 1, 2), iterations=(6, 6, 6), lr=(0.1,) * 3,
                     radius=(None, 0.3, 0.3), restarts=1)
    first, results = radius_sweep(model, update.tensors, y, update.threat_model, G, config, 2, [0.0, None, 1e6],
                                  seed=1)
    assert [st["k"] for st in first.history.extra["stages"]] == [0, 1]          # the prefix stops before stage 2
    frozen, free, never_binds = results
    assert torch.equal(never_binds.images, free.images) and never_binds.loss == free.loss
    assert torch.allclose(frozen.images, first.history.extra["stages"][-1]["images"], atol=1e-5)
    assert free.loss <= frozen.loss + 1e-6
    with pytest.raises(Exception, match="deep_stage"):
        radius_sweep(model, update.tensors, y, update.threat_model, G, config, 0, [None])


def test_kl_is_zero_for_standard_normal_moments():
    z = torch.randn(4, 100000, generator=torch.Generator().manual_seed(0))
    assert float(kl_to_standard_normal(z)) < 1e-3
    assert float(kl_to_standard_normal(3 * z)) > 1
