"""gifd_lite.paired against scipy.stats on a known case, and the committed reproduce summaries against their
records (tools/summarise_reproduce.py)."""

import importlib.util
import math
import statistics
from pathlib import Path

import pytest
from scipy import stats

from gifd_lite.paired import compare_cells, mean_ci, paired_difference

ROOT = Path(__file__).resolve().parent.parent

# two attacks on the same six images: the per-cell intervals overlap, the paired difference is clear
A = [21.0, 25.5, 18.2, 30.1, 22.4, 27.3]
B = [19.9, 24.0, 17.5, 28.6, 21.5, 25.8]


def test_paired_difference_matches_scipy_ttest_rel():
    p = paired_difference(A, B)
    ref = stats.ttest_rel(A, B)
    assert p["n"] == 6 and p["higher"] == 6 and p["lower"] == 0
    assert p["t"] == pytest.approx(ref.statistic, rel=1e-9)
    assert p["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    d = [a - b for a, b in zip(A, B)]
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=sum(d) / len(d), scale=stats.sem(d))
    assert p["mean"] == pytest.approx((lo + hi) / 2) and p["ci"] == pytest.approx((hi - lo) / 2)


def test_wilcoxon_signed_rank_on_known_cases():
    # ten positive differences: the exact two-sided p is 2 / 2**10 (only all-positive or all-negative signs are as extreme)
    assert paired_difference(list(range(1, 11)), [0] * 10)["wilcoxon_p"] == pytest.approx(2 / 1024)
    # ranks 1..5, the 4th negative: W- = 4; 7 of the 32 sign patterns have W- <= 4, so p = 2 * 7/32
    assert paired_difference([1, 2, 3, -4, 5], [0] * 5)["wilcoxon_p"] == pytest.approx(14 / 32)
    assert paired_difference(A, B)["wilcoxon_p"] == pytest.approx(stats.wilcoxon(A, B).pvalue)
    assert math.isnan(paired_difference([2.0, 3.0], [2.0, 3.0])["wilcoxon_p"])   # no difference to rank


def test_overlapping_intervals_with_a_clear_paired_difference():
    (ma, ha), (mb, hb) = mean_ci(A), mean_ci(B)
    assert ma - ha < mb + hb                                   # the unpaired intervals overlap ...
    records = [{"spec": {"tag": tag, "index": i, "seed": 0}, "psnr": v}
               for tag, vals in (("gifd | x", A), ("ig | x", B)) for i, v in enumerate(vals)]
    cmp = compare_cells(records, "gifd | x", "ig | x")
    assert cmp["intervals_overlap"]
    assert cmp["paired"]["mean"] - cmp["paired"]["ci"] > 0    # ... and the paired interval excludes zero


def test_single_pair_has_no_interval():
    p = paired_difference([1.0], [0.5])
    assert p["mean"] == 0.5 and math.isnan(p["ci"]) and math.isnan(p["p"])


