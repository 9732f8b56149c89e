import pytest
import torch

from gifd_lite.errors import GifdError
from gifd_lite.gan import Generator, GeneratorConfig, checkpoint, load_generator
from gifd_lite.gan.discriminator import Discriminator


@pytest.fixture(scope="module", params=["strong", "shared"])
def generator(request):
    from gifd_lite.gan.generator import ClassBatchNorm

    torch.manual_seed(0)
    G = Generator(GeneratorConfig(num_classes=10, width=16, conditioning=request.param))
    # give the conditional batch norms non-trivial statistics and class gains, as after training
    G.train()
    with torch.no_grad():
        G(torch.randn(32, 128), torch.randint(0, 10, (32,)))
        for m in G.modules():
            if isinstance(m, torch.nn.Linear) and m.bias is None and m.weight.shape[1] == 128:
                m.weight.normal_(0, 0.1)
            if isinstance(m, ClassBatchNorm):
                m.gain.normal_(1, 0.1)
                m.bias.normal_(0, 0.1)
    return G.eval()


def test_stage_api_splits_the_forward_pass_exactly(generator):
    z, y = torch.randn(6, 128), torch.randint(0, 10, (6,))
    full = generator(z, y)
    assert full.shape == (6, 3, 32, 32) and full.abs().max() <= 1
    names = [name for name, _ in generator.stages()]
    assert names == ["latent", "4x4", "8x8", "16x16", "32x32"]
    for k, (_, shape) in enumerate(generator.stages()):
        h = generator.features(z, y, upto=k)
        assert h.shape[1:] == shape
        assert (generator.forward_from(k, h, y) - full).abs().max() <= 1e-5


def test_soft_class_codes_interpolate_embeddings(generator):
    z = torch.randn(2, 128)
    hard = generator(z, torch.tensor([3, 3]))
    one_hot = torch.nn.functional.one_hot(torch.tensor([3, 3]), 10).float()
    assert torch.allclose(generator(z, one_hot), hard, atol=1e-6)
    mix = 0.5 * one_hot + 0.5 * torch.nn.functional.one_hot(torch.tensor([5, 5]), 10).float()
    assert not torch.allclose(generator(z, mix), hard)
    with pytest.raises(ValueError):
        generator.features(z, torch.tensor([3, 3]), upto=9)


def test_discriminator_scores_each_image():
    D = Discriminator(num_classes=5, width=8).eval()      # eval: spectral norm's power iteration stands still
    x, y = torch.randn(3, 3, 32, 32), torch.tensor([0, 1, 4])
    score, logits = D.score_and_logits(x, y)
    assert D(x, y).shape == (3,) and logits.shape == (3, 5) and torch.equal(D(x, y), score)


def test_strong_conditioning_reaches_every_stage():
    """With per-class norms and the class in the first layer, changing only the class changes the 4x4
    features and every later stage, and the initial gains are exactly 1 (the class starts neutral)."""
    from gifd_lite.gan.generator import ClassBatchNorm

    torch.manual_seed(0)
    G = Generator(GeneratorConfig(num_classes=10, width=8, z_dim=16)).eval()
    norms = [m for m in G.modules() if isinstance(m, ClassBatchNorm)]
    assert len(norms) == 7 and all(torch.equal(m.gain, torch.ones_like(m.gain)) for m in norms)
    z = torch.randn(2, 16)
    for k in range(1, len(G.STAGES)):
        a, b = G.features(z, torch.tensor([0, 0]), upto=k), G.features(z, torch.tensor([1, 1]), upto=k)
        assert (a - b).abs().max() > 1e-4, G.STAGES[k]
    shared = Generator(GeneratorConfig(num_classes=10, width=8, z_dim=16, conditioning="shared")).eval()
    assert torch.equal(shared.features(z, torch.tensor([0, 0]), upto=1), shared.features(z, torch.tensor([1, 1]), upto=1))
    with pytest.raises(ValueError, match="conditioning"):
        GeneratorConfig(conditioning="weak")


def test_diff_augment_is_seeded_differentiable_and_in_place_of_the_input():
    from gifd_lite.gan.augment import diff_augment

    x = (torch.rand(6, 3, 32, 32) * 2 - 1).requires_grad_(True)
    a = diff_augment(x, torch.Generator().manual_seed(4))
    b = diff_augment(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, diff_augment(x, torch.Generator().manual_seed(5)))
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # cutout zeroes a 16x16 square (partly off the image at the borders), never more
    from gifd_lite.gan.augment import _cutout

    zeros = (_cutout(torch.ones(500, 1, 32, 32), torch.Generator().manual_seed(0)) == 0).flatten(1).sum(1)
    assert zeros.max() == 256 and zeros.min() >= 64


