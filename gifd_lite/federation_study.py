"""Notebook 10's analysis over a federation's records: what the curious server sees, the attacks on a recorded
update scored against the client's own log, and what secure aggregation leaves the server.

Secure aggregation (Bonawitz et al., CCS 2017) lets the server learn only the round's aggregate Σ_k n_k u_k / Σ n_k,
never a single client's u_k. For FedSGD in eval mode that aggregate *is* the gradient of the union of the round's
batches (each g_k is a mean over its n_k images), so the server holds one update of a batch of Σ n_k images:
:func:`secure_aggregate` builds it, and every attack and the label counting run on it unchanged.
"""

from __future__ import annotations

import copy
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from . import labels, metrics, pipeline
from .fl import ClientUpdate
from .federation import load_update, record_paths
from .federation.records import RecordedUpdate, attack_update

__all__ = ["client_record", "server_view", "format_server_view", "show_signal", "attack_record", "label_count_rows",
           "secure_aggregate", "psnr_of", "record_explorer"]


def client_record(folder, server_round: int, partition: int) -> Path:
    """The record of the client holding shard ``partition`` in ``server_round``. Simulation only: the mapping
    comes from the clients' own logs (the server sees random node ids), so a lesson attacks the same client's
    update in every run."""
    from .federation.records import _load

    for path in record_paths(folder, server_round):
        log = path.parent / "client_side" / path.name
        if log.is_file() and _load(log)["partition"] == partition:
            return path
    raise FileNotFoundError(f"no record of partition {partition} in round {server_round} under {folder}")


def _load_all(folder, server_round=None, model_fn=None) -> list[RecordedUpdate]:
    """The records (of one round, or all), each with its own model: ``model_fn()`` for your own nn.Module."""
    return [load_update(p, model=None if model_fn is None else model_fn()) for p in record_paths(folder, server_round)]


def _labels_read(recorded: RecordedUpdate) -> list[int]:
    tm = recorded.update.threat_model
    return labels.infer_labels(recorded.model, recorded.update.tensors, recorded.batch_size, tm).tolist()


def server_view(folder, model_fn=None) -> list[dict]:
    """One row per record, as the server operator sees it: round, node id, reported examples, the protocol, the
    update's norm and the labels its last layer gives away (counted from the bias)."""
    rows = []
    for rec in _load_all(folder, model_fn=model_fn):
        norm = float(torch.sqrt(sum((t.double() ** 2).sum() for t in rec.update.tensors)))
        rows.append({"round": rec.round, "node": rec.node_id, "examples": rec.num_examples,
                     "update": rec.protocol["update"], "local_steps": rec.protocol["local_steps"],
                     "lr": rec.protocol["lr"], "norm": norm, "labels_read": _labels_read(rec), "file": rec.path.name})
    return rows


def format_server_view(rows: list[dict], class_names=None) -> str:
    """The rows as a text table (node ids shortened to their last 6 digits)."""
    lines = [f"{'round':>5}  {'node':>8}  {'examples':>8}  {'update':<12} {'norm':>8}  labels read off the update"]
    for r in rows:
        update = r["update"] + (f" T={r['local_steps']}" if r["update"] == "fedavg" else "")
        read = [class_names[c] for c in r["labels_read"]] if class_names else r["labels_read"]
        lines.append(f"{r['round']:>5}  …{str(r['node'])[-6:]:>7}  {r['examples']:>8}  {update:<12} {r['norm']:8.3f}  "
                     + ", ".join(map(str, read)))
    return "\n".join(lines)


def show_signal(recorded: RecordedUpdate, class_names) -> plt.Figure:
    """The last layer's bias entries of one update (divided by T η for FedAvg) with the counts read from them:
    negative bars are the classes in the client's batch."""
    signal = labels.last_layer_signal(recorded.model, recorded.update.tensors).cpu()
    tm = recorded.update.threat_model
    if tm.update == "fedavg":
        signal = signal / (tm.fedavg_steps * tm.fedavg_lr)
    counts = labels.counts_of(_labels_read(recorded), len(signal))
    fig, ax = plt.subplots(figsize=(7.5, 2.6))
    ax.bar(range(len(signal)), signal.numpy(), color=["tab:red" if c else "0.6" for c in counts])
    for c, n in enumerate(counts.tolist()):
        if n:
            ax.text(c, float(signal[c]), f"×{n}", ha="center", va="top", fontsize=8)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xticks(range(len(signal)), class_names, rotation=30, fontsize=8)
    ax.set_ylabel("∂L/∂b  (bias entry)")
    ax.set_title(f"what the update gives away: round {recorded.round}, {recorded.batch_size} image(s); "
                 "red = counted in the batch", fontsize=9)
    fig.tight_layout()
    return fig


