from dataclasses import replace

import pytest
import torch

from gifd_lite import data, fl, metrics, models, pipeline
from gifd_lite.attacks import core, inverting_gradients
from gifd_lite.errors import GifdError


def _observe(name, cifar_test, index=3000, batch_size=1):
    model = models.build_model(name, seed=0).eval()
    x, y, _ = data.victim_batch(cifar_test, index, batch_size)
    update = pipeline.observe(model, x, y, fl.ThreatModel(name, batch_size=batch_size))
    return model, x, y, update


def test_idlg_recovers_an_image_on_lenet(cifar_test, smoke):
    model, x, y, update = _observe("lenet", cifar_test)
    config = replace(smoke.dlg, iterations=60, inner_steps=20)
    rec = pipeline.run_attack("idlg", model, update, smoke.override(dlg=config), batch_size=1)
    assert rec.images.shape == x.shape and rec.images.min() >= 0 and rec.images.max() <= 1
    assert int(rec.labels) == int(y) and rec.method == "idlg"
    assert metrics.evaluate(rec.images, x, with_lpips=False)["psnr"] > 25  # pure noise scores about 8 dB
    assert rec.history.loss[-1] < rec.history.loss[0]
    assert len(rec.history.snapshots) >= 2


def test_dlg_pairs_every_recorded_loss_with_the_point_it_was_computed_at(cifar_test, smoke, monkeypatch):
    """L-BFGS returns the loss from *before* its step; the tracker must get the loss of the image it stores
    (checked with iDLG, whose labels are fixed, so the loss can be recomputed from the image alone)."""
    model, x, y, update = _observe("lenet", cifar_test)
    seen = []
    original = core.Tracker.update

    def spy(self, step, loss, xs, extra=None):
        seen.append((loss, xs.detach().clone()))
        return original(self, step, loss, xs, extra)

    monkeypatch.setattr(core.Tracker, "update", spy)
    pipeline.run_attack("idlg", model, update, smoke.override(dlg=replace(smoke.dlg, iterations=5)), batch_size=1,
                        labels=y)
    target = core.GradientTarget(model, update.tensors)
    assert len(seen) == 5
    for loss, xs in seen:
        recomputed = float(target.l2(core.model_gradients(model, xs, y, create_graph=False)))
        assert abs(recomputed - loss) <= 1e-4 * loss + 1e-9


def test_an_lbfgs_step_evaluates_about_max_evaluations_gradients_at_most(cifar_test, smoke, monkeypatch):
    """Notebook 01 prints the budget as 'up to inner_steps iterations, about max_evaluations gradient evaluations'
    per L-BFGS step: the line search evaluates more often than it iterates, and stops once a step has made
    max_evaluations (its last call may add one; older torch releases did not cap the line search)."""
    assert replace(smoke.dlg, inner_steps=20).max_evaluations == 25     # torch's default max_eval, 1.25 x
    model, x, y, update = _observe("lenet", cifar_test)
    config = replace(smoke.dlg, iterations=4, inner_steps=8, restarts=1, good_enough=0.0)
    per_step, original = [], core.Tracker.update

    def spy(self, step, loss, xs, extra=None):
        per_step.append(self.iterations - sum(per_step))
        return original(self, step, loss, xs, extra)

    monkeypatch.setattr(core.Tracker, "update", spy)
    rec = pipeline.run_attack("idlg", model, update, smoke.override(dlg=config), batch_size=1, labels=y)
    assert len(per_step) == 4 and rec.iterations == sum(per_step)
    assert max(per_step) <= config.max_evaluations + 1 == 11
    assert max(per_step) > 1                                            # the steps did iterate


def test_dlg_optimises_labels_jointly(cifar_test, smoke):
    model, x, y, update = _observe("lenet", cifar_test)
    rec = pipeline.run_attack("dlg", model, update, smoke, batch_size=1)
    assert rec.labels.shape == (1,) and rec.threat_model.labels == "joint"
    assert rec.images.shape == x.shape


@pytest.mark.parametrize("batch_size", [1, 2])
def test_inverting_gradients_shapes_and_restart_choice(cifar_test, smoke, batch_size):
    model, x, y, update = _observe("convnet", cifar_test, batch_size=batch_size)
    config = replace(smoke.ig, iterations=12, restarts=3)
    rec = pipeline.run_attack("ig", model, update, smoke.override(ig=config), batch_size=batch_size)
    assert rec.images.shape == x.shape and 0 <= rec.images.min() and rec.images.max() <= 1
    assert rec.iterations == 36 and len(rec.history.restart_losses) == 3
    assert rec.gradient_loss == min(rec.history.restart_losses)
    assert rec.history.restart_losses[rec.history.best_restart] == rec.gradient_loss
    assert rec.history.loss[0] > min(rec.history.loss)  # it made progress on the cosine distance


def test_same_seed_same_result(cifar_test, smoke):
    model, x, y, update = _observe("convnet", cifar_test)
    a = pipeline.run_attack("ig", model, update, smoke, batch_size=1, seed=5)
    b = pipeline.run_attack("ig", model, update, smoke, batch_size=1, seed=5)
    assert torch.equal(a.images, b.images)


def test_update_from_another_model_is_rejected(cifar_test, smoke):
    _, x, y, update = _observe("lenet", cifar_test)
    other = models.build_model("convnet").eval()
    with pytest.raises(GifdError, match="different model"):
        inverting_gradients(other, update.tensors, y, update.threat_model, smoke.ig)


def test_nan_runs_are_restarted_and_interrupt_keeps_best():
    to_image = lambda x: x.clamp(0, 1)  # noqa: E731
    calls = []

    def run_one(trial, tracker):
        calls.append(trial)
        x = torch.full((1, 3, 2, 2), 0.5)
        if trial == 0:
            tracker.update(0, float("nan"), x)           # diverged: must be retried
            return
        tracker.update(0, 1.0 / (trial + 1), x * trial)
        if trial == 2:
            raise KeyboardInterrupt                        # Ctrl-C during the second real restart

    best, history, iterations, _ = core.run_restarts(run_one, 3, lambda: core.Tracker(set(), to_image))
    assert calls == [0, 1, 2] and history.diverged_restarts == 1 and history.interrupted
    assert best.best_loss == pytest.approx(1 / 3)


def test_all_runs_diverging_is_a_clean_error():
    def run_one(trial, tracker):
        tracker.update(0, float("nan"), torch.zeros(1))

    with pytest.raises(GifdError, match="diverged"):
        core.run_restarts(run_one, 2, lambda: core.Tracker(set(), lambda x: x))


def test_total_variation_of_constant_image_is_zero():
    assert float(core.total_variation(torch.ones(1, 3, 8, 8))) == 0.0
    stripes = torch.zeros(1, 1, 4, 4)
    stripes[..., ::2] = 1.0
    assert float(core.total_variation(stripes)) == pytest.approx(1.0)
