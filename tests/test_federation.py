"""A real Flower federation (issue 20): two clients, Flower's simulation engine, no mock. The curious server's
records equal what the clients computed, the attacks on them equal the attacks on the simulated update of the
same data, and bad records are one-line errors."""

import shutil

import numpy as np
import pytest
import torch

from gifd_lite import data, fl, labels, metrics, models, pipeline
from gifd_lite.__main__ import main
from gifd_lite.errors import GifdError
from gifd_lite.federation import (FederationConfig, attack_update, load_update, partition_shards, read_index,
                                  record_paths, require_flower, run_federations)
from gifd_lite.federation.clients import client_round

SGD = FederationConfig(model="convnet", num_clients=2, rounds=2, update="fedsgd", lr=0.1, batch_size=1)
AVG = FederationConfig(model="convnet", num_clients=2, rounds=1, update="fedavg", local_steps=2, lr=0.05,
                       batch_size=4, partition="skewed")


@pytest.fixture(scope="session")     # not "module": the Flower group's tests of other modules run in between
def federation(tmp_path_factory):       # under xdist, and a module fixture would start the federation twice
    root = tmp_path_factory.mktemp("federation")
    result = run_federations({"fedsgd": SGD, "fedavg": AVG}, root)     # one engine start for both
    return root, result


def test_the_recorded_update_is_what_the_client_computed(federation):
    root, result = federation
    assert set(result["folders"]) == {"fedsgd", "fedavg"}
    index = read_index(root / "fedsgd")
    assert index["rounds_done"] == 2 and len(index["records"]) == 4 and index["protocol"]["update"] == "fedsgd"
    for name in ("fedsgd", "fedavg"):
        for path in record_paths(root / name):
            recorded = load_update(path)
            sent = recorded.client_log()["update"]
            assert list(sent) == [n for n, _ in recorded.model.named_parameters()]
            worst = max(float((a - sent[n]).abs().max()) for n, a in zip(sent, recorded.update.tensors))
            assert worst <= 1e-6, (path.name, worst)
            assert recorded.num_examples == len(recorded.client_log()["labels"])


def test_the_server_aggregates_like_fedsgd(federation):
    root, _ = federation
    first, second = [[load_update(p) for p in record_paths(root / "fedsgd", r)] for r in (1, 2)]
    start = models.build_model("convnet", seed=0).state_dict()
    for (name, p), q in zip(first[0].model.named_parameters(), second[0].model.parameters()):
        assert torch.equal(p.detach(), start[name])                       # round 1 sends the initial model
        mean = sum(r.update.tensors[i] for r in first for i, (n, _) in enumerate(first[0].model.named_parameters())
                   if n == name) / len(first)
        assert torch.allclose(q.detach(), start[name] - SGD.lr * mean, atol=1e-6)


def test_ig_on_the_recorded_update_matches_the_simulated_update(federation, smoke):
    root, _ = federation
    recorded = load_update(record_paths(root / "fedsgd", 1)[0])
    x, y, _ = recorded.truth()
    assert recorded.update.threat_model.batch_size == 1 and not recorded.update.threat_model.adaptive
    simulated = pipeline.observe(recorded.model, x, y, fl.ThreatModel("convnet"))
    psnr = {}
    for name, update in (("recorded", recorded.update), ("simulated", simulated)):
        rec = pipeline.run_attack("ig", recorded.model, update, smoke, 1, seed=0)
        psnr[name] = metrics.evaluate(rec.images, x, with_lpips=False)["psnr"]
    assert abs(psnr["recorded"] - psnr["simulated"]) <= 0.5, psnr


def test_a_fedavg_record_gives_the_unrolling_attacker_and_the_label_counts(federation, smoke):
    root, _ = federation
    recorded = load_update(record_paths(root / "fedavg")[0])
    tm = recorded.update.threat_model
    assert (tm.update, tm.fedavg_steps, tm.fedavg_lr, tm.batch_size, tm.adaptive) == ("fedavg", 2, 0.05, 4, True)
    x, y, _ = recorded.truth()
    counts = labels.infer_label_counts(recorded.model, recorded.update.tensors, 4, tm)
    assert torch.equal(counts, labels.counts_of(y, 10))
    rec = attack_update(recorded, "ig", smoke, seed=0)
    assert rec.threat_model.labels == "inferred" and rec.images.shape == x.shape
    assert sorted(rec.labels.tolist()) == sorted(y.tolist())


