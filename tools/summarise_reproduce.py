"""The committed ``reproduce`` tables as one quotable record each: ``docs/results/<dir>/summary.json``.

    .venv/bin/python tools/summarise_reproduce.py [--check]

Reads the committed run records ``docs/results/reproduce/<table>.jsonl`` (and ``reproduce_resnet18/``) and
writes, per table, every cell's mean ± 95% CI (PSNR, SSIM, LPIPS, each GIFD stage, and each stage minus the same
runs' output, paired: ``stage_minus_output``), its mean final gradient loss and seconds per iteration, and the
paired differences the
lessons quote (``gifd_lite.paired``): GIFD minus each other attack in the same setting, each radius minus no
ball, each label mapping minus none, each stop minus the full run, the adaptive attacker minus the plain one,
the unrolling attacker minus the plain one; for ``reproduce_strong/`` and ``reproduce_ms/`` (other priors) also each cell minus the
same cell of ``reproduce/`` (``versus_default_prior``), and for ``defenses`` each cell minus the same attack on the
clean update of ``main`` (``versus_clean``) and how far the cosine attacks' runs that pose the same problem differ
(``same_problem``: the clean run and the four clipping cells); a re-run table keeps what its replaced records said under
``previous``. Nothing is measured: the file is a function of the records.

Cell names lose their ``|`` (a quote tag splits on it): ``gifd | B=4`` is ``gifd B=4``, and a comparison is
``"<cell> - <reference>"``. A lesson quotes, e.g. ``+1.84<!-- q reproduce/summary.json | batch | paired |
gifd B=4 - ig B=4 | mean | sign -->`` (``gifd_lite.results``). ``--check`` fails if a committed summary
differs from what the records give (tests/test_paired.py runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gifd_lite.experiments import is_current, read_records  # noqa: E402
from gifd_lite.paired import cell_key, compare_cells, load_records, mean_ci, paired_difference, values  # noqa: E402
from gifd_lite.reproduce import _agrees_with_oracle  # noqa: E402

OTHER_PRIOR_DIRS = ("reproduce_strong", "reproduce_ms")     # tables made with another prior than each scenario's
DIRS = ("reproduce", "reproduce_resnet18", *OTHER_PRIOR_DIRS)
PAIRED_KEYS = ("n", "mean", "ci", "higher", "lower", "wilcoxon_p")     # what a paired entry keeps of the test


def _method(tag: str) -> str:
    return tag.split(" | ")[0]


def _setting(tag: str) -> str | None:
    return tag.split(" | ", 1)[1] if " | " in tag else None


def pairs(table: str, cells: list[str]) -> list[tuple[str, str]]:
    """(cell, reference) for every comparison the summary carries, in the table's order."""
    out = []
    for c in cells:
        method, setting = _method(c), _setting(c)
        if table == "radius" and c != "gifd | radius=None":
            out.append((c, "gifd | radius=None"))
        elif table == "stages" and c != cells[-1]:
            out.append((c, cells[-1]))
        elif table == "label_mapping":
            if method == "gifd" and c != "gifd | mapping=none":
                out.append((c, "gifd | mapping=none"))
            elif method != "gifd" and f"gifd | {setting}" in cells:
                out.append((f"gifd | {setting}", c))
        elif table not in ("radius", "stages") and method != "gifd":
            ref = "gifd" if setting is None else f"gifd | {setting}"
            if ref in cells:
                out.append((ref, c))
        if setting and setting.endswith(" adaptive") and c.removesuffix(" adaptive") in cells:
            out.append((c, c.removesuffix(" adaptive")))
        if setting and setting.endswith(" unrolled") and c.removesuffix(" unrolled") in cells:
            out.append((c, c.removesuffix(" unrolled")))
    return out


def _stage_names(records: list[dict], cell: str) -> list[str]:
    names = []
    for r in records:
        if r["spec"]["tag"] == cell:
            names += [s["stage"] for s in r.get("stages", []) if s["stage"] not in names]
    return names


