"""Run specs, resumable sweeps and the bench command."""

import json

import pytest
import torch

from gifd_lite import experiments
from gifd_lite.bench import batched_restart_gradients, bench
from gifd_lite.config import get_preset
from gifd_lite.errors import GifdError
from gifd_lite.experiments import RunSpec


def test_overrides_replace_preset_fields():
    p = experiments.apply_overrides(get_preset("smoke"), {"gifd": {"radius": [None, 0.1, 0.1, 0.1], "restarts": 3}})
    assert p.gifd.radius == (None, 0.1, 0.1, 0.1) and p.gifd.restarts == 3
    assert p.ig == get_preset("smoke").ig
    with pytest.raises(TypeError):
        experiments.apply_overrides(get_preset("smoke"), {"gifd": {"no_such_field": 1}})


def test_spec_key_is_stable_and_distinguishes_settings():
    a, b = RunSpec("ig", index=3), RunSpec("ig", index=3)
    assert a.key() == b.key()
    assert RunSpec("ig", index=3, defense="noise").key() != a.key()


def test_sweep_appends_records_and_resumes(tmp_path):
    specs = [RunSpec("ig", index=i, model="convnet", preset="smoke") for i in (0, 1)]
    out = tmp_path / "runs.jsonl"
    context = experiments.Context("cpu")
    first = experiments.sweep(specs[:1], out, context)
    assert len(first) == 1 and first[0]["spec"]["index"] == 0 and first[0]["psnr"] > 0
    with out.open("a") as fh:                       # a run killed while writing its line
        fh.write('{"key": "half')
    seen = []
    both = experiments.sweep(specs, out, context, on_record=seen.append)
    assert [r["spec"]["index"] for r in both] == [0, 1]
    assert len(seen) == 1 and seen[0]["spec"]["index"] == 1          # index 0 was not run again
    assert both[0]["psnr"] == first[0]["psnr"]
    assert len(experiments.read_records(out)) == 2
    assert all("key" in json.loads(line) for line in out.read_text().splitlines() if line.endswith("}"))


def test_bench_reports_ratios_against_the_plain_loop():
    from gifd_lite.bench import report

    rows = bench("convnet", iterations=4, methods=("ig", "gifd"), device="cpu", compile=False)
    assert rows["plain"] > 0 and rows["flops_per_step"] > 0 and rows["sgemm_gflops"] > 0
    for m in ("ig", "gifd", "oracle_eager", "plain_concatenated"):
        assert rows[m] > 0 and rows[f"{m}_ratio"] == pytest.approx(rows[m] / rows["plain"])
    assert rows["oracle_eager_gflops"] == pytest.approx(rows["flops_per_step"] / rows["oracle_eager"] / 1e9)
    text = report(rows, "bench")            # one round: no per-round column, no per-round quotes
    assert "× per round" not in text and "round max" not in text and "kernel s / iteration" in text


def test_bench_rounds_keep_each_rows_fastest_round_with_its_own_fault_counts():
    from gifd_lite.bench import report

    rows = bench("convnet", iterations=4, methods=("ig",), device="cpu", compile=False, rounds=2)
    for key in ("plain", "ig"):
        fastest = rows[f"{key}_rounds"].index(min(rows[f"{key}_rounds"]))
        assert rows[key] == rows[f"{key}_rounds"][fastest]
        assert rows[f"{key}_round_ratios"][fastest] == pytest.approx(rows[key] / rows["plain_rounds"][fastest])
        assert rows[f"{key}_faults"] == rows[f"{key}_faults_rounds"][fastest]           # counts of that round
    for key in ("plain", "plain_concatenated", "oracle_eager"):            # counters only grow over a loop
        assert rows[f"{key}_faults"] >= 0 and rows[f"{key}_kernel_seconds"] >= 0
    assert "plain_concatenated_rounds" not in rows          # context rows are timed once
    prefix = f"{rows['threads']} thread{'s' if rows['threads'] != 1 else ''}"
    text = report(rows, "bench --rounds 2")
    assert "× per round" in text and f"{prefix} ig ratio round max: {max(rows['ig_round_ratios']):.6f}" in text
    assert f"{prefix} plain ratio round" not in text          # the reference's own ratio is 1 in every round


def test_kernel_counters_see_the_pages_a_fresh_buffer_touches():
    import sys

    import torch

    from gifd_lite.bench import kernel_counters

    if not sys.platform.startswith("linux"):
        pytest.skip("page-fault counts are read with getrusage here")
    before = kernel_counters()
    buffer = torch.ones(16 * 2**20)            # 64 MB, above glibc's largest mmap threshold: fresh pages
    after = kernel_counters()
    assert float(buffer[-1]) == 1.0 and after[0] - before[0] >= 16   # (transparent huge pages: 2 MB per fault)


