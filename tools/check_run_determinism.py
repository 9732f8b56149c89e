"""Does one run spec give the same numbers in every process? (docs/results/README.md, "How reproducible one run is")

Runs one committed `label_mapping` spec (ConvNet, class-disjoint, image 1005, the oracle mapping) for GGL and for
GIFD in fresh processes that differ only in PYTHONHASHSEED (which changes Python's hashing and, with it, the
interpreter's allocation history), with the compiled oracle off, GGL once more with oneDNN
(``torch.backends.mkldnn``, PyTorch's fast CPU convolutions) off, and writes each run's PSNR and final gradient
loss next to the committed record's; and compares the two committed tables that hold these same two specs under
different tags (`ood`'s class-disjoint cells and `label_mapping`'s oracle cells, ten images each), and IG's and
GIFD's batch-1 runs in `main` and `batch` likewise:

    GIFD_DATA=../shared/data .venv/bin/python tools/check_run_determinism.py [--seeds 4]

Writes docs/results/runs/run_determinism.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gifd_lite.experiments import read_records  # noqa: E402
RECORDS = ROOT / "docs" / "results" / "reproduce" / "label_mapping.jsonl"
OUT = ROOT / "docs" / "results" / "runs" / "run_determinism.json"
TAGS = {"ggl": "ggl | mapping=oracle", "gifd": "gifd | mapping=oracle"}
VARIANTS = {"ggl": ("ggl", "on"), "gifd": ("gifd", "on"), "ggl_onednn_off": ("ggl", "off")}   # name: (method, oneDNN)
INDEX = 1005

CHILD = """
import json, sys, torch
torch.backends.mkldnn.enabled = sys.argv[2] == "on"
from gifd_lite.experiments import Context, RunSpec, run_spec
r = run_spec(RunSpec.of(json.loads(sys.argv[1])), Context(), with_lpips=False)
print(json.dumps({"psnr": r["psnr"], "gradient_loss": r["gradient_loss"], "seconds": r["seconds"]}))
"""


def committed(tag: str) -> dict:
    return next(r for r in read_records(RECORDS) if r["spec"]["tag"] == tag and r["spec"]["index"] == INDEX and "select" in r["spec"])


def _shared(table_a: str, tag_a: str, table_b: str, tag_b: str) -> dict:
    """One spec's runs in two committed tables that hold it under different tags: how many images differ."""
    def load(name: str, tag: str) -> dict:
        rows = read_records(RECORDS.parent / f"{name}.jsonl")
        return {r["spec"]["index"]: r for r in rows if "select" in r["spec"] and r["spec"]["tag"] == tag}
    a, b = load(table_a, tag_a), load(table_b, tag_b)
    pairs = [(a[i], b[i]) for i in sorted(a) if i in b]
    strip = lambda r: {k: v for k, v in r["spec"].items() if k != "tag"}  # noqa: E731
    assert pairs and all(strip(x) == strip(y) for x, y in pairs), "the two tables' specs differ beyond the tag"
    gaps = [abs(x["psnr"] - y["psnr"]) for x, y in pairs]
    return {"images": len(pairs), "differ": sum(g > 0 for g in gaps), "largest_gap_db": max(gaps)}


def same_spec_in_two_tables() -> dict:
    """GGL and GIFD runs of one spec in `ood` and in `label_mapping` (they differ only in the tag)."""
    return {m: _shared("ood", f"{m} | ood-disjoint", "label_mapping", TAGS[m]) for m in TAGS}


def main_and_batch() -> dict:
    """IG and GIFD at batch 1 in `main` and in `batch` (the same specs under two tags)."""
    return {m: _shared("main", m, "batch", f"{m} | B=1") for m in ("ig", "gifd")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="PYTHONHASHSEED values 0..N-1")
    args = parser.parse_args()
    result = {"about": __doc__.split("\n\n")[1].replace("\n", " "), "index": INDEX, "methods": {}}
    for name, (method, onednn) in VARIANTS.items():
        tag = TAGS[method]
        record = committed(tag)
        runs = []
        for seed in range(args.seeds):
            env = {**os.environ, "PYTHONHASHSEED": str(seed), "GIFD_COMPILE": "off", "OMP_NUM_THREADS": "1",
                   "GIFD_THREADS": "1"}
            out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(record), onednn], env=env, cwd=ROOT,
                                 capture_output=True, text=True, check=True)
            runs.append({"pythonhashseed": seed, **json.loads(out.stdout.strip().splitlines()[-1])})
            print(name, runs[-1], flush=True)
        psnrs = sorted({r["psnr"] for r in runs})
        result["methods"][name] = {"tag": tag, "onednn": onednn, "committed_psnr": record["psnr"], "runs": runs,
                                   "distinct_psnr": psnrs, "spread_db": psnrs[-1] - psnrs[0],
                                   "mean_seconds": sum(r["seconds"] for r in runs) / len(runs)}
    result["ood_vs_label_mapping"] = same_spec_in_two_tables()
    result["main_vs_batch"] = main_and_batch()
    print(result["ood_vs_label_mapping"], result["main_vs_batch"])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
