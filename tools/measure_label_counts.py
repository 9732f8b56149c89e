"""How well the labels of a batch with repeated labels are counted from the update; writes
docs/results/label_counts.json (quoted by notebook 10).

    GIFD_DATA=../shared/data GIFD_THREADS=1 .venv/bin/python tools/measure_label_counts.py

Batches of 8 drawn at random from the CIFAR-10 test split (`gifd_lite.data.client_batch`, seeds 0..N-1; labels
repeat in most of them), and batches of 8 from a class-skewed client shard (2 classes, as notebook 10's clients
hold), on each untrained model in eval mode. For every batch: the FedSGD gradient, and for the ConvNet also a FedAvg
update of 5 local steps at η = 0.05; and the shipped trained ConvNet (`classifier`, data/MANIFEST) as the global
model of a federation that has trained for a while, where the mean-image stand-in for the clients' mean
prediction is poorer. Reported per setting: the share of batches whose label counts are exactly
right, the mean label accuracy (multiset overlap / 8), and the same two for the LLG-style picking the counting
replaced (`gifd_lite.labels.llg_labels`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from gifd_lite import data, fl, labels, models  # noqa: E402
from gifd_lite.federation import partition_shards  # noqa: E402
from gifd_lite.runtime import set_threads  # noqa: E402

BATCH = 8
FEDAVG = {"fedavg_steps": 5, "fedavg_lr": 0.05}


def measure(model_name: str, test_set, batches: int, source: str, update: str) -> dict:
    if model_name == "trained convnet":
        from gifd_lite.gan import load_classifier

        model, model_name = load_classifier("classifier", "cpu").eval(), "convnet"
    else:
        model = models.build_model(model_name, seed=0).eval()
    shard = None
    if source == "skewed":
        shard = partition_shards(test_set.labels, 5, "skewed", classes_per_client=2, seed=0)[0]
    tm = fl.ThreatModel(model_name, batch_size=BATCH, **({"update": "fedavg", **FEDAVG} if update == "fedavg" else {}))
    exact = accuracy = llg_exact = llg_accuracy = repeated = 0
    for seed in range(batches):
        x, y, _ = data.client_batch(test_set, shard, BATCH, seed=seed)
        tensors = fl.client_update(model, data.normalize(x), y, tm).tensors
        truth = labels.counts_of(y, 10)
        counts = labels.infer_label_counts(model, tensors, BATCH, tm)
        llg = labels.counts_of(labels.llg_labels(labels.last_layer_signal(model, tensors), BATCH), 10)
        repeated += int(truth.max() > 1)
        exact += int(torch.equal(counts, truth))
        accuracy += float(torch.minimum(counts, truth).sum()) / BATCH
        llg_exact += int(torch.equal(llg, truth))
        llg_accuracy += float(torch.minimum(llg, truth).sum()) / BATCH
    return {"batches": batches, "with_repeated_labels": repeated / batches, "counts_exact": exact / batches,
            "label_accuracy": accuracy / batches, "llg_counts_exact": llg_exact / batches,
            "llg_label_accuracy": llg_accuracy / batches}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100)
    args = parser.parse_args()
    set_threads()
    start = time.perf_counter()
    test_set = data.load_cifar10("test")
    settings = [("convnet", "random", "fedsgd"), ("convnet", "skewed", "fedsgd"), ("convnet", "random", "fedavg"),
                ("lenet", "random", "fedsgd"), ("resnet18", "random", "fedsgd"), ("trained convnet", "random", "fedsgd")]
    results = {}
    for model_name, source, update in settings:
        n = args.batches if model_name != "resnet18" else max(1, args.batches // 2)
        results[f"{model_name} {source} {update}"] = measure(model_name, test_set, n, source, update)
        print(model_name, source, update, results[f"{model_name} {source} {update}"], file=sys.stderr, flush=True)
    record = {"what": "label counts of batches of 8 with repeated labels, inferred from the update "
                      "(gifd_lite.labels.infer_label_counts), models in eval mode: untrained, except the results "
                      "named 'trained convnet ...' (the shipped classifier), CIFAR-10 test split",
              "trained convnet": "the shipped classifier (data/MANIFEST 'classifier') as the global model",
              "batch_size": BATCH, "fedavg": FEDAVG, "results": results,
              "command": "GIFD_DATA=../shared/data GIFD_THREADS=1 .venv/bin/python tools/measure_label_counts.py"
                         + (f" --batches {args.batches}" if args.batches != 100 else ""),
              "seconds": round(time.perf_counter() - start, 1), "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d")}
    out = ROOT / "docs" / "results" / "label_counts.json"
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: v["counts_exact"] for k, v in results.items()}))


if __name__ == "__main__":
    main()
