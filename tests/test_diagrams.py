"""The explanatory figures (gifd_lite.diagrams) draw what the code does."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure

from gifd_lite import diagrams
from gifd_lite.fl import ThreatModel


def _texts(fig):
    return "\n".join(t.get_text() for ax in fig.axes for t in ax.texts + [ax.title])


def test_threat_model_names_what_the_attacker_knows_and_not():
    fig = diagrams.threat_model()
    assert isinstance(fig, Figure)
    text = _texts(fig)
    for phrase in ("knows", "does not know", "model θ", "batch size B", "the images x", "FedSGD gradient"):
        assert phrase in text
    plt.close(fig)


def test_threat_model_fills_in_a_fedavg_protocol():
    fig = diagrams.threat_model(ThreatModel(model="resnet18", update="fedavg", fedavg_steps=5, fedavg_lr=0.01,
                                            batch_size=4, labels="given"))
    text = _texts(fig)
    assert "FedAvg delta" in text and "T = 5" in text and "B = 4" in text and "labels y: given" in text
    plt.close(fig)


def test_generator_stages_shows_every_stage_with_its_shape(tiny_prior):
    fig = diagrams.generator_stages(tiny_prior)
    assert isinstance(fig, Figure)
    text = _texts(fig)
    for name, shape in tiny_prior.stages():
        assert name in text
        assert "×".join(map(str, shape)) in text
    assert "3×32×32" in text                      # the image
    assert "||h−h₀||₁ ≤ 0.3·||h₀||₁" in text        # GIFDConfig's default radius
    plt.close(fig)


def test_generator_stages_of_the_shipped_prior():
    from gifd_lite.gan import load_generator

    G = load_generator("cifar10")
    fig = diagrams.generator_stages(G)
    text = _texts(fig)
    for name, shape in G.stages():
        assert f"{name}\n{'×'.join(map(str, shape))}" in text
    plt.close(fig)


@pytest.mark.parametrize("radius,start,step", [(1.0, (0.4, 0.3), (1.3, 0.8)), (0.5, (0.0, 0.0), (2.0, 0.1)),
                                                (2.0, (1.0, -1.0), (0.3, 0.2))])
def test_l1_ball_draws_the_projected_point_on_the_ball(radius, start, step):
    fig = diagrams.l1_ball(radius=radius, start=start, step=step)
    assert isinstance(fig, Figure)
    [pts] = [c for c in fig.axes[0].collections if c.get_gid() == "projected"]
    p = torch.tensor(pts.get_offsets()[0], dtype=torch.float64)
    dist = (p - torch.tensor(start, dtype=torch.float64)).abs().sum().item()
    v = torch.tensor(step, dtype=torch.float64)
    if v.abs().sum() > radius:
        assert dist == pytest.approx(radius, abs=1e-9)
    else:                                            # a step inside the ball is not moved
        assert torch.allclose(p, torch.tensor(start, dtype=torch.float64) + v)
    plt.close(fig)
