"""Training the conditional GAN prior: hinge loss, Adam (β1 = 0, β2 = 0.9), EMA generator (notebook 03).

    L_D = E[max(0, 1 - D(T(x), y))] + E[max(0, 1 + D(T(G(z, y)), y))] + λ CE(C(T(x)), y)
    L_G = -E[D(T(G(z, y)), y)] + λ CE(C(T(G(z, y))), y)

T is the differentiable augmentation of :mod:`.augment` (identity when ``augment`` is off), C the
discriminator's auxiliary classifier, trained on real images only (λ = ``aux_weight``; 0 turns it off), and D
takes ``d_steps`` steps per generator step.

With ``mode_seeking`` = μ > 0 the generator also pays the mode-seeking term of MSGAN (Mao et al., 2019), which
pushes two latents of the same class apart in image space: its batch is two halves with the same labels,
z₁ and z₂, and

    L_G += μ / (mean|G(z₁, y) - G(z₂, y)| / mean|z₁ - z₂| + 1e-5),

an auxiliary classifier's pull towards a few easily classified images per class being what costs a
conditional GAN its diversity.

The exponential moving average G_ema ← α G_ema + (1 - α) G (α = 0.999) is what ships: it gives smoother,
better samples than the raw generator. Its batch-norm statistics are then recomputed for its own weights
("standing statistics", as in BigGAN): the running means and variances collected while training belong to
the raw generator, not to the averaged one. Training can run on a subset of the classes (the out-of-distribution
chapter needs a prior that never saw some classes); the subset's labels are renumbered 0..K-1 in the order
given. Every ``checkpoint_every`` steps the full state is saved next to the output, so a stopped run resumes.

What ships is not simply the last step: every ``select_every`` steps the EMA generator is scored by a
*selector* classifier (a network other than the judge that reports fidelity, which training never sees) and
the pixel diversity of its samples, and the best-scoring snapshot is kept (:func:`snapshot_score`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import ImageSet, subset_classes  # noqa: F401  (subset_classes: re-exported for train-gan)
from ..errors import GifdError
from ..runtime import progress
from .augment import diff_augment
from .checkpoint import save_payload
from .discriminator import Discriminator
from .generator import Generator, GeneratorConfig, to_unit

__all__ = ["GANTrainingConfig", "train_gan", "subset_classes", "standing_statistics", "snapshot_score",
           "mode_seeking_term", "generator_labels"]


@dataclass(frozen=True)
class GANTrainingConfig:
    steps: int = 6000
    batch_size: int = 32
    lr_g: float = 1e-4          # two time-scale update rule: D learns 4× faster than G
    lr_d: float = 4e-4
    betas: tuple[float, float] = (0.0, 0.9)
    d_steps: int = 2
    aux_weight: float = 1.0     # λ of the auxiliary classification term (0: projection only, as before issue 17)
    augment: bool = True        # DiffAugment on D's inputs
    mode_seeking: float = 0.0   # μ of the mode-seeking term (MSGAN); 0: off, as before
    conditioning: str = "strong"
    ema_decay: float = 0.999
    ema_start: int = 1000
    width: int = 32
    z_dim: int = 128
    seed: int = 0
    sample_every: int = 1000
    checkpoint_every: int = 500
    select_every: int = 1000    # score the EMA generator this often (when a selector is given)


@torch.no_grad()
def standing_statistics(G: Generator, batches: int = 200, batch_size: int = 64, seed: int = 123) -> Generator:
    """Recompute every batch norm's running mean and variance as the average over ``batches`` random batches
    of G's own samples (z ~ N(0, I), uniform classes); G is returned in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    device = next(G.parameters()).device
    norms = [m for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None            # cumulative average over all batches
    G.train()
    for _ in range(batches):
        z = torch.randn((batch_size, G.config.z_dim), generator=gen).to(device)
        y = torch.randint(0, G.config.num_classes, (batch_size,), generator=gen).to(device)
        G(z, y)
    for m in norms:
        m.momentum = 0.1
    return G.eval()


@torch.no_grad()
def snapshot_score(G: Generator, selector: torch.nn.Module, real: ImageSet, per_class: int = 50,
                   seed: int = 0) -> dict:
    """How good a snapshot is, without the judge: the selector's class fidelity of G's samples, and their
    within-class mean pairwise pixel distance over the same number for real images of the class.

    ``score`` = fidelity × min(1, diversity_ratio / 0.9): fidelity counts in full while the samples keep 90%
    of the real images' diversity, and is discounted in proportion below that.
    """
    from ..data import normalize

    device = next(selector.parameters()).device
    fidelity, ratios = [], []
    for k in range(G.config.num_classes):
        z = torch.randn((per_class, G.config.z_dim), generator=torch.Generator().manual_seed(seed + k))
        images = to_unit(G(z.to(device), torch.full((per_class,), k, device=device))).clamp(0, 1)
        target = selector.classes.index(real.classes[k]) if hasattr(selector, "classes") else k
        fidelity.append(float((selector(normalize(images)).argmax(1) == target).float().mean()))
        idx = (real.labels == k).nonzero()[0][:per_class]
        ratios.append(_mean_pairwise_l2(images) / _mean_pairwise_l2(real.tensors(idx)[0].to(device)))
    fid, ratio = sum(fidelity) / len(fidelity), sum(ratios) / len(ratios)
    return {"fidelity": fid, "diversity_ratio": ratio, "score": fid * min(1.0, ratio / 0.9)}


def _mean_pairwise_l2(images: torch.Tensor) -> float:
    return float(torch.pdist(images.flatten(1)).mean())


def _real_batch(dataset: ImageSet, gen: torch.Generator, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.randint(0, len(dataset), (batch_size,), generator=gen).numpy()
    x, y = dataset.tensors(idx)
    flip = torch.rand(batch_size, generator=gen) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    return x * 2 - 1, y


def train_gan(dataset: ImageSet, out: str | Path, config: GANTrainingConfig = GANTrainingConfig(),
              device: torch.device | str = "cpu", resume: bool = True, show_progress: bool = True,
              on_sample=None, selector: torch.nn.Module | None = None, state_path: str | Path | None = None,
              keep_state: bool = False) -> dict:
    """Train G and D on ``dataset``; write the EMA generator checkpoint to ``out`` and return it.

    ``on_sample(step, grid_images)`` is called with a (K·8, 3, 32, 32) batch of EMA samples every
    ``sample_every`` steps (the CLI saves them as PNG grids). With a ``selector`` classifier the checkpoint is
    the best-scoring EMA snapshot (:func:`snapshot_score`, every ``select_every`` steps and at the end), and
    ``payload["selection"]`` lists every score; without one it is the last step. The resumable state is kept
    at ``state_path`` (default: ``out`` with the suffix ``.resume.pt``) and deleted when training ends, unless
    ``keep_state``: then it is saved at the last step as a run planned longer would have it there, and a later run
    with more ``steps`` continues this one exactly. A state made with other settings (recipe, seed, size, classes,
    selection) is refused, as is one past ``steps``.
    """
    out = Path(out)
    device = torch.device(device)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    k = len(dataset.classes)
    g_config = GeneratorConfig(num_classes=k, z_dim=config.z_dim, width=config.width,
                               conditioning=config.conditioning)
    # channels-last convolutions: the same maths, ~17% less time per step on this CPU (oneDNN), measured in issue 17
    fast = {"device": device, "memory_format": torch.channels_last}
    G, D = Generator(g_config).to(**fast), Discriminator(k, config.width).to(**fast)
    G_ema = copy.deepcopy(G).eval()
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=config.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=config.betas)
    state_path = Path(state_path) if state_path else out.with_suffix(".resume.pt")
    state_path.parent.mkdir(parents=True, exist_ok=True)
    start_step, elapsed, history, best = 0, 0.0, [], None
    # what makes two runs the same run, whatever their --steps: a state made with anything else is refused
    run = {**_recipe(config), "betas": list(config.betas), "seed": config.seed, "width": config.width,
           "z_dim": config.z_dim, "conditioning": config.conditioning, "classes": list(dataset.classes),
           "selector": selector is not None, "select_every": config.select_every}
    if resume and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=False)  # our own resume file
        if state["step"] > config.steps:
            raise GifdError(f"the training state {state_path} is at step {state['step']}, past --steps "
                            f"{config.steps}: ask for at least that many steps, or start afresh with --no-resume")
        changed = sorted(key for key in run.keys() | state.get("run", run).keys()
                         if state.get("run", run).get(key) != run.get(key))
        if changed:
            raise GifdError(f"the training state {state_path} was made with other settings ({', '.join(changed)}): "
                            "resume with the same ones, or start afresh with --no-resume")
        for module, key in ((G, "G"), (D, "D"), (G_ema, "G_ema"), (opt_g, "opt_g"), (opt_d, "opt_d")):
            module.load_state_dict(state[key])
        gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        start_step, elapsed = state["step"], state["elapsed"]
        history, best = state.get("history", []), state.get("best")
        print(f"resuming from step {start_step}")
    augment = (lambda x: diff_augment(x, gen)) if config.augment else (lambda x: x)  # noqa: E731
    fixed_z = torch.randn((8 * k, config.z_dim), generator=torch.Generator().manual_seed(1)).to(device)
    fixed_y = torch.arange(k).repeat_interleave(8).to(device)
    t0 = time.perf_counter() - elapsed

    def score_snapshot(step: int):
        nonlocal best
        snapshot = standing_statistics(copy.deepcopy(G_ema))
        row = {"step": step, **snapshot_score(snapshot, selector, dataset)}
        history.append(row)
        if best is None or row["score"] > best["row"]["score"]:
            best = {"row": row, "state_dict": {n: v.detach().cpu() for n, v in snapshot.state_dict().items()}}

    def save_state(done: int, now: float | None = None):
        tmp = state_path.with_suffix(".tmp")               # written whole, then renamed: a kill never corrupts it
        torch.save({"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
                    "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "gen": gen.get_state(),
                    "torch_rng": torch.get_rng_state(), "step": done, "history": history, "best": best,
                    "elapsed": (now or time.perf_counter()) - t0, "run": run}, tmp)
        tmp.replace(state_path)

    bar = progress(range(start_step, config.steps), total=config.steps, desc="GAN", enabled=show_progress,
                   initial=start_step)
    for step in bar:
        for _ in range(config.d_steps):
            x, y = _real_batch(dataset, gen, config.batch_size)
            x, y = x.to(**fast), y.to(device)
            z = torch.randn((config.batch_size, config.z_dim), generator=gen).to(device)
            with torch.no_grad():
                fake = G(z, y)
            real_score, real_logits = D.score_and_logits(augment(x), y)
            loss_d = F.relu(1 - real_score).mean() + F.relu(1 + D(augment(fake), y)).mean()
            if config.aux_weight:
                loss_d = loss_d + config.aux_weight * F.cross_entropy(real_logits, y)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        z = torch.randn((config.batch_size, config.z_dim), generator=gen).to(device)
        y = generator_labels(k, config.batch_size, gen, paired=bool(config.mode_seeking)).to(device)
        fake = G(z, y)
        fake_score, fake_logits = D.score_and_logits(augment(fake), y)
        loss_g = -fake_score.mean()
        if config.aux_weight:
            loss_g = loss_g + config.aux_weight * F.cross_entropy(fake_logits, y)
        if config.mode_seeking:
            loss_g = loss_g + config.mode_seeking * mode_seeking_term(fake, z)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            decay = config.ema_decay if step >= config.ema_start else 0.0
            for pe, p in zip(G_ema.parameters(), G.parameters()):
                pe.lerp_(p, 1 - decay)
            for be, b in zip(G_ema.buffers(), G.buffers()):
                be.copy_(b)
        if step % 50 == 0 and hasattr(bar, "set_postfix"):
            bar.set_postfix(d=f"{float(loss_d.detach()):.3f}", g=f"{float(loss_g.detach()):.3f}")
        done = step + 1
        if on_sample is not None and (done % config.sample_every == 0 or done == config.steps):
            with torch.no_grad():
                on_sample(done, to_unit(G_ema(fixed_z, fixed_y)).cpu())
        if selector is not None and done % config.select_every == 0 and done < config.steps:
            score_snapshot(done)
            print(f"step {done}: " + ", ".join(f"{key} {value:.3f}" for key, value in history[-1].items()
                                               if key != "step"), flush=True)
        if done % config.checkpoint_every == 0 and done < config.steps:
            save_state(done)
    loop_end = time.perf_counter()
    # kept for a longer run: saved as that run would be at this step, before the end-of-run work below (its final
    # scoring, which a longer run does only at multiples of select_every, and the standing statistics of G_ema)
    if keep_state and start_step < config.steps:
        if selector is not None and config.steps % config.select_every == 0:
            score_snapshot(config.steps)                 # a longer run scores this step too
        save_state(config.steps, loop_end)
    payload = {"kind": "generator", "config": g_config.as_dict(), "classes": list(dataset.classes),
               "steps": config.steps, "seed": config.seed, "recipe": _recipe(config)}
    if selector is not None:
        if not history or history[-1]["step"] != config.steps:   # a run resumed at its end was scored already
            score_snapshot(config.steps)
        payload["selection"] = {"chosen_step": best["row"]["step"], "history": history}
        state_dict = best["state_dict"]
    else:
        standing_statistics(G_ema)
        state_dict = {n: v.detach().cpu() for n, v in G_ema.state_dict().items()}
    payload["wall_seconds"] = round(time.perf_counter() - t0, 1)
    payload["state_dict"] = state_dict
    save_payload(payload, out)
    if not keep_state:
        state_path.unlink(missing_ok=True)
    return payload