def summarise_table(records: list[dict]) -> dict:
    cells = list(dict.fromkeys(r["spec"]["tag"] for r in records))
    out = {"cells": {}, "paired": {}}
    for c in cells:
        rs = [r for r in records if r["spec"]["tag"] == c]
        row = {"n": len(rs)}
        for key in ("psnr", "ssim", "lpips"):        # LPIPS where every run of the cell has it (issue 19)
            if all(r.get(key) is not None for r in rs):
                row[key], row[f"{key}_ci"] = mean_ci([r[key] for r in rs])
        for key in ("gradient_loss", "seconds_per_iteration"):   # where the attack ended, and what a step cost
            if all(r.get(key) is not None for r in rs):
                row[key] = sum(r[key] for r in rs) / len(rs)
        mapped = [r for r in rs if r.get("label_mapping")]
        if mapped:                                   # how many runs conditioned on the oracle's GAN class
            row["picked_oracle_class"] = sum(_agrees_with_oracle(r) for r in mapped)
        stages = {}
        for name in _stage_names(records, c):
            vals = [s["psnr"] for r in rs for s in r.get("stages", []) if s["stage"] == name and s.get("psnr") is not None]
            stages[name] = dict(zip(("mean", "ci"), mean_ci(vals)))
        if stages:
            row["stages"] = stages
            row["stage_minus_output"] = stage_minus_output(records, c)
        out["cells"][cell_key(c)] = row
    return out, cells


def stage_minus_output(records: list[dict], cell: str) -> dict:
    """Within the same GIFD runs, each stage's PSNR minus the run's output, paired over images: what stopping at
    that stage would have given against what the stage choice gave (each stage's entry is that stage's
    lowest-loss candidate over the restarts, without the refit a held-out choice makes; under the lowest-loss rule
    the deepest stage's row is zero wherever the output is that stage)."""
    output = values(records, cell)
    out = {}
    for name in _stage_names(records, cell):
        stage = values(records, cell, stage=name)
        common = [k for k in stage if k in output]
        if len(common) >= 2:
            p = paired_difference([stage[k] for k in common], [output[k] for k in common])
            out[name] = {k: p[k] for k in PAIRED_KEYS}
    return out


def _entry(records: list[dict], cell: str, ref: str) -> dict:
    """The paired difference cell − reference (PSNR), and per GIFD stage both cells have."""
    cmp = compare_cells(records, cell, ref)
    entry = {k: cmp["paired"][k] for k in ("n", "mean", "ci", "higher", "lower", "t", "p", "wilcoxon_p")}
    entry["intervals_overlap"] = cmp["intervals_overlap"]
    common = [n for n in _stage_names(records, cell) if n in _stage_names(records, ref)]
    if common:
        entry["stages"] = {}
        for name in common:
            p = compare_cells(records, cell, ref, stage=name)["paired"]
            entry["stages"][name] = {k: p[k] for k in PAIRED_KEYS}
    return entry


def versus(records: list[dict], reference: list[dict], match, label: str) -> dict:
    """Each cell of ``records`` minus the cell ``match(cell)`` of another table's ``reference`` records, paired on
    the same images, keyed ``"<cell> - <label>"``; only cells whose records are all current on both sides (one
    protocol), and only images both have."""
    hashes: dict = {}
    out = {}
    for cell in dict.fromkeys(r["spec"]["tag"] for r in records):
        ours = [r for r in records if r["spec"]["tag"] == cell]
        theirs = [r for r in reference if r["spec"]["tag"] == match(cell)]
        if not theirs or not all(is_current(r, hashes) for r in ours + theirs):
            continue
        tagged = ours + [{**r, "spec": {**r["spec"], "tag": label}} for r in theirs]
        out[f"{cell_key(cell)} - {label}"] = _entry(tagged, cell, label)
    return out


def versus_default_prior(records: list[dict], default: list[dict]) -> dict:
    """A table run with another prior (``reproduce_strong``, ``reproduce_ms``) minus the same cell of the default prior's table."""
    return versus(records, default, lambda cell: cell, "default prior")


def versus_clean(defended: list[dict], main: list[dict]) -> dict:
    """What each defense costs an attack: a ``defenses`` cell (``gifd | noise=0.01``) minus the same attack on the
    undefended update of the ``main`` table (``gifd``), which has the same images, seeds and budget."""
    return versus(defended, main, lambda cell: cell.split(" | ")[0], "clean")


