"""How fast one gradient-matching step is, and what every attack costs per iteration, measured in one run.

The reference is the **eager plain loop**: a dummy image, the FL model's gradient with ``create_graph=True``, the
cosine distance to the observed update and ``loss.backward()`` (which also fills gradients into θ nobody needs),
then one Adam step. Beside it: the same with ``torch.autograd.grad`` on the image only, the matching oracle
(:mod:`gifd_lite.attacks.oracle`) eager and compiled, and every attack's **marginal** seconds per iteration
(two runs of different length, the difference divided by the extra iterations, so set-up and the compile
cancel). FLOPs per step come from ``torch.utils.flop_counter`` and are set against a same-run SGEMM. Compile
seconds, cold (an empty inductor cache) and warm (the cache a first process left), are measured in fresh
processes (``compile_probe``).

    python -m gifd_lite bench [--model resnet18] [--iterations 40] [--compile-probe]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

import torch

from .config import get_preset
from .data import normalize
from .fl import ThreatModel, fedsgd_gradients
from .models import build_model

__all__ = ["plain_matching_seconds", "oracle_seconds", "sgemm_gflops", "step_flops", "attack_marginal_seconds",
           "kernel_counters", "batched_restart_gradients", "compile_probe", "compile_seconds", "bench", "report"]


def kernel_counters() -> tuple[int, float] | None:
    """(minor page faults, seconds in the kernel) of this process so far, all threads; None where ``resource`` is
    missing (Windows). Each fault is a page the kernel had to map and zero: glibc gives a large freed buffer back to
    the kernel and asks again at the next allocation (its mmap threshold), which eager PyTorch does many times per
    step; the kernel seconds are what mapping and zeroing them (and anything else in the kernel) cost."""
    try:
        import resource
    except ImportError:
        return None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_minflt, usage.ru_stime


def _delta(before, after) -> tuple | None:
    """``after - before`` entry by entry (counters, or two counter differences); None if either is missing."""
    return None if before is None or after is None else tuple(b - a for a, b in zip(before, after))


def _per_iteration(used, iterations: int) -> dict | None:
    return None if used is None else {"faults": used[0] / iterations, "kernel_seconds": used[1] / iterations}


def _timed_loop(step, x: torch.Tensor, iterations: int, warmup: int = 2, blocks: int = 3,
                faults: list | None = None) -> float:
    """Seconds per call of ``step(x)`` (which sets ``x.grad``) followed by an Adam step, after ``warmup`` calls:
    the fastest of ``blocks`` blocks of ``iterations`` calls (as ``timeit`` does: on a shared machine the
    slower blocks measure the neighbours, and the first one the allocator's warm-up). ``faults``, if given,
    receives the page faults and kernel seconds per call over all the blocks (:func:`kernel_counters`)."""
    opt = torch.optim.Adam([x], lr=0.01)
    for _ in range(warmup):
        step(x)
        opt.step()
    best = float("inf")
    before = kernel_counters()
    for _ in range(blocks):
        _sync(x.device)
        t0 = time.perf_counter()
        for _ in range(iterations):
            step(x)
            opt.step()
        _sync(x.device)
        best = min(best, (time.perf_counter() - t0) / iterations)
    if faults is not None:
        faults.append(_per_iteration(_delta(before, kernel_counters()), blocks * iterations))
    return best


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def plain_matching_seconds(model, target, labels, shape, iterations: int, seed: int = 0,
                           into_weights: bool = True, concatenated: bool = False, faults: list | None = None) -> float:
    """Seconds per step of the bare cosine gradient-matching loop on pixels, eager. ``into_weights``:
    ``loss.backward()`` (gradients into θ too: the reference); else ``torch.autograd.grad`` on the image only.
    ``concatenated``: the cosine over one concatenated vector of the whole update, as every attack computed it
    before issue 16 (today: summed tensor by tensor, ``GradientTarget.cosine``)."""
    from .attacks.core import model_gradients

    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed)).to(labels.device).requires_grad_(True)

    def cosine(grads):
        if concatenated:
            flat = torch.cat([g.flatten() for g in grads])
            return 1 - (flat @ target.flat) / (flat.norm() * target.norm + 1e-12)
        return target.cosine(grads)

    def step(x):
        loss = cosine(model_gradients(model, normalize(x), labels, create_graph=True, params=target.params))
        if into_weights:
            x.grad = None
            loss.backward()
        else:
            (x.grad,) = torch.autograd.grad(loss, [x])

    seconds = _timed_loop(step, x, iterations, faults=faults)
    model.zero_grad(set_to_none=True)
    return seconds


def oracle_seconds(oracle, shape, iterations: int, device, seed: int = 0,
                   faults: list | None = None) -> tuple[float, float]:
    """(seconds of the first call, seconds per later call) of a matching oracle in the plain loop."""
    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed)).to(device).requires_grad_(True)
    t0 = time.perf_counter()
    x.grad = oracle(x)[0]
    _sync(device)
    first = time.perf_counter() - t0

    def step(x):
        x.grad = oracle(x)[0]

    return first, _timed_loop(step, x, iterations, warmup=1, faults=faults)


def sgemm_gflops(n: int = 1024, repeats: int = 10, device="cpu") -> float:
    """GFLOPS of an n×n float32 matrix product on this machine, now (the achievable ceiling for dense work)."""
    a, b = torch.rand(n, n, device=device), torch.rand(n, n, device=device)
    a @ b
    _sync(torch.device(device))
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(torch.device(device))
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def step_flops(oracle, shape, device) -> int:
    """FLOPs of one oracle call (forward, the model's gradient, the double backward), by ``FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(shape, device=device)
    with FlopCounterMode(display=False) as counter:
        oracle(x)
    return counter.get_total_flops()


def attack_marginal_seconds(method: str, model, update, labels, preset, generator, short: int, long: int,
                            seed: int = 0, faults: list | None = None) -> float:
    """Seconds per extra iteration between runs of ``short`` and of ``long`` iterations (the fastest of two runs
    of each), after a warm-up run (same process: the oracle compiled once is reused by the later runs);
    ``faults``, if given, receives the page faults and kernel seconds per extra iteration between the same two runs
    (a difference of two runs, so noisy, and negative where the shorter run faulted more)."""
    from .fl import ClientUpdate
    from .pipeline import run_attack

    def sized(n: int):
        stages = len(preset.gifd.stages)
        return preset.override(
            ig=replace(preset.ig, iterations=n, restarts=1, snapshots=0),
            gifd=replace(preset.gifd, iterations=(max(1, n // stages),) * stages, restarts=1, select="loss",
                         snapshots=0),
            ggl=replace(preset.ggl, evaluations=50 * max(1, n // 10), snapshots=0),     # whole generations of 50
            gias=replace(preset.gias, latent_iterations=n // 2, generator_iterations=n // 2, restarts=1, snapshots=0))

    runs = []
    for n in (short, short, long, short, long):   # the first run only warms up (compiles the oracle, fills caches)
        tm = ThreatModel(model="bench", batch_size=len(labels))
        before = kernel_counters()
        rec = run_attack(method, model, ClientUpdate([g.clone() for g in update], tm), sized(n), len(labels),
                         seed=seed, labels=labels, generator=generator)
        runs.append((rec.iterations, rec.seconds, _delta(before, kernel_counters())))
    shorts, longs = runs[1::2], runs[2::2]                  # the fastest of two runs of each length
    (n1, t1, used1), (n2, t2, used2) = min(shorts, key=lambda r: r[1]), min(longs, key=lambda r: r[1])
    if faults is not None:
        faults.append(_per_iteration(_delta(used1, used2), max(1, n2 - n1)))
    return (t2 - t1) / max(1, n2 - n1)


def batched_restart_gradients(model, target, labels):
    """x (R, B, C, H, W) ↦ ∂/∂x_r [1 - cos(∇_θ CE(f_θ(x_r), y), g)] for every restart r in one batched pass.

    ``torch.func``: ``grad`` gives restart r's model gradient, ``vmap`` maps that over r, and the outer ``grad``
    differentiates the cosine distance back to x_r. Equal to R separate plain steps (tested); on a CPU it does
    not pay (docs/results/bench_resnet18.md), so attacks run restarts in sequence.
    """
    import torch.nn.functional as F
    from torch.func import functional_call, grad, vmap

    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    fixed = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    fixed.update(dict(model.named_buffers()))

    def restart_loss(x_r):
        def ce(p):
            return F.cross_entropy(functional_call(model, ({**p, **fixed},), (normalize(x_r),)), labels)
        g = grad(ce)(params)
        return target.cosine([g[n] for n in names])

    return vmap(grad(restart_loss))


def _bench_case(model_name: str, batch_size: int, device, seed: int = 0):
    from .attacks.core import GradientTarget

    torch.manual_seed(seed)
    model = build_model(model_name, seed=seed).to(device).eval()
    x = torch.rand(batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(seed + 1)).to(device)
    y = torch.arange(batch_size, device=device) % 10
    grads = fedsgd_gradients(model, normalize(x), y)
    return model, grads, y, GradientTarget(model, grads), tuple(x.shape)


def compile_seconds(model_name: str = "resnet18", batch_size: int = 1, device="cpu") -> dict:
    """In this process: seconds of the compiled oracle's first call, and of one eager call for comparison."""
    from .attacks.oracle import MatchingOracle

    model, _, y, target, shape = _bench_case(model_name, batch_size, torch.device(device))
    eager_first, eager = oracle_seconds(MatchingOracle(model, target, y, compile="off"), shape, 3, device)
    first, compiled = oracle_seconds(MatchingOracle(model, target, y, compile="on"), shape, 3, device)
    return {"first_call": first, "compile": first - eager, "eager": eager, "compiled": compiled}


def compile_probe(model_name: str = "resnet18", batch_size: int = 1, device="cpu") -> dict:
    """Compile seconds in fresh processes: cold (an empty inductor cache), then warm (the same cache again)."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="gifd_inductor_") as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        code = ("import json, torch; from gifd_lite.bench import compile_seconds; from gifd_lite.runtime import "
                f"set_threads; set_threads(); print(json.dumps(compile_seconds({model_name!r}, {batch_size}, {str(device)!r})))")
        for name in ("cold", "warm"):
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"compile probe failed: {done.stderr.strip().splitlines()[-1]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            out[name] = {**result, "process_seconds": time.perf_counter() - t0}
    return out


def bench(model_name: str = "resnet18", iterations: int = 30, batch_size: int = 1, prior: str = "cifar10",
          device: torch.device | str = "cpu", methods=("ig", "gifd", "gias", "ggl"), seed: int = 0,
          compile: bool = True, probe: bool = False, rounds: int = 1) -> dict:
    """Seconds per iteration of the plain loops, the oracle and each attack, FLOPs and GFLOPS (one process).

    With ``rounds`` > 1 the reference loop, the compiled oracle and every attack are timed again in each round,
    one after another, and each keeps its fastest round (``<key>_rounds`` lists them all): on a machine whose
    speed drifts by ±10% over minutes, a reference timed once at the start and attacks timed minutes later
    give ratios that move by as much; per-round ratios (``<key>_round_ratios``) show the spread."""
    from .attacks.oracle import MatchingOracle, compile_available

    device = torch.device(device)
    model, grads, y, target, shape = _bench_case(model_name, batch_size, device, seed)
    rows = {"model": model_name, "batch_size": batch_size, "iterations": iterations,
            "threads": torch.get_num_threads(), "device": str(device), "rounds": rounds,
            "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}}
    rows["sgemm_gflops"] = sgemm_gflops(device=device)
    eager_oracle = MatchingOracle(model, target, y, compile="off")
    rows["flops_per_step"] = step_flops(eager_oracle, shape, device)
    compile = compile and compile_available(device)
    compiled = MatchingOracle(model, target, y, compile="on") if compile else None
    preset = get_preset("laptop").with_compile("on" if compile else "off")
    G = None
    if set(methods) & {"ggl", "gias", "gifd"}:
        from .gan import load_generator

        G = load_generator(prior, device=device)
    samples: dict[str, list[float]] = {}
    faults: dict[str, list] = {}            # page faults and kernel seconds per iteration, per row and round

    def f(key: str) -> list:
        return faults.setdefault(key, [])

    for r in range(rounds):
        timed = {"plain": plain_matching_seconds(model, target, y, shape, iterations, seed, faults=f("plain"))}
        if r == 0:                                  # context rows, timed once
            timed["plain_concatenated"] = plain_matching_seconds(model, target, y, shape, iterations, seed,
                                                                 concatenated=True, faults=f("plain_concatenated"))
            timed["plain_grad_input_only"] = plain_matching_seconds(model, target, y, shape, iterations, seed,
                                                                    into_weights=False, faults=f("plain_grad_input_only"))
            timed["oracle_eager"] = oracle_seconds(eager_oracle, shape, iterations, device, seed, faults=f("oracle_eager"))[1]
        if compiled is not None:
            first, timed["oracle_compiled"] = oracle_seconds(compiled, shape, iterations, device, seed,
                                                             faults=f("oracle_compiled"))
            if r == 0:
                rows["oracle_compiled_first_call"] = first
        for method in methods:
            timed[method] = attack_marginal_seconds(method, model, grads, y, preset, G, iterations, 3 * iterations,
                                                    seed, faults=f(method))
        for key, value in timed.items():
            samples.setdefault(key, []).append(value)
    plain = rows["plain"] = min(samples["plain"])
    for key, values in samples.items():
        rows[key] = min(values)
        rows[f"{key}_ratio"] = rows[key] / plain
        if key in ("plain", "plain_concatenated", "plain_grad_input_only", "oracle_eager", "oracle_compiled"):
            rows[f"{key}_gflops"] = rows["flops_per_step"] / rows[key] / 1e9
        counted = faults[key][values.index(rows[key])]                    # in the fastest round
        if counted is not None:
            rows[f"{key}_faults"], rows[f"{key}_kernel_seconds"] = counted["faults"], counted["kernel_seconds"]
        if rounds > 1 and len(values) == rounds:
            rows[f"{key}_rounds"] = values
            if counted is not None:
                rows[f"{key}_faults_rounds"] = [c["faults"] for c in faults[key]]
                rows[f"{key}_kernel_seconds_rounds"] = [c["kernel_seconds"] for c in faults[key]]
            rows[f"{key}_round_ratios"] = [v / p for v, p in zip(values, samples["plain"])]
    if probe:
        print(json.dumps(rows), file=sys.stderr, flush=True)     # the rows so far, should the probe fail
        rows["compile_probe"] = compile_probe(model_name, batch_size, device)
    return rows


def report(rows: dict, command: str) -> str:
    """``docs/results/bench_<model>.md`` from one :func:`bench` run."""
    plain, rounds = rows["plain"], rows.get("rounds", 1)

    def spread(key: str) -> str:            # the ratio in each round, against that round's reference
        ratios = rows.get(f"{key}_round_ratios")
        return (" " + ", ".join(f"{r:.2f}" for r in ratios) + " |") if ratios else (" |" if rounds > 1 else "")

    lines = [f"# Seconds per iteration, {rows['model']}, batch {rows['batch_size']}, {rows['threads']} threads, "
             f"{rows['device']}", "", f"Command: `{command}`.", "",
             "| loop | s / iteration | × eager plain loop | GFLOPS | page faults / iteration | kernel s / iteration |"
             + (" × per round |" if rounds > 1 else ""),
             "|---|---|---|---|---|---|" + ("---|" if rounds > 1 else "")]

    def faults(key: str) -> str:           # round(): no "-0" for a small negative difference
        if f"{key}_faults" not in rows:
            return " | |"
        return f" {round(rows[f'{key}_faults'])} | {rows[f'{key}_kernel_seconds']:.4f} |"

    names = {"plain": "eager plain loop: model gradient, cosine, `loss.backward()` (gradients into θ too): the reference",
             "plain_concatenated": "the same, the cosine over the update concatenated into one vector (as before issue 16)",
             "plain_grad_input_only": "eager, `torch.autograd.grad` on the image only",
             "oracle_eager": "matching oracle (`torch.func`), eager",
             "oracle_compiled": "matching oracle, compiled (`torch.compile`, inductor)"}
    for key, name in names.items():
        if key in rows:
            lines.append(f"| {name} | {rows[key]:.4f} | {rows[key] / plain:.2f} | {rows[f'{key}_gflops']:.1f} |"
                         + faults(key) + spread(key))
    attack_names = {"ig": "IG", "gifd": "GIFD (generator forward + backward included)",
                    "gias": "GIAS (latent, then generator fine-tuning)", "ggl": "GGL (CMA-ES, population in one vmap pass)"}
    for key, name in attack_names.items():
        if key in rows:
            lines.append(f"| {name}, marginal | {rows[key]:.4f} | {rows[key] / plain:.2f} | |" + faults(key) + spread(key))
    lines += ["", f"One matching step is {rows['flops_per_step'] / 1e9:.2f} GFLOP (`torch.utils.flop_counter`, an "
              "eager call; every GFLOPS figure divides by it, though the compiled graph leaves out the weight "
              "gradients eager double backward computes unasked, and does fewer: `tools/profile_oracle.py "
              f"--graph-flops`, profile_oracle.md); a 1024² SGEMM ran at {rows['sgemm_gflops']:.1f} GFLOPS in the "
              "same run. Attacks are timed by their "
              "marginal cost: two runs of different length, the difference over the extra iterations, so set-up "
              "and compile cancel; they use the compiled oracle when the oracle row above is compiled." + (
              f" Timed in {rounds} rounds: the reference, the compiled oracle and every attack once per round, one "
              "after another; each row is its fastest round against the reference's fastest, and the last column "
              "each round's ratio against that round's reference." if rounds > 1 else "") + (
              " Page faults are the process's minor faults per iteration, each a page the kernel mapped and zeroed "
              "because the allocator had given it back, and kernel seconds the process's time in the kernel per "
              "iteration, all threads (both over all three blocks of the row's fastest round; for an attack, the "
              "difference between its two runs over the extra iterations: noisy, and negative where the shorter "
              "run faulted more).")
              + (" glibc's allocator ran with " + ", ".join(f"`{k}={v}`" for k, v in rows["malloc_env"].items()) + "."
                 if rows.get("malloc_env") else "")]
    probe = rows.get("compile_probe")
    if probe:
        lines += ["", "| compile (fresh process) | first compiled call, s | of which compile, s | process, s |",
                  "|---|---|---|---|"]
        for name in ("cold", "warm"):
            p = probe[name]
            lines.append(f"| {name} inductor cache | {p['first_call']:.1f} | {p['compile']:.1f} | {p['process_seconds']:.1f} |")
    lines += ["", quote_block(rows), "", "Raw output:", "", "```", json.dumps(rows), "```", ""]
    return "\n".join(lines)


def quote_block(rows: dict) -> str:
    """The run's ratios and seconds as a fenced ``quote`` block (``gifd_lite.results``), keyed by thread count,
    e.g. ``1 thread gifd ratio: 0.5728``, so the texts quote the bench instead of retyping it."""
    prefix = f"{rows['threads']} thread{'s' if rows['threads'] != 1 else ''}"
    keys = ["plain", "plain_concatenated", "plain_grad_input_only", "oracle_eager", "oracle_compiled", "ig", "gifd", "gias", "ggl"]
    lines = [f"{prefix} {key} seconds: {rows[key]:.6f}\n{prefix} {key} ratio: {rows[key] / rows['plain']:.6f}"
             for key in keys if key in rows]
    if "plain_concatenated" in rows:        # the oracle and the attacks against the reference before issue 16
        lines += [f"{prefix} {key} seconds over concatenated: {rows[key] / rows['plain_concatenated']:.6f}"
                  for key in ("oracle_eager", "oracle_compiled", "ig", "gifd", "gias", "ggl") if key in rows]
    lines += [f"{prefix} {key} faults: {rows[f'{key}_faults']:.1f}\n{prefix} {key} kernel seconds: "
              f"{rows[f'{key}_kernel_seconds']:.6f}" for key in keys if f"{key}_kernel_seconds" in rows]
    lines += [f"{prefix} {key} {name} round {i + 1}: {n:.{digits}f}" for key in keys
              for name, field, digits in (("seconds", "", 6), ("faults", "_faults", 1), ("kernel seconds", "_kernel_seconds", 6))
              for i, n in enumerate(rows.get(f"{key}{field}_rounds", []))]
    for key in keys[1:]:                     # the reference's own ratio is 1 in every round
        if f"{key}_round_ratios" in rows:
            ratios = rows[f"{key}_round_ratios"]
            lines.append(f"{prefix} {key} ratio round min: {min(ratios):.6f}\n{prefix} {key} ratio round max: {max(ratios):.6f}")
    lines.append(f"{prefix} sgemm gflops: {rows['sgemm_gflops']:.2f}")
    if "oracle_compiled_gflops" in rows:
        lines.append(f"{prefix} oracle_compiled gflops: {rows['oracle_compiled_gflops']:.2f}")
    for name, p in rows.get("compile_probe", {}).items():
        lines.append(f"{prefix} compile {name} seconds: {p['compile']:.2f}")
    return "\n".join(["```quote", *lines, "```"])
