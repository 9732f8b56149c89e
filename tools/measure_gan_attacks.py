"""Measure issue 4's comparisons of the GAN-prior attacks and write docs/results/gifd_<table>.md.

    GIFD_DATA=../shared/data .venv/bin/python tools/measure_gan_attacks.py --table main [--images 10]

Tables (each run is one record appended to docs/results/runs/gifd_<table>.jsonl, so a killed run resumes):
  main      IG, GGL, GIAS, GIFD; resnet18 untrained, eval mode, batch 1, inferred labels, laptop preset,
            test images 5, 1005, ..., one budget for all (GIFD's total iterations; IG's is raised to it)
  batch4    the same at batch size 4 (distinct labels, matched by assignment)
  defenses  the same at batch 1 under Gaussian noise σ=0.01 and under top-10% compression
(the l1-ball study is tools/measure_l1_ball.py)
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gifd_lite import reproduce  # noqa: E402
from gifd_lite.config import get_preset  # noqa: E402
from gifd_lite.experiments import RunSpec, read_records, sweep  # noqa: E402
from gifd_lite.runtime import set_threads  # noqa: E402

METHODS = ("ig", "ggl", "gias", "gifd")


def budget() -> int:
    return get_preset("laptop").gifd.total_iterations


def equal_budget(method: str) -> dict:
    """IG gets as many iterations as GIFD uses in all; the laptop preset already gives GGL and GIAS that many."""
    return {"ig": {"iterations": budget(), "restarts": 1}} if method == "ig" else {}


def specs_for(table: str, images: int, model: str = "resnet18") -> list[RunSpec]:
    indices = [5 + 1000 * i for i in range(images)]
    if table == "main":
        return [RunSpec(m, index=i, model=model, overrides=equal_budget(m), tag=m) for i in indices for m in METHODS]
    if table == "batch4":
        return [RunSpec(m, index=i, model=model, batch_size=4, overrides=equal_budget(m), tag=m)
                for i in indices for m in METHODS]
    if table == "defenses":
        # image by image, so a sweep stopped early still has both defenses on the same images
        return [RunSpec(m, index=i, model=model, defense=defense, defense_param=param, overrides=equal_budget(m),
                        tag=f"{m} {defense}={param}")
                for i in indices for defense, param in (("noise", 0.01), ("compression", 0.1)) for m in METHODS]
    raise SystemExit(f"unknown table {table!r}")


def summarise(records: list[dict]) -> list[dict]:
    """gifd_lite.reproduce's rows (mean ± 95% CI per cell) plus each cell's iteration count."""
    rows = reproduce.summarise(records)
    for row in rows:
        row["iterations"] = next(r["iterations"] for r in records if r["spec"]["tag"] == row["cell"])
    return rows


def fmt(v, digits=2):
    if v is None:
        return "n/a"
    m, h = v
    return f"{m:.{digits}f} ± {h:.{digits}f}" if math.isfinite(h) else f"{m:.{digits}f}"


def write_markdown(table: str, rows: list[dict], records: list[dict], path: Path, command: str):
    lines = [f"# GAN-prior attacks: table `{table}`", "", f"Regenerate: `{command}`", "",
             "Mean ± half-width of the 95% t confidence interval over images; LPIPS is n/a where its AlexNet "
             "weights could not be downloaded (offline machine). Times are wall-clock on a 2-core CPU that was "
             "sometimes shared with other jobs; `python -m gifd_lite bench` measures per-iteration cost cleanly.", "",
             "| cell | n | PSNR (dB) | SSIM | LPIPS | iterations | s / image | s / it | GIFD best layers |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['cell']} | {r['n']} | {fmt(r['psnr'])} | {fmt(r['ssim'], 3)} | {fmt(r['lpips'], 3)} | "
                     f"{r['iterations']} | {fmt(r['seconds'], 0)} | {fmt(r['seconds_per_iteration'], 3)} | "
                     f"{r['best_layers'] or ''} |")
    lines += ["", "Per image (PSNR dB):", "", "| cell | " + " | ".join(str(i) for i in _indices(records)) + " |",
              "|---|" + "---|" * len(_indices(records))]
    by = defaultdict(dict)
    for r in records:
        by[r["spec"]["tag"]][r["spec"]["index"]] = r["psnr"]
    for tag, vals in by.items():
        lines.append(f"| {tag} | " + " | ".join(f"{vals[i]:.1f}" if i in vals else "" for i in _indices(records)) + " |")
    lines += paired_lines(records)
    lines += stage_lines(records)
    lines += quote_lines(rows, records)
    if records:
        r0 = records[0]
        threads = defaultdict(int)
        for r in records:
            threads[r.get("threads", "not recorded (torch's default: 2)")] += 1
        lines += ["", f"gifd_lite {r0['version']}, torch {r0['torch']}, on this project's 2-core CPU (no GPU); torch threads "
                      "per run: " + ", ".join(f"{k} ({v} runs)" for k, v in threads.items()) + ". The thread count changes "
                      "floating-point summation order, and these optimisations are chaotic, so a rerun with another "
                      "count gives different per-image numbers."]
    path.write_text("\n".join(lines) + "\n")


def paired_lines(records: list[dict]) -> list[str]:
    """GIFD minus each other method on the same image (paired), per setting: mean ± 95% CI and wins."""
    by = defaultdict(dict)
    for r in records:
        by[r["spec"]["tag"]][r["spec"]["index"]] = r["psnr"]
    out = []
    for tag in sorted(t for t in by if t.split()[0] == "gifd"):
        suffix = tag[len("gifd"):]
        for other in METHODS[:-1]:
            theirs = by.get(other + suffix, {})
            common = sorted(set(by[tag]) & set(theirs))
            if len(common) < 2:
                continue
            if not out:
                out += ["", "GIFD minus each other attack on the same images (paired PSNR difference, dB):", "",
                        "| GIFD vs | n | mean difference | GIFD higher on |", "|---|---|---|---|"]
            diffs = [by[tag][i] - theirs[i] for i in common]
            out.append(f"| {other + suffix} | {len(common)} | {fmt(reproduce.mean_ci(diffs))} | "
                       f"{sum(d > 0 for d in diffs)} of {len(common)} |")
    return out


def stage_lines(records: list[dict]) -> list[str]:
    """GIFD per stage (the paper's 'deeper stages help up to a point'): PSNR and gradient loss of each stage's best
    restart, and how often the lowest-loss stage (GIFD's choice) is also the stage with the highest PSNR."""
    out = []
    for tag in sorted({r["spec"]["tag"] for r in records if r["method"] == "gifd"}):
        recs = [r for r in records if r["spec"]["tag"] == tag and r.get("stages")]
        if not recs:
            continue
        names = [st["stage"] for st in recs[0]["stages"]]
        out += ["", f"GIFD per stage (`{tag}`, n = {len(recs)}; each stage's best restart):", "",
                "| stage | PSNR (dB) | gradient loss |", "|---|---|---|"]
        for j, name in enumerate(names):
            out.append(f"| {name} | {fmt(reproduce.mean_ci([r['stages'][j]['psnr'] for r in recs]))} | "
                       f"{fmt(reproduce.mean_ci([r['stages'][j]['gradient_loss'] for r in recs]), 4)} |")
        agree = sum(max(r["stages"], key=lambda st: st["psnr"])["stage"] == r["best_layer"] for r in recs)
        out += ["", f"The lowest-loss stage was also the highest-PSNR stage in {agree} of {len(recs)} runs."]
    return out


def quote_lines(rows: list[dict], records: list[dict]) -> list[str]:
    """The page's numbers as ``key: value`` lines of a ``quote`` block, for the lessons' quote tags
    (gifd_lite.results): ``<cell> psnr`` / ``psnr ci`` / ``n``, ``gifd - <cell>`` (paired mean) / ``ci`` /
    ``higher``, and ``<gifd cell> stage <name> psnr`` / ``psnr ci``."""
    pairs = []
    for r in rows:
        if r["psnr"] is not None:
            pairs += [(f"{r['cell']} psnr", r["psnr"][0]), (f"{r['cell']} psnr ci", r["psnr"][1]),
                      (f"{r['cell']} n", r["n"])]
    by = defaultdict(dict)
    for r in records:
        by[r["spec"]["tag"]][r["spec"]["index"]] = r
    for tag in sorted(t for t in by if t.split()[0] == "gifd"):
        suffix = tag[len("gifd"):]
        for other in METHODS[:-1]:
            common = sorted(set(by[tag]) & set(by.get(other + suffix, {})))
            if len(common) >= 2:
                diffs = [by[tag][i]["psnr"] - by[other + suffix][i]["psnr"] for i in common]
                m, h = reproduce.mean_ci(diffs)
                pairs += [(f"{tag} - {other + suffix}", m), (f"{tag} - {other + suffix} ci", h),
                          (f"{tag} - {other + suffix} higher", sum(d > 0 for d in diffs))]
        recs = [r for r in by[tag].values() if r.get("stages")]
        for j, st in enumerate(recs[0]["stages"] if recs else []):
            m, h = reproduce.mean_ci([r["stages"][j]["psnr"] for r in recs])
            pairs += [(f"{tag} stage {st['stage']} psnr", m), (f"{tag} stage {st['stage']} psnr ci", h)]
    if not pairs:
        return []
    return ["", "```quote"] + [f"{k}: {v}" if isinstance(v, int) else f"{k}: {v:.6f}" for k, v in pairs] + ["```"]


def _indices(records):
    return sorted({r["spec"]["index"] for r in records})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--table", required=True, choices=["main", "batch4", "defenses"])
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--model", default="resnet18", choices=["convnet", "resnet18"],
                        help="the FL model (issue 4 asks for resnet18; convnet is 10x cheaper here)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "results"))
    parser.add_argument("--report", action="store_true", help="only rewrite the table from the records so far")
    parser.add_argument("--only", type=int, nargs="*", help="run only these test indices (e.g. a second worker "
                        "with its own --out; append its records to the main file afterwards)")
    args = parser.parse_args()
    set_threads()  # GIFD_THREADS; the thread count is stored in each record
    out = Path(args.out)
    name = f"gifd_{args.table}" + ("" if args.model == "resnet18" else f"_{args.model}")
    runs = out / "runs" / f"{name}.jsonl"

    def show(r):
        print(f"{r['spec']['tag']:32s} image {r['spec']['index']:5d}  {r['psnr']:6.2f} dB  {r['seconds']:7.1f} s"
              f"  {r.get('best_layer') or ''}", flush=True)

    specs = specs_for(args.table, args.images, args.model)
    if not args.report:
        sweep([s for s in specs if args.only is None or s.index in args.only], runs, on_record=show)
    wanted = {s.key() for s in specs}
    records = [r for r in read_records(runs) if RunSpec.of(r).key() in wanted]
    if args.report and not records:
        # the committed table was made before issue 15's fixes (RunSpec.protocol 1), which no new run stands in
        # for: rewrite the page from those records as they are, so that it (and its quote block) stays theirs
        cells = {(s.tag, s.index, s.model) for s in specs}
        records = [r for r in read_records(runs) if RunSpec.of(r).protocol == 1
                   and (r["spec"]["tag"], r["spec"]["index"], r["spec"]["model"]) in cells]
    command = f"GIFD_DATA=../shared/data .venv/bin/python tools/measure_gan_attacks.py --table {args.table} --images {args.images}" + \
        ("" if args.model == "resnet18" else f" --model {args.model}")
    write_markdown(f"{args.table} ({args.model})", summarise(records), records, out / f"{name}.md", command)
    print(f"wrote {out / f'{name}.md'} ({len(records)} runs)")


if __name__ == "__main__":
    main()
