"""GIFD's stage choice (notebook 05): the held-out split, the two distances it gives, and the selection rules."""

from dataclasses import replace

import pytest
import torch

from gifd_lite import fl, models, pipeline
from gifd_lite.attacks.core import GradientTarget, holdout_split, model_gradients
from gifd_lite.attacks.generative import matching_loss, render
from gifd_lite.attacks.gifd import choose_candidate, gifd, resolve_selection
from gifd_lite.config import get_preset
from gifd_lite.data import normalize
from gifd_lite.errors import GifdError


def test_holdout_split_holds_out_the_fraction_of_every_tensor_and_is_seeded():
    tensors = [torch.zeros(10, 20), torch.zeros(50), torch.zeros(1), torch.zeros(3)]
    mask = holdout_split(tensors, 0.2, seed=4)
    parts = mask.split([t.numel() for t in tensors])
    assert [int((p == 0).sum()) for p in parts] == [40, 10, 0, 1]      # 20% of each; a lone entry stays fitted
    assert torch.equal(mask, holdout_split(tensors, 0.2, seed=4))
    assert not torch.equal(mask, holdout_split(tensors, 0.2, seed=5))
    with pytest.raises(GifdError):
        holdout_split(tensors, 1.0)


@pytest.fixture(scope="module")
def observed():
    model = models.build_model("convnet", seed=0).eval()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([3])
    update = pipeline.observe(model, x, y, fl.ThreatModel("convnet"))
    return model, x, y, update


def test_the_two_distances_are_cosines_on_complementary_entries(observed):
    model, x, y, update = observed
    dummy = model_gradients(model, torch.rand_like(x), y, create_graph=False)
    whole = GradientTarget(model, update.tensors)
    fit, held = whole.cosine_split(dummy)
    assert held is None and torch.allclose(fit, whole.cosine(dummy))
    split = GradientTarget(model, update.tensors, holdout=0.3, split_seed=2)
    fit, held = split.cosine_split(dummy)
    flat, g = torch.cat([t.flatten() for t in dummy]), split.flat
    keep = split.fit.bool()
    expect = [1 - torch.nn.functional.cosine_similarity(flat[m], g[m], dim=0) for m in (keep, ~keep)]
    assert torch.allclose(fit, expect[0], atol=1e-6) and torch.allclose(held, expect[1], atol=1e-6)
    # at the truth both distances are zero: the split loses nothing the image explains
    truth = model_gradients(model, normalize(x), y, create_graph=False)
    assert all(float(d) < 1e-5 for d in split.cosine_split(truth))


def _candidates(rows):
    return [{"restart": r, "stage": s, "by": by, "fit": f, "held": h} for r, s, by, f, h in rows]


def test_choose_candidate_rules():
    """Fitting loss falls with depth in every restart (stages are chained); the held-out loss need not."""
    cands = _candidates([
        (0, "z", "fit", 0.30, 0.40), (0, "4x4", "fit", 0.20, 0.25), (0, "8x8", "fit", 0.10, 0.30),
        (0, "8x8", "held", 0.12, 0.28),
        (1, "z", "fit", 0.35, 0.20), (1, "4x4", "fit", 0.25, 0.45), (1, "8x8", "fit", 0.15, 0.50),
    ])
    assert cands[choose_candidate(cands, "loss")]["stage"] == "8x8"                  # always the deepest
    assert choose_candidate(cands, "holdout") == 1                                  # restart 0, then its best held-out
    assert choose_candidate(cands, "holdout", restart_by="held") == 4               # the lowest held-out anywhere
    cands[3]["held"] = 0.24                                                         # a mid-stage step now wins ...
    assert choose_candidate(cands, "holdout") == 3
    assert choose_candidate(cands, "holdout", steps=False) == 1                     # ... unless only stage ends count
    with pytest.raises(GifdError, match="held-out"):
        choose_candidate(_candidates([(0, "z", "fit", 0.3, None)]), "holdout")
    with pytest.raises(GifdError, match="unknown stage selection"):
        choose_candidate(cands, "psnr")


