"""The federation's settings and its clients' side, in plain torch (notebook 10): who holds which images, which
batch a client trains on in a round, and the update it sends back. :mod:`.flower` wraps this in Flower's
``ClientApp``; nothing here needs Flower.

Shards (:func:`partition_shards`) split a CIFAR-10 split among the clients, either IID (a random permutation cut
into equal parts) or class-skewed (each client holds ``classes_per_client`` classes, every class shared evenly
among the clients that hold it: the "pathological non-IID" split of McMahan et al.). In round r a client draws
``batch_size`` images of its shard at random (seeded by the federation's seed, r and its partition id), so a
batch can repeat labels, and computes with :func:`gifd_lite.fl.client_update`

- FedSGD: g = ∇_θ (1/B) Σ_i CE(f_θ(x_i), y_i), one gradient, which the server applies as θ ← θ - η ḡ;
- FedAvg: Δ = θ_0 - θ_T after T full-batch SGD steps of size η on the same B images, applied as θ ← θ - Δ̄,

where the bars are averages over the round's clients weighted by their number of examples. Batch-norm
statistics stay on the clients (as in FedBN): the update covers the model's parameters only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from torch import nn

from .. import data, pipeline
from ..data import InputSpec
from ..errors import GifdError
from ..fl import ThreatModel

__all__ = ["FederationConfig", "partition_shards", "client_round", "protocol_threat_model", "dataset",
           "PARTITIONS", "UPDATES"]

PARTITIONS = ("iid", "skewed")
UPDATES = ("fedsgd", "fedavg")


@dataclass(frozen=True)
class FederationConfig:
    """One federation: its clients' data (``num_clients``, ``partition``, ``classes_per_client``, ``split``,
    ``seed``) and its protocol (``update``, ``local_steps``, ``lr``, ``batch_size``, ``bn_mode``, ``rounds``).

    The clients hold the *test* split by default: the shipped GAN prior was trained on the train split, and an
    attacker's prior should know the distribution, not the victims' very images (the other lessons attack test
    images for the same reason). ``model`` names a :mod:`gifd_lite.models` model, built with ``model_seed``;
    :func:`gifd_lite.federation.run_federation` also takes any ``nn.Module`` factory instead.
    """

    model: str = "convnet"
    num_clients: int = 2
    rounds: int = 1
    update: str = "fedsgd"
    local_steps: int = 1
    lr: float = 0.1
    batch_size: int = 1
    bn_mode: str = "eval"
    partition: str = "iid"
    classes_per_client: int = 2
    split: str = "test"
    seed: int = 0
    model_seed: int = 0

    def __post_init__(self):
        if self.update not in UPDATES:
            raise GifdError(f"unknown update {self.update!r}: use fedsgd or fedavg")
        if self.partition not in PARTITIONS:
            raise GifdError(f"unknown partition {self.partition!r}: use iid or skewed")
        if self.bn_mode not in ("eval", "train"):
            raise GifdError(f"unknown bn_mode {self.bn_mode!r}: use eval or train")
        if self.split not in ("train", "test"):
            raise GifdError(f"unknown split {self.split!r}: use train or test")
        if min(self.num_clients, self.rounds, self.local_steps, self.batch_size) < 1:
            raise GifdError("num_clients, rounds, local_steps and batch_size must be at least 1")
        if self.update == "fedsgd" and self.local_steps != 1:
            raise GifdError("a FedSGD client sends one gradient: local_steps must be 1 (use update='fedavg')")
        if self.lr <= 0:
            raise GifdError("the learning rate must be positive")
        if not 1 <= self.classes_per_client <= len(data.CIFAR10_CLASSES):
            raise GifdError(f"classes_per_client must be 1..{len(data.CIFAR10_CLASSES)}")

    def protocol(self) -> dict:
        """What the server sets and therefore knows: sent to every client with the global weights."""
        return {"update": self.update, "local_steps": self.local_steps, "lr": self.lr,
                "batch_size": self.batch_size, "bn_mode": self.bn_mode}

    def clients_side(self) -> dict:
        """The simulation's client-side settings, which the protocol does not reveal."""
        return {k: v for k, v in asdict(self).items()
                if k in ("num_clients", "partition", "classes_per_client", "split", "seed")}


def partition_shards(labels: np.ndarray, num_clients: int, scheme: str = "iid", classes_per_client: int = 2,
                     seed: int = 0) -> list[np.ndarray]:
    """Each client's image indices (sorted). ``iid``: a seeded permutation cut into ``num_clients`` equal parts;
    ``skewed``: client k holds the classes ``order[(k·c + j) mod K]``, j < c (``order`` a seeded permutation of
    the K classes, c = ``classes_per_client``), each class's images split evenly among its holders."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    if scheme == "iid":
        return [np.sort(part) for part in np.array_split(rng.permutation(len(labels)), num_clients)]
    if scheme != "skewed":
        raise GifdError(f"unknown partition {scheme!r}: use iid or skewed")
    classes = np.unique(labels)
    order = rng.permutation(classes)
    held = [[int(order[(k * classes_per_client + j) % len(order)]) for j in range(classes_per_client)]
            for k in range(num_clients)]
    shards: list[list[int]] = [[] for _ in range(num_clients)]
    for c in classes:
        holders = [k for k in range(num_clients) if int(c) in held[k]]
        members = rng.permutation(np.flatnonzero(labels == c))
        for k, part in zip(holders, np.array_split(members, max(1, len(holders)))):
            shards[k] += part.tolist()
    if any(not s for s in shards):
        raise GifdError("a client was left without images: use fewer clients or more classes per client")
    return [np.sort(np.asarray(s, dtype=np.int64)) for s in shards]


def protocol_threat_model(protocol: dict, model_name: str, batch_size: int, spec: InputSpec) -> ThreatModel:
    """The threat model of one client's update under ``protocol``: the client's side of it (FedSGD or FedAvg,
    T, η, B, batch-norm mode); the attack side (labels, unrolling) is filled in by the attacker."""
    fedavg = protocol["update"] == "fedavg"
    return ThreatModel(model=model_name, bn_mode=protocol["bn_mode"], update=protocol["update"],
                       fedavg_steps=int(protocol["local_steps"]) if fedavg else 1,
                       fedavg_lr=float(protocol["lr"]) if fedavg else 0.0, batch_size=batch_size, input=spec)


def client_round(model: nn.Module, dataset: data.ImageSet, shard: np.ndarray, protocol: dict, spec: InputSpec,
                 model_name: str, server_round: int, partition: int, seed: int) -> dict:
    """One client's work in one round: draw its batch, compute its update. Returns the update (parameter name →
    tensor, in ``model.parameters()`` order) with the batch's dataset indices and labels (the client's secret)."""
    batch_seed = [seed, server_round, partition]
    x, y, indices = data.client_batch(dataset, shard, int(protocol["batch_size"]), seed=batch_seed)
    x = data.fit_to_input(x, spec)
    tm = protocol_threat_model(protocol, model_name, len(y), spec)
    update = pipeline.observe(model, x, y, tm, seed=seed).tensors
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    return {"update": {n: t.detach().cpu().contiguous() for n, t in zip(names, update)},
            "indices": list(indices), "labels": [int(v) for v in y]}


_DATASETS: dict[str, data.ImageSet] = {}


def dataset(split: str) -> data.ImageSet:
    """The CIFAR-10 split, loaded once per process (each simulated client process reuses it every round)."""
    if split not in _DATASETS:
        _DATASETS[split] = data.load_cifar10(split)
    return _DATASETS[split]