def test_bench_report_carries_a_quote_block_the_texts_can_read(tmp_path, monkeypatch):
    from gifd_lite import results
    from gifd_lite.bench import report

    rows = {"model": "resnet18", "batch_size": 1, "threads": 2, "device": "cpu", "plain": 0.2, "plain_gflops": 45.0,
            "oracle_compiled": 0.12, "oracle_compiled_gflops": 75.0, "gifd": 0.14, "flops_per_step": 9e9,
            "sgemm_gflops": 340.0, "compile_probe": {"cold": {"first_call": 57.0, "compile": 56.5, "process_seconds": 63.0},
                                                      "warm": {"first_call": 4.3, "compile": 4.1, "process_seconds": 9.9}}}
    (tmp_path / "bench_x.md").write_text(report(rows, "bench"))
    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path)
    results._load.cache_clear()
    try:
        assert results.quote("bench_x.md", "2 threads gifd ratio") == "0.70"
        assert results.quote("bench_x.md", "2 threads oracle_compiled seconds", digits=3) == "0.120"
        assert results.quote("bench_x.md", "2 threads compile cold seconds", digits=1) == "56.5"
        assert results.judge("bench_x.md | 2 threads gifd ratio | > 0.45")[0]
        assert not results.judge("bench_x.md | 2 threads gifd ratio | <= 0.45")[0]
    finally:
        results._load.cache_clear()


def test_batched_restarts_give_each_restarts_own_gradient():
    import torch

    from gifd_lite.attacks.core import GradientTarget, model_gradients
    from gifd_lite.data import normalize
    from gifd_lite.fl import fedsgd_gradients
    from gifd_lite.models import build_model

    model = build_model("convnet", seed=0).eval()
    y = torch.tensor([3])
    target = GradientTarget(model, fedsgd_gradients(model, normalize(torch.rand(1, 3, 32, 32)), y))
    x = torch.rand(3, 1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    batched = batched_restart_gradients(model, target, y)(x)
    for r in range(3):
        xr = x[r].clone().requires_grad_(True)
        (one,) = torch.autograd.grad(target.cosine(model_gradients(model, normalize(xr), y, params=target.params)), [xr])
        assert torch.allclose(batched[r], one, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(batched[0], batched[1])


def test_context_computes_a_client_update_once_for_recent_keys():
    from gifd_lite.experiments import Context

    calls = []
    context = Context("cpu")

    def make():
        calls.append(1)
        return [torch.ones(2)]

    first = context.client_update("client A", make)
    first[0] += 1                                    # an attack that changes its copy changes nothing shared
    assert context.client_update("client A", make)[0].tolist() == [1.0, 1.0] and len(calls) == 1
    for other in range(4):                           # four newer clients push the oldest out
        context.client_update(f"client {other}", make)
    context.client_update("client A", make)
    assert len(calls) == 6


def test_a_record_of_the_earlier_protocol_never_stands_in_for_a_new_run():
    """Records made before issue 15 (no ``select`` in their spec) are protocol 1: GIFD with the lowest-loss rule,
    GGL with its old budget. Their keys differ from every spec the code makes now."""
    old = {"spec": {"method": "gifd", "index": 5, "model": "convnet", "preset": "laptop", "tag": "gifd"}}
    spec = experiments.RunSpec.of(old)
    assert spec.protocol == 1 and spec.select == "loss"
    assert spec.key() != experiments.RunSpec("gifd", index=5, model="convnet", select="loss", tag="gifd").key()
    ggl = experiments.RunSpec.of({"spec": {"method": "ggl", "index": 5, "preset": "laptop", "tag": "ggl"}})
    assert ggl.overrides["ggl"] == {"evaluations": 1200, "popsize": None}
    with pytest.raises(GifdError, match="protocol"):
        experiments.run_spec(spec)
    with pytest.raises(GifdError, match="RunSpec.select"):
        experiments.run_spec(experiments.RunSpec("gifd", overrides={"gifd": {"select": "holdout"}}))


def test_a_record_made_with_another_checkpoint_is_stale(tmp_path, monkeypatch):
    """Retraining a prior (a new sha256 in data/MANIFEST) makes its old records stale: sweeps redo them."""
    from gifd_lite import experiments
    from gifd_lite.experiments import RunSpec, current_records, is_current

    spec = RunSpec("gifd", index=5)
    hashes = {"cifar10": "aaa"}
    monkeypatch.setattr(experiments, "_checkpoint_hash", lambda name: hashes[name])
    record = {"spec": {**spec.__dict__}, "checkpoints": {"cifar10": "aaa"}, "psnr": 20.0}
    assert is_current(record)
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(record) + "\n")
    assert list(current_records(path)) == [spec.key()]
    hashes["cifar10"] = "bbb"                        # the prior was retrained
    assert not is_current(record) and current_records(path) == {}
    assert is_current({"spec": {**RunSpec("ig").__dict__}, "checkpoints": {}})