def test_the_cli_attacks_a_record(federation, tmp_path, capsys):
    import json

    root, _ = federation
    path = record_paths(root / "fedsgd", 1)[0]
    assert main(["attack", "--method", "ig", "--from-update", str(path), "--preset", "smoke", "--iters", "4",
                 "--out", str(tmp_path)]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["from_update"] == str(path) and record["psnr"] is not None and record["round"] == 1
    assert record["threat_model"]["update"] == "fedsgd" and (tmp_path / "reconstruction.png").exists()


def _one_line_error(argv, capsys) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


def test_bad_records_are_one_line_errors(federation, tmp_path, capsys):
    root, _ = federation
    path = record_paths(root / "fedsgd", 1)[0]
    base = ["attack", "--method", "ig", "--preset", "smoke", "--out", str(tmp_path / "out")]
    code, line = _one_line_error(base + ["--from-update", str(tmp_path / "missing.pt")], capsys)
    assert code == 1 and "no federation record" in line
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    code, line = _one_line_error(base + ["--from-update", str(garbage)], capsys)
    assert code == 1 and "not a readable federation record" in line
    copy = tmp_path / "copy"
    shutil.copytree(root / "fedsgd", copy)
    tampered = copy / path.name
    payload = torch.load(tampered, weights_only=True)
    payload["update"][next(iter(payload["update"]))] += 1.0
    torch.save(payload, tampered)
    code, line = _one_line_error(base + ["--from-update", str(tampered)], capsys)
    assert code == 1 and "sha256 differs" in line
    code, line = _one_line_error(base + ["--from-update", str(path), "--index", "3"], capsys)
    assert code == 2 and "--index cannot go with --from-update" in line
    with pytest.raises(GifdError, match="different model"):
        load_update(path, model=models.build_model("lenet"))
    (copy / "index.json").unlink()
    torch.save({**payload, "model": "MyNet"}, tampered)
    with pytest.raises(GifdError, match="not one of gifd_lite's models"):
        load_update(tampered)


def test_a_missing_flower_is_a_one_line_hint(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "flwr", None)
    with pytest.raises(GifdError, match=r"pip install -e \.\[federation\]"):
        require_flower()


def test_shards_iid_and_class_skewed(cifar_test):
    iid = partition_shards(cifar_test.labels, 4, "iid", seed=0)
    assert sorted(np.concatenate(iid).tolist()) == list(range(len(cifar_test)))
    skewed = partition_shards(cifar_test.labels, 5, "skewed", classes_per_client=2, seed=0)
    held = [set(cifar_test.labels[s].tolist()) for s in skewed]
    assert all(len(h) == 2 for h in held) and set().union(*held) == set(range(10))
    assert not set(skewed[0].tolist()) & set(skewed[1].tolist())


def test_a_client_runs_your_own_model_on_resized_images(cifar_test):
    from test_own_model import SPEC, TinyGreyNet

    model = TinyGreyNet().eval()
    protocol = FederationConfig(batch_size=3).protocol()
    work = client_round(model, cifar_test, np.arange(100), protocol, SPEC, "TinyGreyNet", 1, 0, seed=0)
    x, y = cifar_test.tensors(work["indices"])
    expected = fl.fedsgd_gradients(model, SPEC.normalize(data.fit_to_input(x, SPEC)), y)
    assert all(torch.allclose(work["update"][n], g) for (n, _), g in zip(model.named_parameters(), expected))


def test_only_rays_startup_timeout_starts_the_simulation_again():
    from gifd_lite.federation.flower import _ray_start_timed_out

    try:
        try:
            raise Exception("The current node timed out during startup. This could happen because ...")
        except Exception as ray_error:
            raise RuntimeError("An error was encountered. Ending simulation.") from ray_error
    except RuntimeError as flower_error:
        assert _ray_start_timed_out(flower_error)
    assert not _ray_start_timed_out(RuntimeError("An error was encountered. Ending simulation."))
    assert not _ray_start_timed_out(RuntimeError("the client raised: CUDA out of memory"))