def test_committed_summaries_agree_with_their_records():
    spec = importlib.util.spec_from_file_location("summarise_reproduce", ROOT / "tools" / "summarise_reproduce.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main(["--check"]) == 0, "docs/results/*/summary.json is stale: run tools/summarise_reproduce.py"


def test_a_re_run_table_reads_only_its_current_records(tmp_path):
    """``reproduce`` appends a re-run's records to the old ones; the table and its summary must not mix the two
    protocols (the committed ``ood`` table was re-run with the current code); a table with only stale records is
    shown as it is until it is re-run."""
    import json
    from collections import Counter

    from gifd_lite.experiments import is_current, read_records
    from gifd_lite.paired import load_records

    ood = ROOT / "docs" / "results" / "reproduce" / "ood.jsonl"
    every, shown = read_records(ood), load_records(ood)
    assert len(every) > len(shown) and all(is_current(r) for r in shown)
    assert set(Counter(r["spec"]["tag"] for r in shown).values()) == {10}
    stale_only = tmp_path / "stale.jsonl"
    stale_only.write_text("".join(json.dumps(r) + "\n" for r in every if not is_current(r)))
    assert len(load_records(stale_only)) == len(every) - len(shown)


def test_a_table_with_another_prior_is_paired_with_the_default_priors_table():
    """reproduce_strong/summary.json's ``versus_default_prior``: each cell minus the same cell of the default
    prior's table on the same images; a cell with stale records on either side is left out."""
    spec = importlib.util.spec_from_file_location("summarise_reproduce", ROOT / "tools" / "summarise_reproduce.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    from gifd_lite.paired import load_records

    default = load_records(ROOT / "docs" / "results" / "reproduce" / "label_mapping.jsonl")
    other = [{**r, "psnr": r["psnr"] + 1.0, "stages": [{**s, "psnr": s["psnr"] + 1.0} for s in r.get("stages", [])]}
             for r in default]
    versus = tool.versus_default_prior(other, default)
    oracle = versus["gifd mapping=oracle - default prior"]
    assert oracle["n"] == 10 and oracle["higher"] == 10 and oracle["mean"] == pytest.approx(1.0)
    assert oracle["stages"]["latent"]["mean"] == pytest.approx(1.0)
    stale = [{**r, "checkpoints": {name: "0" * 64 for name in r["checkpoints"]}} for r in default]
    assert tool.versus_default_prior(other, stale) == {}


def test_a_defense_is_paired_with_the_same_attack_on_the_clean_update():
    """defenses' ``versus_clean``: ``gifd | noise=0.01`` minus main's ``gifd`` on the same images."""
    spec = importlib.util.spec_from_file_location("summarise_reproduce", ROOT / "tools" / "summarise_reproduce.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    from gifd_lite.paired import load_records

    main = load_records(ROOT / "docs" / "results" / "reproduce" / "main.jsonl")
    defended = [{**r, "psnr": r["psnr"] - 2.0, "spec": {**r["spec"], "tag": f"{r['spec']['tag']} | noise=0.01"}}
                for r in main if r["spec"]["tag"] in ("ig", "gifd") and r["spec"]["index"] < 3000]
    versus = tool.versus_clean(defended, main)
    assert set(versus) == {"ig noise=0.01 - clean", "gifd noise=0.01 - clean"}
    gifd = versus["gifd noise=0.01 - clean"]
    assert gifd["n"] == 3 and gifd["lower"] == 3 and gifd["mean"] == pytest.approx(-2.0)   # images 5, 1005, 2005


def test_same_problem_spreads_the_runs_that_differ_only_by_rounding():
    """defenses' ``same_problem``: per image, the clean run and the four clipping cells; their spread and the clean
    run minus the mean of its four clipped siblings."""
    spec = importlib.util.spec_from_file_location("summarise_reproduce", ROOT / "tools" / "summarise_reproduce.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    from gifd_lite.paired import load_records

    main = [r for r in load_records(ROOT / "docs" / "results" / "reproduce" / "main.jsonl")
            if r["spec"]["tag"] == "gifd" and r["spec"]["index"] < 3000]
    offsets = {"clipping=1.0": 1.0, "clipping=1.0 adaptive": 3.0, "clipping=0.1": 1.0, "clipping=0.1 adaptive": 3.0}
    defended = [{**r, "psnr": r["psnr"] + d, "spec": {**r["spec"], "tag": f"gifd | {cell}", "defense": "clipping",
                                                     "adaptive": "adaptive" in cell}}
                for r in main for cell, d in offsets.items()]
    noise = [{**r, "spec": {**r["spec"], "tag": "gifd | noise=0.01", "defense": "noise"}} for r in main]
    out = tool.same_problem(defended + noise, main)
    assert set(out) == {"gifd"}                                   # no IG records given
    gifd = out["gifd"]
    assert gifd["images"] == 3 and gifd["clean - clipped"]["mean"] == pytest.approx(-2.0)   # 0 against (1+3+1+3)/4
    assert gifd["clean - clipped"]["lower"] == 3
    assert gifd["spread"] == pytest.approx(statistics.stdev([0.0, 1.0, 3.0, 1.0, 3.0]))    # noise is not a sibling


def test_a_re_run_table_keeps_what_its_replaced_records_said():
    """summary.json's ``previous``: the cells of the records a re-run replaced, none of them current."""
    spec = importlib.util.spec_from_file_location("summarise_reproduce", ROOT / "tools" / "summarise_reproduce.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    from gifd_lite.experiments import is_current, read_records

    path = ROOT / "docs" / "results" / "reproduce" / "main.jsonl"
    earlier = tool.previous_records(path)
    assert len(earlier) == 40 and not any(is_current(r) for r in earlier)
    assert len(earlier) + sum(is_current(r) for r in read_records(path)) == len(read_records(path))
    gifd = [r["psnr"] for r in earlier if r["spec"]["tag"] == "gifd"]
    assert tool.summarise_with_pairs("main", earlier)["cells"]["gifd"]["psnr"] == pytest.approx(sum(gifd) / len(gifd))


def test_each_stage_is_paired_with_the_same_runs_output():
    """``stage_minus_output``: within one GIFD cell, a stage's PSNR minus the run's output on the same images. On
    the committed ConvNet records the 16x16 stage of the full runs is exactly what the ``stages`` table's runs that
    stop after 16x16 give (the same seeded search up to that stage), so the two paired differences agree."""
    spec = importlib.util.spec_from_file_location("summarise_reproduce", ROOT / "tools" / "summarise_reproduce.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    records = [{"spec": {"tag": "gifd", "index": i, "seed": 0}, "psnr": 20.0 + i,
                "stages": [{"stage": "8x8", "psnr": 18.0 + i}, {"stage": "16x16", "psnr": 21.0 + i + 0.1 * i}]}
               for i in range(4)]
    out = tool.stage_minus_output(records, "gifd")
    assert out["8x8"]["mean"] == pytest.approx(-2.0) and out["8x8"]["lower"] == 4
    assert out["16x16"]["mean"] == pytest.approx(1.15) and out["16x16"]["higher"] == 4
    from gifd_lite.paired import load_records

    committed = ROOT / "docs" / "results" / "reproduce"
    main, stages = load_records(committed / "main.jsonl"), load_records(committed / "stages.jsonl")
    within = tool.stage_minus_output(main, "gifd")["16x16"]
    stopped = compare_cells(stages, "gifd | stop after stage 3", "gifd | stop after stage 4")["paired"]
    assert within["n"] == stopped["n"] == 10 and within["mean"] == pytest.approx(stopped["mean"], abs=1e-9)
    from gifd_lite.paired import values

    for k, name in enumerate(("latent", "4x4", "8x8", "16x16", "32x32")):   # every stage, every image, to the digit
        assert values(main, "gifd", stage=name) == values(stages, f"gifd | stop after stage {k}")


def test_a_resnet18_run_stopped_after_16x16_is_the_full_runs_16x16_stage():
    """The same on ResNet-18 (compiled matching step), checked on one image: the record of a run stopped after
    16x16 (docs/results/runs/resnet18_stages_check.jsonl, made by the stages table's spec for that image) against the
    main table's full GIFD run of the image, stage by stage."""
    from gifd_lite.paired import load_records, values

    results = ROOT / "docs" / "results"
    check = load_records(results / "runs" / "resnet18_stages_check.jsonl")
    main = load_records(results / "reproduce_resnet18" / "main.jsonl")
    assert [r["spec"]["tag"] for r in check] == ["gifd | stop after stage 3"]
    stopped = check[0]
    key = (stopped["spec"]["index"], stopped["spec"]["seed"])
    full = next(r for r in main if r["spec"]["tag"] == "gifd" and (r["spec"]["index"], r["spec"]["seed"]) == key)
    assert {k: v for k, v in stopped["spec"].items() if k not in ("tag", "overrides")} == \
        {k: v for k, v in full["spec"].items() if k not in ("tag", "overrides")}        # same model, seed, protocol
    assert [s["stage"] for s in stopped["stages"]] == ["latent", "4x4", "8x8", "16x16"]
    for stage in stopped["stages"]:
        assert values(main, "gifd", stage=stage["stage"])[key] == stage["psnr"]
    assert values(main, "gifd", stage="16x16")[key] == stopped["psnr"]