def test_checkpoint_round_trip_and_corruption(tmp_path, generator):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    file = data_dir / "g.pt"
    checkpoint.save_payload({"kind": "generator", "config": generator.config.as_dict(),
                             "classes": [str(i) for i in range(10)], "state_dict": generator.state_dict()}, file)
    checkpoint.register("tiny", file, {"kind": "generator", "command": "test"}, data_dir)
    payload = checkpoint.load_payload("tiny", data_dir)
    G = Generator(GeneratorConfig(**payload["config"]))
    G.load_state_dict(payload["state_dict"])
    z, y = torch.randn(2, 128), torch.tensor([1, 2])
    assert torch.equal(G.eval()(z, y), generator(z, y))
    loaded = load_generator(str(file))          # a plain path: no manifest hash to check
    assert loaded.classes[0] == "0"
    file.write_bytes(file.read_bytes()[:-10])    # truncated: hash mismatch
    with pytest.raises(GifdError, match="corrupt"):
        checkpoint.load_payload("tiny", data_dir)
    with pytest.raises(GifdError, match="cannot read"):
        load_generator(str(file))
    with pytest.raises(GifdError, match="no checkpoint"):
        load_generator("no-such-prior")


def _tiny_dataset():
    import numpy as np

    from gifd_lite.data import ImageSet

    rng = np.random.default_rng(0)
    return ImageSet(rng.integers(0, 255, (40, 32, 32, 3), dtype=np.uint8), np.arange(40) % 4,
                    ("airplane", "automobile", "bird", "cat"), "synthetic")


def test_gan_training_resumes_exactly(tmp_path):
    from gifd_lite.gan.train import GANTrainingConfig, train_gan

    config = GANTrainingConfig(steps=4, batch_size=4, width=8, z_dim=16, sample_every=3, checkpoint_every=2,
                               ema_start=0)
    straight = train_gan(_tiny_dataset(), tmp_path / "a.pt", config, show_progress=False)

    def stop_at_three(step, images):
        assert images.shape == (32, 3, 32, 32)
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_gan(_tiny_dataset(), tmp_path / "b.pt", config, show_progress=False, on_sample=stop_at_three)
    assert (tmp_path / "b.resume.pt").exists()
    resumed = train_gan(_tiny_dataset(), tmp_path / "b.pt", config, show_progress=False)
    assert not (tmp_path / "b.resume.pt").exists()
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    G = load_generator(str(tmp_path / "b.pt"))
    assert G.classes == ("airplane", "automobile", "bird", "cat") and G.config.z_dim == 16
    assert G.config.conditioning == "strong" and straight["recipe"]["d_steps"] == 2


def test_mode_seeking_term_is_the_inverse_image_to_latent_distance_ratio():
    from gifd_lite.gan.train import mode_seeking_term

    z = torch.zeros(4, 16)
    z[2:] = 2.0                                     # |z₁ - z₂| = 2 everywhere
    fake = torch.zeros(4, 3, 8, 8, requires_grad=True)
    with torch.no_grad():
        fake[2:] += 0.5                             # |x₁ - x₂| = 0.5: ratio 0.25
    term = mode_seeking_term(fake, z)
    assert torch.isclose(term, torch.tensor(1 / (0.25 + 1e-5)))
    term.backward()                                 # lowering the term pushes the two halves apart
    assert (fake.grad[:2] > 0).all() and (fake.grad[2:] < 0).all()
    with pytest.raises(GifdError, match="at least 2"):
        mode_seeking_term(fake[:1], z[:1])


