"""Print the status table of the `reproduce` tables for docs/results/README.md: runs done of planned with the
code as it is (a record made by an earlier protocol, e.g. GIFD's lowest-loss stage choice or GGL's old budget
before issue 15, no longer counts), images per cell, complete, partial or stale. It only reads the records.

    .venv/bin/python tools/results_status.py [--dir docs/results/reproduce] [--preset laptop] [--images 10]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gifd_lite import reproduce  # noqa: E402
from gifd_lite.experiments import is_current, read_records  # noqa: E402

WHAT = {
    "main": "IG, GGL, GIAS, GIFD at one compute budget",
    "batch": "batch size 1, 4, 8 (IG, GIFD)",
    "fedavg": "FedAvg local steps 1, 5, 10; an unrolling attacker at 5 (IG, GIFD)",
    "defenses": "noise, clipping, compression, Soteria at two strengths, plain and adaptive (IG, GGL, GIFD)",
    "stages": "GIFD stopped after stage 0…4",
    "radius": "GIFD's l1 radius: none, 1, 0.3, 0.1, 0.03",
    "ood": "class-disjoint prior (oracle mapping) and cross-domain images, four attacks",
    "label_mapping": "GIFD with each label mapping (class-disjoint), GGL for reference",
}


def status_row(table: str, directory: Path, preset: str, images: int, model: str) -> str:
    specs = reproduce.table_specs(table, preset, images=images, model=model)
    records = reproduce.recorded(specs, directory / f"{table}.jsonl")
    per_cell = Counter(r["spec"]["tag"] for r in records)
    cells = {s.tag for s in specs}
    counts = [per_cell[c] for c in cells]
    low, high = min(counts), max(counts)
    images_text = str(low) if low == high else f"{low}–{high}"
    earlier = sum(1 for r in read_records(directory / f"{table}.jsonl") if not is_current(r))
    if len(records) == len(specs):
        status = "complete"
    elif earlier:
        status = (f"**stale**: its .md shows {earlier} runs of an earlier protocol or prior; "
                  f"{sum(1 for c in counts if c)} of {len(cells)} cells redone")
    else:
        status = f"partial ({sum(1 for c in counts if c)} of {len(cells)} cells started)"
    return (f"| [`{table}`](reproduce/{table}.md) | {WHAT[table]} | {len(records)} / {len(specs)} | "
            f"{images_text} | {status} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=str(ROOT / "docs" / "results" / "reproduce"))
    parser.add_argument("--preset", default="laptop")
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--model", default="convnet")
    args = parser.parse_args()
    print("| table | what varies | runs done / planned | images per cell | status |")
    print("|---|---|---|---|---|")
    for table in reproduce.TABLES:
        print(status_row(table, Path(args.dir), args.preset, args.images, args.model))


if __name__ == "__main__":
    main()
