"""Attacking a real federation (notebook 10): a Flower federation over CIFAR-10 whose honest-but-curious server
records what its clients send, and the attacks run on those records.

    run_federation(FederationConfig(...), "runs/fed")      clients train, the server keeps every update
    rec = load_update("runs/fed/round_001_node_….pt")      the round's global model + the update + threat model
    attack_update(rec, "gifd", preset, generator=G)        any attack, as on a simulated update

**Flower's engine, and which one.** Flower (``flwr``, ``pip install -e .[federation]``) runs a ``ServerApp`` and
``ClientApp``s either with its simulation engine (one Python call; the clients run in Ray actors) or with its
deployment engine (a SuperLink and one SuperNode per client as processes on localhost, then ``flwr run``).
gifd_lite uses the **simulation engine**. Measured on this project's 2-core machine (both cores busy with other
jobs, the federation at nice 19; a trivial two-client federation, flwr 1.42, ray 2.55): the simulation engine
took 55 s for one round and 60 s for three (about 27 s of it is ``ray.init``, then ~7 s to start the two actors,
each importing torch once and serving every round); the deployment engine took 35 s for one round and 66 s for
three (SuperLink ready after 8–10 s, but every round starts a fresh ``flwr-clientapp`` process per client,
~13 s a round here). The deployment engine is cheaper for a single round, the simulation engine for several;
what decides it is that the simulation needs no ports, no app project to package and no processes to clean up
after a crash (the deployment probe left two orphaned SuperExec processes behind when it was stopped), and it
runs from a notebook cell. Several federations can share one engine start (:func:`run_federations`), since its
start is the fixed cost. Flower marks its Python entry point ``run_simulation`` as deprecated in favour of
``flwr run``; it works in flwr 1.42, the version this was built on.

**The record format** is documented in :mod:`.records`: per client and round one ``torch.save`` file loaded with
``weights_only=True`` (the update, the round's global weights, the protocol, the number of examples, the model's
input spec), and an ``index.json`` per federation.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from ..data import CIFAR10_CLASSES, CIFAR10_INPUT
from ..errors import GifdError
from .clients import FederationConfig, partition_shards
from .records import FORMAT, RecordedUpdate, attack_update, load_update, read_index

__all__ = ["FederationConfig", "run_federation", "run_federations", "partition_shards", "load_update",
           "attack_update", "read_index", "record_paths", "RecordedUpdate", "FORMAT", "require_flower"]

INSTALL_HINT = "pip install -e .[federation]"


def require_flower() -> None:
    """Raise a one-line :class:`GifdError` when Flower is not installed."""
    try:
        import flwr  # noqa: F401
        import ray  # noqa: F401
    except ImportError as exc:
        raise GifdError(f"the federation needs Flower's simulation engine ({exc.name} is missing): "
                        f"{INSTALL_HINT}") from None


def run_federations(experiments: dict[str, FederationConfig], root, model_fn=None, input_spec=None,
                    keep_client_log: bool = True, workers: int = 2, verbose: bool = False) -> dict:
    """Run several federations, one after another, in one Flower simulation (one engine start); the records of
    experiment ``name`` go to ``root/name`` (:mod:`.records`). All need the same number of clients.

    ``model_fn`` builds your own ``nn.Module`` classifier (a factory, or a dict of factories by experiment name),
    and ``input_spec`` (an :class:`~gifd_lite.data.InputSpec`, or a dict by name) says its input shape and
    normalisation; the clients resize CIFAR-10 to it (:func:`gifd_lite.data.fit_to_input`). An experiment
    without a factory builds ``config.model`` from :mod:`gifd_lite.models`, with CIFAR-10's spec unless given.
    ``keep_client_log`` lets the simulated clients keep their own log of each batch (``client_side/``) for
    scoring. Returns the seconds spent and each experiment's folder.
    """
    from ..models import build_model

    require_flower()
    from .flower import Experiment, simulate

    if not experiments:
        raise GifdError("no federation to run")
    root = Path(root)
    setups = {}
    for name, config in experiments.items():
        fn = model_fn.get(name) if isinstance(model_fn, dict) else model_fn
        spec = input_spec.get(name) if isinstance(input_spec, dict) else input_spec
        builtin = fn is None
        if builtin:
            fn = partial(build_model, config.model, num_classes=len(CIFAR10_CLASSES), seed=config.model_seed)
        setups[name] = Experiment(config, fn, config.model if builtin else type(fn()).__name__,
                                  spec or CIFAR10_INPUT, (root / name).resolve())
    timing = simulate(setups, len(CIFAR10_CLASSES), keep_client_log=keep_client_log, workers=workers,
                      verbose=verbose)
    return {**timing, "folders": {name: str(e.folder) for name, e in setups.items()}}


def run_federation(config: FederationConfig, out, **kwargs) -> dict:
    """Run one federation; its records go to ``out`` (see :func:`run_federations` for the options)."""
    out = Path(out)
    result = run_federations({out.name: config}, out.parent, **kwargs)
    return {"seconds": result["seconds"], "folder": result["folders"][out.name]}


def record_paths(folder, server_round: int | None = None) -> list[Path]:
    """The record files a federation folder's index lists (of one round, or all), in round then node order."""
    folder = Path(folder)
    entries = read_index(folder)["records"]
    return [folder / e["file"] for e in sorted(entries, key=lambda e: (e["round"], e["node_id"]))
            if server_round is None or e["round"] == server_round]