def generator_labels(k: int, batch_size: int, gen: torch.Generator, paired: bool = False) -> torch.Tensor:
    """The classes of a generator step's batch, uniform over ``k``. ``paired`` (the mode-seeking term): the second
    half repeats the first, so example i and i + B//2 share a class; an odd batch's last example has its own."""
    if not paired:
        return torch.randint(0, k, (batch_size,), generator=gen)
    half = torch.randint(0, k, (batch_size // 2,), generator=gen)
    return torch.cat([half, half, torch.randint(0, k, (batch_size % 2,), generator=gen)])


def mode_seeking_term(fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """1 / (mean|x₁ - x₂| / mean|z₁ - z₂| + 1e-5) for a batch whose halves share labels (:func:`generator_labels`;
    MSGAN's ratio, inverted: small when two latents of a class give different images). An odd batch's last
    example is left out."""
    half = len(fake) // 2
    if half == 0:
        raise GifdError("the mode-seeking term needs a batch of at least 2")
    ratio = (fake[:half] - fake[half:2 * half]).abs().mean() / (z[:half] - z[half:2 * half]).abs().mean()
    return 1 / (ratio + 1e-5)


def _recipe(config: GANTrainingConfig) -> dict:
    keys = ("batch_size", "lr_g", "lr_d", "d_steps", "aux_weight", "augment", "ema_decay", "ema_start")
    recipe = {key: getattr(config, key) for key in keys}
    if config.mode_seeking:             # only when used: the shipped priors' recipes stay as they were recorded
        recipe["mode_seeking"] = config.mode_seeking
    return recipe
