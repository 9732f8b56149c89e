"""Time every notebook at a preset and write docs/results/course_times.json (the lessons' "How long it takes").
    GIFD_DATA=../shared/data OMP_NUM_THREADS=1 GIFD_THREADS=1 .venv/bin/python tools/measure_course_times.py \
        [--preset laptop] [--only 05_hierarchical_feature_search ...] [--solutions]
Runs the notebooks one after another through `gifd_lite.course.run_notebook` (papermill, as `make course` does),
recording each one's wall time and whether it finished; resumable: notebooks already in the file are skipped
unless `--again`. One torch thread per run gives an upper bound for a 2-core laptop (two threads are faster).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gifd_lite.course import notebooks, run_notebook, solutions  # noqa: E402

OUT = ROOT / "docs" / "results" / "course_times.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="laptop")
    parser.add_argument("--only", nargs="*", help="notebook stems to time (default: every lesson)")
    parser.add_argument("--solutions", action="store_true", help="the solutions notebooks too")
    parser.add_argument("--again", action="store_true", help="time notebooks already in the file again")
    parser.add_argument("--runs", default="/tmp/gifd_course_times", help="where the executed copies go")
    args = parser.parse_args()
    record = json.loads(OUT.read_text()) if OUT.exists() else {}
    times = record.setdefault(args.preset, {})
    paths = {p.stem: p for p in notebooks() + (solutions() if args.solutions else [])}
    for stem in args.only or list(paths):
        if stem in times and not args.again:
            continue
        t0 = time.perf_counter()
        try:
            run_notebook(paths[stem], Path(args.runs), preset=args.preset, device="cpu")
            ok = True
        except Exception as exc:                      # keep timing the others; say what failed
            ok, error = False, f"{type(exc).__name__}: {str(exc)[-200:]}"
        times[stem] = {"seconds": round(time.perf_counter() - t0, 1), "ok": ok,
                       "threads": int(os.environ.get("GIFD_THREADS", "0") or 0) or None,
                       "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
        if not ok:
            times[stem]["error"] = error
        OUT.write_text(json.dumps(record, indent=1) + "\n")
        print(stem, times[stem], flush=True)


if __name__ == "__main__":
    main()