def same_problem(defended: list[dict], main: list[dict], methods=("ig", "gifd")) -> dict:
    """How far runs that pose the *same* problem differ (``defenses`` only): clipping scales the whole update (and,
    mirrored, the dummy gradient) by a positive number, which a cosine distance ignores, so for the cosine attacks
    the clean run and the four clipping cells (1.0, 0.1, plain and adaptive) differ only by float rounding, which a
    long non-convex search amplifies. Per method: ``spread``, the mean over images of the standard deviation of
    those five runs' PSNR, and ``clean - clipped``, the clean run minus the mean of its four clipped siblings,
    paired (a baseline below its siblings lifts every comparison against it)."""
    import statistics

    hashes: dict = {}
    out = {}
    for method in methods:
        clean = {(r["spec"]["index"], r["spec"]["seed"]): r["psnr"] for r in main
                 if r["spec"]["tag"] == method and is_current(r, hashes)}
        siblings: dict = {}
        for r in defended:
            tag = r["spec"]["tag"]
            if tag.split(" | ")[0] == method and r["spec"]["defense"] == "clipping" and is_current(r, hashes):
                siblings.setdefault((r["spec"]["index"], r["spec"]["seed"]), {})[tag] = r["psnr"]
        cells = {tag for runs in siblings.values() for tag in runs}
        full = [k for k in clean if len(siblings.get(k, {})) == len(cells)]
        if not cells or len(full) < 2:
            continue
        spreads = [statistics.stdev([clean[k], *siblings[k].values()]) for k in full]
        mean_siblings = [statistics.mean(siblings[k].values()) for k in full]
        entry = paired_difference([clean[k] for k in full], mean_siblings)
        out[method] = {"images": len(full), "runs_per_image": 1 + len(cells), "spread": statistics.mean(spreads),
                       "clean - clipped": {k: entry[k] for k in PAIRED_KEYS}}
    return out


def summarise_with_pairs(table: str, records: list[dict]) -> dict:
    table_summary, cells = summarise_table(records)
    for cell, ref in pairs(table, cells):
        table_summary["paired"][f"{cell_key(cell)} - {cell_key(ref)}"] = _entry(records, cell, ref)
    return table_summary


def previous_records(path: Path) -> list[dict]:
    """The records of the earlier protocol or prior that a re-run replaced (the last one per run), so a table
    re-measured with the current code can be read beside what it said before (``previous``)."""
    hashes: dict = {}
    shown = {}
    for r in read_records(path):
        if not is_current(r, hashes):
            shown[(r["spec"]["tag"], r["spec"]["index"], r["spec"]["seed"])] = r
    return list(shown.values())


def summarise(directory: Path) -> dict:
    summary = {"_about": "made by tools/summarise_reproduce.py from the .jsonl records beside it; "
                         "mean ± 95% t-CI, paired differences on the same (image, seed); previous: the same from the records "
                         "of an earlier protocol or prior that a re-run replaced"
                         + ("; versus_default_prior: each cell minus the same cell of ../reproduce/ (the default "
                            "prior), same images" if directory.name in OTHER_PRIOR_DIRS else "")
                         + ("; defenses versus_clean: each cell minus the same attack in main (the clean update), "
                            "same images; defenses same_problem: for IG and GIFD (cosine), the spread of the five runs "
                            "per image that differ only by float rounding (clean and the four clipping cells) and the "
                            "clean run minus their mean" if (directory / "defenses.jsonl").is_file() else "")}
    for path in sorted(directory.glob("*.jsonl")):
        records = load_records(path)
        if not records:
            continue
        table_summary = summarise_with_pairs(path.stem, records)
        earlier = previous_records(path)
        if earlier and earlier != records:
            table_summary["previous"] = summarise_with_pairs(path.stem, earlier)
        default = directory.parent / "reproduce" / path.name
        if directory.name in OTHER_PRIOR_DIRS and default.is_file():
            against = versus_default_prior(records, load_records(default))
            if against:
                table_summary["versus_default_prior"] = against
        main_table = directory / "main.jsonl"
        if path.stem == "defenses" and main_table.is_file():
            against = versus_clean(records, load_records(main_table))
            if against:
                table_summary["versus_clean"] = against
            spread = same_problem(records, load_records(main_table))
            if spread:
                table_summary["same_problem"] = spread
        summary[path.stem] = table_summary
    return summary


def _dump(summary: dict) -> str:
    def clean(v):
        if isinstance(v, float):
            return None if v != v else round(v, 6)
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(summary), indent=1, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed summaries, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for name in DIRS:
        directory = ROOT / "docs" / "results" / name
        if not directory.is_dir():
            continue
        text = _dump(summarise(directory))
        target = directory / "summary.json"
        if args.check:
            if not target.is_file() or target.read_text() != text:
                stale.append(str(target.relative_to(ROOT)))
        else:
            target.write_text(text)
            print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print("out of date (run tools/summarise_reproduce.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
