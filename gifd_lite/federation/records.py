"""What the curious server keeps, on disk, and how an attacker reads it back (notebook 10).

A federation's folder holds

- ``index.json``: the federation (format, engine, model, input spec, protocol, the simulation's client-side
  settings) and one entry per client-round record (``round``, ``node_id``, ``file``, ``num_examples``,
  ``sha256``, ``update_norm``), rewritten after every round;
- ``round_RRR_node_N.pt``: one client's update in one round, a ``torch.save`` dict of tensors and plain values
  (load it with ``torch.load(path, weights_only=True)``)::

      format        "gifd_lite.federation/1"
      round, node_id
      model         a gifd_lite model name, or the class name of your own nn.Module
      num_classes
      input         {"shape": [C, H, W], "mean": [...], "std": [...]}: the model's preprocessing
      protocol      {"update": "fedsgd"|"fedavg", "local_steps": T, "lr": η, "batch_size": B, "bn_mode": ...}
      num_examples  as the client reported it
      global_state  the round's global model as the server sent it (parameters and buffers)
      update        what the client sent: parameter name → tensor, in model.parameters() order
                    (FedSGD: the gradient g; FedAvg: θ_0 - θ_T)

- ``client_side/round_RRR_node_N.pt`` (when the simulation keeps it): the client's own log — its partition id,
  the dataset indices and labels of its batch, and the update as it computed it. The server never receives it;
  it is the ground truth for scoring and tests, and no attack reads it.

:func:`load_update` turns a record into the round's global model and a :class:`~gifd_lite.fl.ClientUpdate` whose
threat model says what the protocol revealed (FedSGD or FedAvg, T, η, batch size = number of examples, the
input spec); :func:`attack_update` runs any attack on it, with the unrolling attacker for FedAvg.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .. import data, pipeline
from ..attacks import Reconstruction
from ..data import InputSpec
from ..errors import GifdError
from ..fl import ClientUpdate
from .clients import protocol_threat_model

__all__ = ["FORMAT", "RecordedUpdate", "record_name", "write_record", "write_index", "read_index", "load_update",
           "attack_update", "score_recorded", "sha256_of"]

FORMAT = "gifd_lite.federation/1"
_KEYS = ("format", "round", "node_id", "model", "num_classes", "input", "protocol", "num_examples",
         "global_state", "update")


def record_name(server_round: int, node_id: int) -> str:
    """The file name of one client-round record (the same name in ``client_side/``)."""
    return f"round_{server_round:03d}_node_{node_id}.pt"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_record(folder: Path, record: dict) -> dict:
    """Save one client-round record; returns its index entry."""
    missing = [k for k in _KEYS if k not in record]
    if missing:
        raise GifdError(f"a federation record needs {', '.join(missing)}")
    path = Path(folder) / record_name(record["round"], record["node_id"])
    tmp = path.with_suffix(".tmp")
    torch.save(record, tmp)
    tmp.replace(path)
    norm = float(torch.sqrt(sum((t.double() ** 2).sum() for t in record["update"].values())))
    return {"round": record["round"], "node_id": record["node_id"], "file": path.name,
            "num_examples": record["num_examples"], "sha256": sha256_of(path), "update_norm": norm}


def write_index(folder: Path, index: dict) -> Path:
    path = Path(folder) / "index.json"
    path.write_text(json.dumps(index, indent=1))
    return path


def read_index(folder) -> dict:
    """A federation folder's ``index.json``."""
    path = Path(folder) / "index.json"
    if not path.is_file():
        raise GifdError(f"no federation index at {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise GifdError(f"{path} is not valid JSON ({exc.msg})") from None


@dataclass
class RecordedUpdate:
    """One recorded client update, ready to attack: the round's global ``model`` and the ``update`` with its
    threat model filled in from the record."""

    path: Path
    round: int
    node_id: int
    model: nn.Module
    update: ClientUpdate
    num_examples: int
    protocol: dict
    model_name: str

    @property
    def batch_size(self) -> int:
        return self.update.threat_model.batch_size

    def truth(self) -> tuple[torch.Tensor, torch.Tensor, list[int]] | None:
        """The client's batch from its own log (``client_side/``), as the model saw it, or None when the
        simulation did not keep it: ``(images in [0, 1], labels, dataset indices)``. For scoring only."""
        log_path = self.path.parent / "client_side" / self.path.name
        if not log_path.is_file():
            return None
        log = _load(log_path)
        ds = data.load_cifar10(log["split"])
        x, y = ds.tensors(log["indices"])
        return data.fit_to_input(x, self.update.threat_model.input), y, list(log["indices"])

    def client_log(self) -> dict | None:
        """The client's own log (partition, indices, labels, the update it computed), or None."""
        log_path = self.path.parent / "client_side" / self.path.name
        return _load(log_path) if log_path.is_file() else None


def _load(path: Path) -> dict:
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:       # a truncated zip, a pickle, random bytes: many types
        raise GifdError(f"{path} is not a readable federation record ({type(exc).__name__})") from None
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        raise GifdError(f"{path} is not a gifd_lite federation record (format {FORMAT} expected)")
    return value


def _check_hash(path: Path) -> None:
    """Against ``index.json`` beside the record, when there is one that lists it."""
    index_path = path.parent / "index.json"
    if not index_path.is_file():
        return
    try:
        entries = {e["file"]: e for e in json.loads(index_path.read_text()).get("records", [])}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return
    if path.name in entries and entries[path.name]["sha256"] != sha256_of(path):
        raise GifdError(f"{path} is corrupt: its sha256 differs from {index_path}")


def load_update(path, model: nn.Module | None = None, device: str | torch.device = "cpu") -> RecordedUpdate:
    """Load a client-round record: the round's global model (``model`` with the record's weights loaded into it,
    or the named :mod:`gifd_lite.models` model when ``model`` is None) and the update with its threat model.

    Raises :class:`GifdError` with one line for a missing or corrupt file and for an update that does not fit
    the model (other layers or shapes)."""
    path = Path(path)
    if path.is_dir():
        raise GifdError(f"{path} is a folder: give one record file from it (its index.json lists them)")
    if not path.is_file():
        raise GifdError(f"no federation record at {path}")
    _check_hash(path)
    record = _load(path)
    missing = [k for k in _KEYS if k not in record]
    if missing:
        raise GifdError(f"{path} lacks {', '.join(missing)}: not a complete federation record")
    spec = InputSpec(tuple(record["input"]["shape"]), tuple(record["input"]["mean"]), tuple(record["input"]["std"]))
    if model is None:
        from ..models import MODEL_NAMES, build_model

        if record["model"] not in MODEL_NAMES:
            raise GifdError(f"the record's model {record['model']!r} is not one of gifd_lite's models "
                            f"({', '.join(MODEL_NAMES)}): pass your nn.Module (load_update(path, model=...))")
        model = build_model(record["model"], num_classes=int(record["num_classes"]))
    _fit(model, record, path)
    model = model.to(device).eval()
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    protocol = dict(record["protocol"])
    tm = protocol_threat_model(protocol, record["model"], int(record["num_examples"]), spec)
    tm.adaptive = protocol["update"] == "fedavg"          # the attacker unrolls the public T local steps
    tm.notes.append(f"recorded by a curious Flower server: round {record['round']}, node {record['node_id']}")
    tensors = [record["update"][n].to(device) for n in names]
    return RecordedUpdate(path, int(record["round"]), int(record["node_id"]), model, ClientUpdate(tensors, tm),
                          int(record["num_examples"]), protocol, record["model"])


def _fit(model: nn.Module, record: dict, path: Path) -> None:
    """Load the record's global weights into ``model``, or say in one line why the record does not fit it."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    update = record["update"]
    if list(update) != names or any(tuple(update[n].shape) != shapes[n] for n in names):
        theirs = sum(t.numel() for t in update.values())
        ours = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad)
        raise GifdError(f"{path.name} holds an update of a different model ({record['model']}, {len(update)} "
                        f"tensors, {theirs} entries) than {type(model).__name__} ({len(names)} tensors, {ours})")
    try:
        model.load_state_dict(record["global_state"])
    except (RuntimeError, KeyError) as exc:
        raise GifdError(f"{path.name}: its global weights do not fit {type(model).__name__} "
                        f"({str(exc).splitlines()[0]})") from None


def attack_update(recorded: RecordedUpdate, method: str, preset, seed: int = 0, labels: torch.Tensor | None = None,
                  generator=None, label_mapping=None) -> Reconstruction:
    """Run ``method`` on a recorded update, as :func:`gifd_lite.pipeline.run_attack` does on a simulated one:
    labels inferred (counted) from the update unless given; FedAvg updates with the unrolling attacker."""
    return pipeline.run_attack(method, recorded.model, recorded.update, preset, recorded.batch_size, seed=seed,
                               labels=labels, generator=generator, label_mapping=label_mapping)


def score_recorded(reconstruction: Reconstruction, recorded: RecordedUpdate, with_lpips: bool = True) -> dict:
    """The CLI's metrics of an attack on a recorded update: scored against the client's own log when the
    simulation kept one (:meth:`RecordedUpdate.truth`), else the same fields with the image metrics null."""
    truth = recorded.truth()
    if truth is not None:
        record = pipeline.score(reconstruction, truth[0], truth[1], with_lpips=with_lpips)
        record["indices"] = truth[2]
    else:
        record = pipeline.score(reconstruction, reconstruction.images, reconstruction.labels, with_lpips=False)
        for key in ("psnr", "ssim", "lpips", "mse", "label_accuracy", "true_labels", "per_image"):
            record[key] = None
        record["order"] = list(range(len(reconstruction.images)))
        for row in record.get("stages", []) + record.get("candidates", []):
            row["psnr"] = None
        record["note"] = "no ground truth: the simulation kept no client log beside this record"
    record.update(from_update=str(recorded.path), round=recorded.round, node_id=recorded.node_id,
                  num_examples=recorded.num_examples, protocol=recorded.protocol)
    return record