def test_gifd_holdout_records_both_losses_and_outputs_the_rule_s_choice(observed, tiny_prior):
    prior = tiny_prior
    model, x, y, update = observed
    config = replace(get_preset("smoke").gifd, restarts=2, select="holdout")
    rec = gifd(model, update.tensors, y, update.threat_model, prior, config, seed=1)
    extra = rec.history.extra
    assert extra["select"] == "holdout"
    stages = extra["stages"]
    assert all(len(st["held_losses"]) == config.restarts and None not in st["held_losses"] for st in stages)
    fits = [c for c in extra["candidates"] if c["by"] == "fit"]
    assert len(fits) == config.restarts * len(config.stages)
    assert all(c["held"] is not None and c["fit"] is not None for c in extra["candidates"])
    chosen = extra["candidates"][choose_candidate(extra["candidates"], "holdout")]
    assert chosen is extra["chosen"] and extra["best_layer"] == chosen["stage"]
    # then the chosen stage is refitted to the whole update, starting from the chosen features (step 0)
    assert torch.equal(extra["refit"]["images_before"], chosen["images"]) and extra["refit"]["steps"] == 4
    whole = GradientTarget(model, update.tensors)
    with torch.no_grad():
        start = render(prior, chosen["k"], chosen["features"], chosen["code"])
    start_loss = float(matching_loss(model, whole, start, y, create_graph=False))
    assert rec.gradient_loss <= start_loss + 1e-6            # reported on the whole update, as the loss rule's
    assert rec.iterations == config.total_iterations
    unrefitted = gifd(model, update.tensors, y, update.threat_model, prior, replace(config, refit_steps=0), seed=1)
    assert torch.equal(unrefitted.images, chosen["images"])
    assert unrefitted.gradient_loss == pytest.approx(start_loss, rel=1e-5)
    loss_rule = gifd(model, update.tensors, y, update.threat_model, prior, replace(config, select="loss"), seed=1)
    assert all(c["held"] is None for c in loss_rule.history.extra["candidates"])
    with pytest.raises(GifdError, match="stage selection"):
        gifd(model, update.tensors, y, update.threat_model, prior, replace(config, select="oracle"), seed=1)


def test_auto_holds_out_under_noise_and_stops_early_for_batches():
    assert resolve_selection("auto", fl.ThreatModel("convnet")) == ("loss", None)
    assert resolve_selection("auto", fl.ThreatModel("convnet"), batch_size=4) == ("loss", "16x16")  # the labels' count
    assert resolve_selection("auto", fl.ThreatModel("convnet", defense="noise", defense_param=0.01)) == ("holdout", None)
    assert resolve_selection("auto", fl.ThreatModel("convnet", defense="compression", defense_param=0.1)) == ("loss", None)
    assert resolve_selection("loss", fl.ThreatModel("convnet"), batch_size=8) == ("loss", None)
    with pytest.raises(GifdError, match="stage selection"):
        resolve_selection("psnr", None)


def test_auto_at_batch_4_is_the_loss_rule_stopped_after_16x16(tiny_prior):
    """The same optimisation as the full run up to 16x16: its output is that stage's lowest-loss restart."""
    model = models.build_model("convnet", seed=0).eval()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0, 3, 5, 8])
    update = pipeline.observe(model, x, y, fl.ThreatModel("convnet", batch_size=4))
    config = replace(get_preset("smoke").gifd, restarts=2)
    auto = gifd(model, update.tensors, y, update.threat_model, tiny_prior, config, seed=0)
    full = gifd(model, update.tensors, y, update.threat_model, tiny_prior, replace(config, select="loss"), seed=0)
    assert auto.history.extra["last_stage"] == "16x16" and auto.history.extra["best_layer"] == "16x16"
    at_16 = next(st for st in full.history.extra["stages"] if st["stage"] == "16x16")
    assert torch.equal(auto.images, at_16["images"])
