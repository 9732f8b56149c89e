"""The federation on Flower's own engine: a ``ClientApp`` per simulated client, a ``ServerApp`` whose strategy is
Flower's FedAvg run by an honest-but-curious server (notebook 10). Importing this module imports ``flwr``.

The server sends every sampled client the round's global weights and the protocol (FedSGD or FedAvg, T, η, B);
each client answers with its update and its number of examples. :class:`CuriousFedAvg` aggregates like FedAvg
(the example-weighted mean update, applied to the global weights) and, being curious, first writes every reply
to disk with the weights it was computed on (:mod:`.records`).
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from torch import nn

from ..data import InputSpec
from ..errors import GifdError
from . import clients
from .clients import FederationConfig
from .records import FORMAT, record_name, write_index, write_record

__all__ = ["Experiment", "CuriousFedAvg", "client_app", "server_app", "simulate"]

ENGINE = "Flower simulation engine (Ray backend)"


@dataclass
class Experiment:
    """One federation of a simulation: its settings, its model (a factory, the name records give it and its input
    spec) and the folder its records go to."""

    config: FederationConfig
    model_fn: Callable[[], nn.Module]
    model_name: str
    spec: InputSpec
    folder: Path


def _spec_dict(spec: InputSpec) -> dict:
    return {"shape": list(spec.shape), "mean": list(spec.mean), "std": list(spec.std)}


class CuriousFedAvg(FedAvg):
    """Flower's FedAvg with an honest-but-curious server: it follows the protocol exactly, and keeps every
    client's update with the round's global weights and what the protocol revealed (:mod:`.records`).

    Clients send their *update* (a FedSGD gradient g or a FedAvg difference θ_0 - θ_T), not their new weights;
    the server applies the example-weighted mean ū as θ ← θ - s ū, with s = η for FedSGD and s = 1 for FedAvg.
    """

    def __init__(self, name: str, experiment: Experiment, num_classes: int, index: dict):
        n = experiment.config.num_clients
        super().__init__(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=n, min_available_nodes=n)
        self.name, self.config, self.folder = name, experiment.config, Path(experiment.folder)
        self.model_name, self.num_classes, self.spec = experiment.model_name, num_classes, experiment.spec
        self.index = index
        self._global: dict[int, OrderedDict] = {}

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self._global[server_round] = OrderedDict((k, v.clone()) for k, v in arrays.to_torch_state_dict().items())
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        valid, errors = self._check_and_log_replies(list(replies), is_train=True)
        if errors:
            reasons = "; ".join(f"node {m.metadata.src_node_id}: {m.error.reason}" for m in errors)
            raise GifdError(f"federation {self.name!r}, round {server_round}: clients failed ({reasons})")
        state = self._global.pop(server_round)
        params = [k for k in valid[0].content["arrays"].keys()]
        total = sum(int(m.content["metrics"]["num-examples"]) for m in valid)
        mean = {k: torch.zeros_like(state[k], dtype=torch.float64) for k in params}
        for msg in sorted(valid, key=lambda m: m.metadata.src_node_id):
            update = msg.content["arrays"].to_torch_state_dict()
            n = int(msg.content["metrics"]["num-examples"])
            entry = write_record(self.folder, {
                "format": FORMAT, "round": server_round, "node_id": int(msg.metadata.src_node_id),
                "model": self.model_name, "num_classes": self.num_classes, "input": _spec_dict(self.spec),
                "protocol": self.config.protocol(), "num_examples": n, "global_state": state,
                "update": OrderedDict((k, update[k].clone()) for k in params)})
            self.index["records"].append(entry)
            for k in params:
                mean[k] += (n / total) * update[k].double()
        step = self.config.lr if self.config.update == "fedsgd" else 1.0
        new_state = OrderedDict((k, (v - step * mean[k]).to(v.dtype) if k in mean else v) for k, v in state.items())
        self.index["rounds_done"] = server_round
        write_index(self.folder, self.index)
        return ArrayRecord(new_state), MetricRecord({"num-examples": total})


def client_app(experiments: dict[str, Experiment], keep_client_log: bool) -> ClientApp:
    """The clients: each holds its shard of the experiment's split and answers a train message with its update."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        torch.set_num_threads(1)
        name = str(msg.content["config"]["experiment"])
        exp = experiments[name]
        config = exp.config
        protocol = {k: msg.content["config"][k] for k in ("update", "local_steps", "lr", "batch_size", "bn_mode")}
        partition = int(context.node_config["partition-id"])
        server_round = int(msg.content["config"]["server-round"])
        ds = clients.dataset(config.split)
        shard = clients.partition_shards(ds.labels, config.num_clients, config.partition, config.classes_per_client,
                                         config.seed)[partition]
        model = exp.model_fn()
        model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        work = clients.client_round(model, ds, shard, protocol, exp.spec, exp.model_name, server_round, partition,
                                    config.seed)
        if keep_client_log:                      # the client's secret, kept by the simulation for scoring only
            log_dir = exp.folder / "client_side"
            log_dir.mkdir(parents=True, exist_ok=True)
            torch.save({"format": FORMAT, "round": server_round, "node_id": int(context.node_id),
                        "partition": partition, "split": config.split, **work},
                       log_dir / record_name(server_round, int(context.node_id)))
        content = RecordDict({"arrays": ArrayRecord(work["update"]),
                              "metrics": MetricRecord({"num-examples": len(work["labels"])})})
        return Message(content, reply_to=msg)

    return app