def attack_record(recorded: RecordedUpdate, methods, preset, generator=None, seed: int = 0) -> dict:
    """Each method on one recorded update (labels counted from it), scored against the client's log:
    ``{method: {"reconstruction", "scores"}}``."""
    x, y, _ = recorded.truth()
    out = {}
    for method in methods:
        rec = attack_update(recorded, method, preset, seed=seed, generator=generator)
        out[method] = {"reconstruction": rec, "scores": pipeline.score(rec, x, y, with_lpips=False)}
    return out


def label_count_rows(folder, model_fn=None) -> list[dict]:
    """Per record: the batch's true label counts (from the client's log) and the counts read off the update."""
    rows = []
    for rec in _load_all(folder, model_fn=model_fn):
        true_labels, read_labels = rec.client_log()["labels"], _labels_read(rec)
        k = len(labels.last_layer_signal(rec.model, rec.update.tensors))
        truth, read = labels.counts_of(true_labels, k), labels.counts_of(read_labels, k)
        rows.append({"round": rec.round, "node": rec.node_id, "true": truth.tolist(), "read": read.tolist(),
                     "exact": bool(torch.equal(truth, read)),
                     "label_accuracy": labels.label_accuracy(read_labels, true_labels)})
    return rows


def secure_aggregate(folder, server_round: int, model_fn=None) -> dict:
    """What a server under secure aggregation receives in ``server_round`` of a FedSGD federation: the
    example-weighted mean of the clients' updates, as one update of the union batch (``batch_size`` = Σ n_k),
    with the global model and the union's truth (the clients' logs, for scoring). Returns ``{"model",
    "update", "truth": (images, labels), "clients"}``."""
    records = _load_all(folder, server_round, model_fn)
    if not records:
        raise FileNotFoundError(f"no records of round {server_round} under {folder}")
    if records[0].protocol["update"] != "fedsgd":
        raise ValueError("the aggregate is one batch's gradient only for FedSGD updates")
    total = sum(r.num_examples for r in records)
    tensors = [sum(r.num_examples / total * r.update.tensors[i] for r in records)
               for i in range(len(records[0].update.tensors))]
    tm = copy.deepcopy(records[0].update.threat_model)
    tm.batch_size, tm.notes = total, [f"secure aggregation: the mean of {len(records)} clients' updates"]
    truths = [r.truth() for r in records]
    x = torch.cat([t[0] for t in truths])
    y = torch.cat([t[1] for t in truths])
    return {"model": records[0].model, "update": ClientUpdate(tensors, tm), "truth": (x, y), "clients": len(records)}


def psnr_of(reconstruction, truth01) -> float:
    """Mean PSNR of a reconstruction against the truth, matched (metrics.evaluate)."""
    return metrics.evaluate(reconstruction.images, truth01, with_lpips=False)["psnr"]


def record_explorer(folder, class_names):
    """A dropdown over a federation's records (no optimisation: each choice loads one record and draws what its
    last layer gives away, :func:`show_signal`)."""
    import ipywidgets as W

    paths = record_paths(folder)
    choice = W.Dropdown(options=[(p.name, p) for p in paths], description="record")
    out = W.Output()

    def draw(*_):
        rec = load_update(choice.value)
        with out:
            out.clear_output(wait=True)
            print(f"round {rec.round}, node {rec.node_id}: {rec.num_examples} example(s), protocol {rec.protocol}")
            show_signal(rec, class_names)
            plt.show()

    choice.observe(draw, "value")
    draw()
    return W.VBox([choice, out])