@pytest.mark.parametrize("batch", [4, 5])
def test_paired_generator_labels_share_a_class_across_the_halves(batch):
    from gifd_lite.gan.train import generator_labels

    y = generator_labels(10, batch, torch.Generator().manual_seed(0), paired=True)
    assert len(y) == batch and torch.equal(y[:batch // 2], y[batch // 2:2 * (batch // 2)])
    assert y.min() >= 0 and y.max() < 10
    unpaired = generator_labels(10, batch, torch.Generator().manual_seed(0))
    assert torch.equal(unpaired, torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(0)))


def test_training_with_mode_seeking_calls_the_term_and_records_it(tmp_path, monkeypatch):
    from dataclasses import replace

    import gifd_lite.gan.train as train

    calls, term = [], train.mode_seeking_term

    def spy(fake, z):
        calls.append(len(fake))
        return term(fake, z)

    monkeypatch.setattr(train, "mode_seeking_term", spy)
    config = train.GANTrainingConfig(steps=2, batch_size=5, width=8, z_dim=16, d_steps=1, ema_start=0)
    plain = train.train_gan(_tiny_dataset(), tmp_path / "p.pt", config, show_progress=False)
    assert calls == [] and "mode_seeking" not in plain["recipe"]
    seeking = train.train_gan(_tiny_dataset(), tmp_path / "m.pt", replace(config, mode_seeking=1.0),
                              show_progress=False)
    assert calls == [5, 5] and seeking["recipe"]["mode_seeking"] == 1.0


def test_training_with_a_selector_ships_the_best_snapshot(tmp_path):
    """The checkpoint is the best-scoring EMA snapshot; scores are recorded and the resume carries them."""
    from gifd_lite.gan.train import GANTrainingConfig, train_gan
    from gifd_lite.models import build_model

    selector = build_model("lenet", num_classes=10, seed=0).eval()
    selector.classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    config = GANTrainingConfig(steps=4, batch_size=4, width=8, z_dim=16, ema_start=0, select_every=2,
                               checkpoint_every=2, sample_every=100)
    payload = train_gan(_tiny_dataset(), tmp_path / "s.pt", config, show_progress=False, selector=selector)
    history = payload["selection"]["history"]
    assert [row["step"] for row in history] == [2, 4]
    best = max(history, key=lambda row: row["score"])
    assert payload["selection"]["chosen_step"] == best["step"]
    for row in history:
        assert 0 <= row["fidelity"] <= 1 and row["diversity_ratio"] > 0
        assert row["score"] == pytest.approx(row["fidelity"] * min(1, row["diversity_ratio"] / 0.9))


def test_a_run_finished_early_from_its_state_ships_its_best_snapshot_scored_once(tmp_path):
    """Planned for 6 steps, stopped after step 4 (scored and saved), finished with steps=4: the history has each
    step once and the checkpoint is the best of them (how the issue-17 `-long` priors were ended)."""
    from gifd_lite.gan.train import GANTrainingConfig, train_gan
    from gifd_lite.models import build_model

    selector = build_model("lenet", num_classes=10, seed=0).eval()
    selector.classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    planned = GANTrainingConfig(steps=6, batch_size=4, width=8, z_dim=16, ema_start=0, select_every=2,
                                checkpoint_every=2, sample_every=5)

    def stop_after_four(step, images):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_gan(_tiny_dataset(), tmp_path / "e.pt", planned, show_progress=False, selector=selector,
                  on_sample=stop_after_four)
    from dataclasses import replace

    payload = train_gan(_tiny_dataset(), tmp_path / "e.pt", replace(planned, steps=4), show_progress=False,
                        selector=selector)
    history = payload["selection"]["history"]
    assert [row["step"] for row in history] == [2, 4]
    assert payload["selection"]["chosen_step"] == max(history, key=lambda row: row["score"])["step"]
    assert not (tmp_path / "e.resume.pt").exists()


def test_checkpoints_from_before_issue_17_load_as_shared_conditioning(tmp_path):
    old = Generator(GeneratorConfig(num_classes=4, width=8, z_dim=16, conditioning="shared"))
    config = {k: v for k, v in old.config.as_dict().items() if k != "conditioning"}
    checkpoint.save_payload({"kind": "generator", "config": config, "classes": list("abcd"),
                             "state_dict": old.state_dict()}, tmp_path / "old.pt")
    assert load_generator(str(tmp_path / "old.pt")).config.conditioning == "shared"


def test_class_subset_is_renumbered():
    from gifd_lite.gan.train import subset_classes

    sub = subset_classes(_tiny_dataset(), ["cat", "airplane"])
    assert sub.classes == ("cat", "airplane") and len(sub) == 20
    assert set(sub.labels.tolist()) == {0, 1}
    with pytest.raises(GifdError, match="unknown class"):
        subset_classes(_tiny_dataset(), ["dragon"])


def test_fit_to_image_keeps_the_best_restart_per_image(generator):
    from gifd_lite.gan.analysis import fit_to_image

    with torch.no_grad():
        y = torch.tensor([2, 7, 4])
        target = (generator(torch.randn(3, 128, generator=torch.Generator().manual_seed(5)), y) + 1) / 2
    one = fit_to_image(generator, target, y, stages=(0, 1), steps=40, restarts=1, seed=3)
    two = fit_to_image(generator, target, y, stages=(0, 1), steps=40, restarts=2, seed=3)
    for fit in (one, two):
        assert len(fit["latent"]["psnr_per_image"]) == 3
        assert fit["latent"]["psnr"] == pytest.approx(sum(fit["latent"]["psnr_per_image"]) / 3)
        assert fit["latent"]["code"].shape == (3, 10)
    # the first restart is the same draw in both; a second one can only improve each image
    assert all(b >= a - 1e-4 for a, b in zip(one["latent"]["psnr_per_image"], two["latent"]["psnr_per_image"]))
    assert two["4x4"]["image"].shape == target.shape


def test_fit_to_image_can_learn_the_class_mixture(generator):
    from gifd_lite.gan.analysis import fit_to_image

    with torch.no_grad():
        z = torch.randn(2, 128, generator=torch.Generator().manual_seed(1))
        target = (generator(z, torch.tensor([3, 3])) + 1) / 2
    uniform = torch.full((2, 10), 0.1)
    fixed = fit_to_image(generator, target, uniform, stages=(0,), steps=60, restarts=1, seed=0)
    learned = fit_to_image(generator, target, uniform, stages=(0,), steps=60, restarts=1, seed=0, learn_code=True)
    assert torch.equal(fixed["latent"]["code"], uniform)
    code = learned["latent"]["code"]
    assert torch.allclose(code.sum(1), torch.ones(2)) and not torch.allclose(code, uniform)
    assert learned["latent"]["psnr"] > fixed["latent"]["psnr"]


def test_a_kept_state_continues_a_finished_run_as_if_planned_longer(tmp_path):
    """keep_state: runs of 3 steps (its end scored by the selector, which a 4-step run never does at step 3) and of
    2 steps (scored at its end as a 4-step run scores step 2) keep their states; 4-step runs from them end in the
    same training state (G, D, EMA, optimisers) and ship the same snapshot and selection history as a straight
    4-step run. A kept state is refused when asked for fewer steps or with other settings, with a clear message."""
    from dataclasses import replace

    from gifd_lite.gan.train import GANTrainingConfig, train_gan
    from gifd_lite.models import build_model

    selector = build_model("lenet", num_classes=10, seed=0).eval()
    selector.classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    config = GANTrainingConfig(steps=4, batch_size=4, width=8, z_dim=16, sample_every=100, checkpoint_every=100,
                               select_every=2, ema_start=0)

    def run(name, steps):
        return train_gan(_tiny_dataset(), tmp_path / f"{name}.pt", replace(config, steps=steps),
                         show_progress=False, selector=selector, keep_state=True)

    def state(name):
        return torch.load(tmp_path / f"{name}.resume.pt", weights_only=False)

    straight = run("a", 4)
    assert [row["step"] for row in run("k", 3)["selection"]["history"]] == [2, 3]
    assert state("k")["step"] == 3 and [row["step"] for row in state("k")["history"]] == [2]
    run("j", 2)
    assert state("j")["step"] == 2 and [row["step"] for row in state("j")["history"]] == [2]
    for name in ("k", "j"):
        continued = run(name, 4)
        assert continued["selection"] == straight["selection"]
        for key, value in straight["state_dict"].items():
            assert torch.equal(value, continued["state_dict"][key]), key
        for part in ("G", "D", "G_ema"):
            for key, value in state("a")[part].items():
                assert torch.equal(value, state(name)[part][key]), (name, part, key)
        assert state(name)["step"] == 4
    with pytest.raises(GifdError, match="at step 4, past --steps 3"):
        train_gan(_tiny_dataset(), tmp_path / "k.pt", replace(config, steps=3), show_progress=False, selector=selector)
    with pytest.raises(GifdError, match=r"other settings \(lr_g, seed\)"):
        train_gan(_tiny_dataset(), tmp_path / "k.pt", replace(config, steps=6, lr_g=1e-3, seed=1),
                  show_progress=False, selector=selector)
    with pytest.raises(GifdError, match=r"other settings \(selector\)"):
        train_gan(_tiny_dataset(), tmp_path / "k.pt", replace(config, steps=6), show_progress=False)
