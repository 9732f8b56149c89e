"""Does one run spec give the same numbers in every process? (docs/results/README.md, "How reproducible one run is")

Runs one committed `label_mapping` spec (ConvNet, class-disjoint, image 1005, the oracle mapping) for GGL and for
GIFD in fresh processes that differ only in PYTHONHASHSEED (which changes Python's hashing and, with it, the
interpreter's allocation history), with the compiled oracle off, and writes each run's PSNR and final gradient
loss next to the committed record's; and compares the two committed tables that hold these same two specs under
different tags (`ood`'s class-disjoint cells and `label_mapping`'s oracle cells, ten images each):

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
RECORDS = ROOT / "docs" / "results" / "reproduce" / "label_mapping.jsonl"
OUT = ROOT / "docs" / "results" / "runs" / "run_determinism.json"
TAGS = {"ggl": "ggl | mapping=oracle", "gifd": "gifd | mapping=oracle"}
INDEX = 1005

CHILD = """
import json, sys
from gifd_lite.experiments import Context, RunSpec, run_spec
r = run_spec(RunSpec.of(json.loads(sys.argv[1])), Context(), with_lpips=False)
print(json.dumps({"psnr": r["psnr"], "gradient_loss": r["gradient_loss"]}))
"""


def committed(tag: str) -> dict:
    rows = [json.loads(line) for line in RECORDS.read_text().splitlines() if line.strip()]
    return next(r for r in rows if r["spec"]["tag"] == tag and r["spec"]["index"] == INDEX and "select" in r["spec"])


def same_spec_in_two_tables() -> dict:
    """GGL and GIFD runs of one spec in `ood` and in `label_mapping` (they differ only in the tag)."""
    def load(name: str, tags: dict) -> dict:
        rows = [json.loads(line) for line in (RECORDS.parent / f"{name}.jsonl").read_text().splitlines() if line.strip()]
        return {(m, r["spec"]["index"]): r for r in rows if "select" in r["spec"]
                for m, tag in tags.items() if r["spec"]["tag"] == tag}
    ood = load("ood", {"ggl": "ggl | ood-disjoint", "gifd": "gifd | ood-disjoint"})
    mapping = load("label_mapping", TAGS)
    out = {}
    for method in TAGS:
        pairs = [(ood[k], mapping[k]) for k in sorted(ood) if k[0] == method and k in mapping]
        strip = lambda r: {k: v for k, v in r["spec"].items() if k != "tag"}  # noqa: E731
        assert all(strip(a) == strip(b) for a, b in pairs), "the two tables' specs differ beyond the tag"
        gaps = [abs(a["psnr"] - b["psnr"]) for a, b in pairs]
        out[method] = {"images": len(pairs), "differ": sum(g > 0 for g in gaps), "largest_gap_db": max(gaps)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="PYTHONHASHSEED values 0..N-1")
    args = parser.parse_args()
    result = {"about": __doc__.split("\n\n")[1].replace("\n", " "), "index": INDEX, "methods": {}}
    for method, tag in TAGS.items():
        record = committed(tag)
        runs = []
        for seed in range(args.seeds):
            env = {**os.environ, "PYTHONHASHSEED": str(seed), "GIFD_COMPILE": "off", "OMP_NUM_THREADS": "1",
                   "GIFD_THREADS": "1"}
            out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(record)], env=env, cwd=ROOT,
                                 capture_output=True, text=True, check=True)
            runs.append({"pythonhashseed": seed, **json.loads(out.stdout.strip().splitlines()[-1])})
            print(method, runs[-1], flush=True)
        psnrs = sorted({r["psnr"] for r in runs})
        result["methods"][method] = {"tag": tag, "committed_psnr": record["psnr"], "runs": runs,
                                     "distinct_psnr": psnrs, "spread_db": psnrs[-1] - psnrs[0]}
    result["ood_vs_label_mapping"] = same_spec_in_two_tables()
    print(result["ood_vs_label_mapping"])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
