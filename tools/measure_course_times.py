"""Time every notebook at a preset and write docs/results/course_times.json (the lessons' "How long it takes").
    GIFD_DATA=../shared/data .venv/bin/python tools/measure_course_times.py \
        [--preset laptop] [--only 05_hierarchical_feature_search ...] [--solutions] [--jobs 2] [--publish DIR] \
        [--record-as KEY]
Runs the notebooks through `gifd_lite.course.run_course` (papermill, exactly as `make course` does: with
``--jobs 2 --publish docs/course/executed`` it *is* `make course` at the laptop preset), recording each one's wall
time and whether it finished; resumable: notebooks already in the file are skipped unless `--again`. With two jobs
every kernel has one torch thread and the other core runs the other notebook, the conditions of a 2-core laptop
doing two things; with one job, set OMP_NUM_THREADS/GIFD_THREADS yourself.
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

from gifd_lite.course import notebooks, run_course, solutions  # noqa: E402
from gifd_lite.errors import GifdError  # noqa: E402

OUT = ROOT / "docs" / "results" / "course_times.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="laptop")
    parser.add_argument("--only", nargs="*", help="notebook stems to time (default: every lesson)")
    parser.add_argument("--solutions", action="store_true", help="the solutions notebooks too")
    parser.add_argument("--again", action="store_true", help="time notebooks already in the file again")
    parser.add_argument("--runs", default="/tmp/gifd_course_times", help="where the executed copies go")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks at once, one torch thread each")
    parser.add_argument("--publish", help="also copy the executed notebooks here (docs/course/executed)")
    parser.add_argument("--record-as", help="the key the times go under (default: the preset's name; e.g. "
                        "laptop_2026-12-05 for a day whose machine speed differs from the one the lessons quote)")
    args = parser.parse_args()
    record = json.loads(OUT.read_text()) if OUT.exists() else {}
    times = record.setdefault(args.record_as or args.preset, {})
    stems = [p.stem for p in notebooks() + (solutions() if args.solutions else [])]
    todo = [s for s in (args.only or stems) if s not in times or args.again]
    threads = 1 if args.jobs > 1 else int(os.environ.get("GIFD_THREADS", "0") or 0) or None
    conditions = (f"{args.jobs} notebooks at once, one torch thread each" if args.jobs > 1
                  else f"one notebook at a time, {threads or 'default'} torch thread{'' if threads == 1 else 's'}")

    def record_one(stem: str, seconds: float | None, error: str | None) -> None:
        times[stem] = {"seconds": seconds, "ok": error is None, "threads": threads, "date": time.strftime("%Y-%m-%d"),
                       "machine": f"{platform.machine()}, {os.cpu_count()} cores", "conditions": conditions}
        if error:
            times[stem]["error"] = error
        OUT.write_text(json.dumps(record, indent=1) + "\n")
        print(stem, times[stem], flush=True)

    if not todo:
        return
    try:
        run_course(args.preset, Path(args.runs), only=todo, device="cpu", publish=args.publish, jobs=args.jobs,
                   on_done=record_one)
    except GifdError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