def server_app(experiments: dict[str, Experiment], num_classes: int, timings: dict) -> ServerApp:
    """The server: runs each experiment's rounds in turn with a :class:`CuriousFedAvg` (one engine start)."""
    import flwr

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        for name, exp in experiments.items():
            start = time.perf_counter()
            exp.folder.mkdir(parents=True, exist_ok=True)
            config = exp.config
            index = {"format": FORMAT, "experiment": name, "engine": ENGINE, "flwr": flwr.__version__,
                     "model": exp.model_name, "num_classes": num_classes, "input": _spec_dict(exp.spec),
                     "protocol": config.protocol(), "rounds": config.rounds, "num_clients": config.num_clients,
                     "simulation": config.clients_side(), "rounds_done": 0, "records": []}
            strategy = CuriousFedAvg(name, exp, num_classes, index)
            protocol = ConfigRecord({"experiment": name, **config.protocol()})
            strategy.start(grid=grid, initial_arrays=ArrayRecord(exp.model_fn().state_dict()),
                           num_rounds=config.rounds, train_config=protocol)
            index["seconds"] = timings[name] = round(time.perf_counter() - start, 2)
            write_index(exp.folder, index)

    return app


RAY_START_ATTEMPTS = 6
"""Ray waits a fixed 30 s for its raylet to register (``ray/_private/node.py``); on a loaded 2-core machine that
start can miss it (in CI, with the second test worker busy, three attempts in a row missed it once). No round has
run then, so starting again loses nothing."""


def _ray_start_timed_out(error: BaseException) -> bool:
    """Whether ``error`` (or an exception it was raised from) is Ray's node-startup timeout."""
    while error is not None:
        if "timed out during startup" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _shutdown_ray() -> None:
    import ray

    ray.shutdown()


def simulate(experiments: dict[str, Experiment], num_classes: int, keep_client_log: bool = True, workers: int = 2,
             verbose: bool = False) -> dict:
    """Run the experiments in one Flower simulation (``flwr.simulation.run_simulation``, Ray backend): every
    client in a Ray actor of one CPU, ``workers`` of them at a time. Returns the seconds spent."""
    from flwr.simulation import run_simulation

    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")          # no usage reports from an offline lab
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")   # silences a FutureWarning on CPU machines
    num_clients = {e.config.num_clients for e in experiments.values()}
    if len(num_clients) != 1:
        raise GifdError("experiments run in one simulation need the same number of clients")
    timings: dict = {}
    logger = logging.getLogger("flwr")
    level = logger.level
    if not verbose:
        logger.setLevel(logging.ERROR)
    num_supernodes = num_clients.pop()
    backend_config = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                      "init_args": {"num_cpus": max(1, workers), "include_dashboard": False, "log_to_driver": verbose,
                                    "logging_level": logging.INFO if verbose else logging.ERROR}}
    start = time.perf_counter()
    try:
        for attempt in range(1, RAY_START_ATTEMPTS + 1):
            try:
                run_simulation(server_app(experiments, num_classes, timings), client_app(experiments, keep_client_log),
                               num_supernodes=num_supernodes, backend_config=backend_config, verbose_logging=verbose)
                break
            except RuntimeError as error:
                if timings or attempt == RAY_START_ATTEMPTS or not _ray_start_timed_out(error):
                    raise
                _shutdown_ray()
                logging.getLogger(__name__).warning(
                    "Ray's node did not start within its fixed 30 s (a busy machine); starting the simulation again "
                    "(attempt %d of %d)", attempt + 1, RAY_START_ATTEMPTS)
    finally:
        logger.setLevel(level)
    missing = [name for name in experiments if name not in timings]
    if missing:
        raise GifdError(f"the Flower simulation ended before federation {missing[0]!r} finished")
    return {"seconds": round(time.perf_counter() - start, 2), "experiments": timings}
