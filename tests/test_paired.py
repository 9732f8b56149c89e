"""gifd_lite.paired against scipy.stats on a known case, and the committed reproduce summaries against their
records (tools/summarise_reproduce.py)."""

import importlib.util
import math
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


def test_a_re_run_table_reads_only_its_current_records():
    """``reproduce`` appends a re-run's records to the old ones; the table and its summary must not mix the two
    protocols (the committed ``ood`` table was re-run with the current code; ``batch`` is still stale)."""
    from collections import Counter

    from gifd_lite.experiments import read_records
    from gifd_lite.paired import load_records

    ood = ROOT / "docs" / "results" / "reproduce" / "ood.jsonl"
    every, shown = read_records(ood), load_records(ood)
    assert len(every) > len(shown)
    assert set(Counter(r["spec"]["tag"] for r in shown).values()) == {10}
    batch = ROOT / "docs" / "results" / "reproduce" / "batch.jsonl"
    assert len(load_records(batch)) == len(read_records(batch))          # stale only: shown as it is
