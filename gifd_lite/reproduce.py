"""Reproducing the paper's tables at any scale (notebook 09): named sweeps, resumable, local or on Dask.

A table is a list of :class:`~gifd_lite.experiments.RunSpec` (attack × setting × image × seed). Every finished
run is appended to ``OUT/<table>.jsonl`` at once, so an interrupted sweep resumes where it stopped; the
records aggregate to mean ± 95% confidence interval per cell, written as markdown and CSV.

    python -m gifd_lite reproduce --table main --preset smoke [--images N] [--seeds S]
                                  [--backend local|dask] [--scheduler ADDRESS] [--out DIR]
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import defaultdict
from pathlib import Path

from .config import get_preset
from .errors import GifdError
from .experiments import RunSpec, current_records, run_spec
from .pipeline import GENERATIVE_METHODS

__all__ = ["TABLES", "table_specs", "run_table", "recorded", "summarise", "paired_differences", "write_table",
           "plot_table", "mean_ci", "display_cell", "gallery_groups"]

METHODS = ("ig", "ggl", "gias", "gifd")


def _budget(preset: str) -> int:
    return get_preset(preset).gifd.total_iterations


def _equal(method: str, preset: str) -> dict:
    """IG gets GIFD's total iterations; the presets give GGL and GIAS the same budget already."""
    return {"ig": {"iterations": _budget(preset), "restarts": 1}} if method == "ig" else {}


def _main(preset, indices, seeds):
    return [RunSpec(m, index=i, preset=preset, seed=s, overrides=_equal(m, preset), tag=m)
            for s in seeds for i in indices for m in METHODS]


def _batch(preset, indices, seeds):
    return [RunSpec(m, index=i, preset=preset, seed=s, batch_size=b, overrides=_equal(m, preset), tag=f"{m} | B={b}")
            for s in seeds for i in indices for b in (1, 4, 8) for m in ("ig", "gifd")]


def _fedavg(preset, indices, seeds):
    """FedAvg updates of T local steps; the plain attacker treats the update as one gradient, the adaptive one
    unrolls the T steps (T times the cost per iteration)."""
    plain = [RunSpec(m, index=i, preset=preset, seed=s, fedavg_steps=t, overrides=_equal(m, preset), tag=f"{m} | T={t}")
             for s in seeds for i in indices for t in (1, 5, 10) for m in ("ig", "gifd")]
    unrolled = [RunSpec(m, index=i, preset=preset, seed=s, fedavg_steps=5, adaptive=True, overrides=_equal(m, preset),
                        tag=f"{m} | T=5 unrolled") for s in seeds for i in indices for m in ("ig", "gifd")]
    return plain + unrolled


DEFENSE_STRENGTHS = {"noise": (0.001, 0.01), "clipping": (1.0, 0.1), "compression": (0.3, 0.1), "soteria": (0.2, 0.6)}


def _defenses(preset, indices, seeds):
    out = []
    for name, params in DEFENSE_STRENGTHS.items():
        for p in params:
            for adaptive in ((False, True) if name != "noise" else (False,)):
                out += [RunSpec(m, index=i, preset=preset, seed=s, defense=name, defense_param=p, adaptive=adaptive,
                                overrides=_equal(m, preset),
                                tag=f"{m} | {name}={p}{' adaptive' if adaptive else ''}")
                        for s in seeds for i in indices for m in ("ig", "ggl", "gifd")]
    return out


def _stages(preset, indices, seeds):
    cfg = get_preset(preset).gifd
    out = []
    for last in range(len(cfg.stages)):
        keep = slice(0, last + 1)
        o = {"gifd": {"stages": list(cfg.stages[keep]), "iterations": list(cfg.iterations[keep]),
                      "lr": list(cfg.lr[keep]), "radius": list(cfg.radius[keep])}}
        out += [RunSpec("gifd", index=i, preset=preset, seed=s, overrides=o, tag=f"gifd | stop after stage {last}")
                for s in seeds for i in indices]
    return out


def _radius(preset, indices, seeds):
    n = len(get_preset(preset).gifd.stages)
    return [RunSpec("gifd", index=i, preset=preset, seed=s, overrides={"gifd": {"radius": [None] + [r] * (n - 1)}},
                    tag=f"gifd | radius={r}")
            for s in seeds for i in indices for r in (None, 1.0, 0.3, 0.1, 0.03)]


def _ood(preset, indices, seeds):
    disjoint = [RunSpec(m, index=i, preset=preset, seed=s, scenario="ood-disjoint", label_mapping="oracle",
                        overrides=_equal(m, preset), tag=f"{m} | ood-disjoint")
                for s in seeds for i in indices for m in METHODS]
    from .scenarios import CROSS_DOMAIN_IMAGES

    cross = [RunSpec(m, index=i, preset=preset, seed=s, scenario="cross-domain", overrides=_equal(m, preset),
                     tag=f"{m} | cross-domain")
             for s in seeds for i in range(min(len(CROSS_DOMAIN_IMAGES), len(indices))) for m in METHODS]
    return disjoint + cross


def _label_mapping(preset, indices, seeds):
    return [RunSpec("gifd", index=i, preset=preset, seed=s, scenario="ood-disjoint", label_mapping=m,
                    tag=f"gifd | mapping={m}")
            for s in seeds for i in indices for m in ("none", "gradient", "model", "soft", "oracle")] + \
           [RunSpec("ggl", index=i, preset=preset, seed=s, scenario="ood-disjoint", label_mapping="oracle",
                    overrides=_equal("ggl", preset), tag="ggl | mapping=oracle") for s in seeds for i in indices]


TABLES = {"main": _main, "batch": _batch, "fedavg": _fedavg, "defenses": _defenses, "stages": _stages,
          "radius": _radius, "ood": _ood, "label_mapping": _label_mapping}


def table_specs(table: str, preset: str, images: int | None = None, seeds: int = 1,
                model: str = "resnet18", select: str = "auto", prior: str | None = None) -> list[RunSpec]:
    """The runs of a named table: ``images`` test images (5, 1005, ...; the ood tables use every 500th image
    of the FL task's 5000), seeds 0..seeds-1, attacking the FL ``model`` (the paper's ResNet-18 by default;
    the ConvNet is about ten times cheaper on a CPU), GIFD choosing its stage by ``select``, and every
    generative attack drawing on ``prior`` (default: each scenario's own, ``cifar10`` or ``cifar10-5``)."""
    if table not in TABLES:
        raise GifdError(f"unknown table {table!r}: choose one of {', '.join(TABLES)}")
    images = images or get_preset(preset).n_images
    if images < 1 or seeds < 1:
        raise GifdError("--images and --seeds must be at least 1")
    step = 500 if table in ("ood", "label_mapping") else 1000
    indices = [(5 + step * k) % (5000 if step == 500 else 10000) for k in range(images)]
    from dataclasses import replace

    specs = [replace(spec, model=model, **({"select": select} if spec.method == "gifd" else {}),
                     **({"prior": prior} if prior and spec.method in GENERATIVE_METHODS else {}))
             for spec in TABLES[table](preset, indices, list(range(seeds)))]
    # image by image (stable, so each image keeps the table's cell order): a sweep stopped early has every
    # cell measured on the same images
    return sorted(specs, key=lambda s: (s.seed, s.index))


# ---------------------------------------------------------------- running

_WORKER_CONTEXT = None


def _run_on_worker(spec_dict: dict, keep_images: bool = False) -> dict:
    """A Dask task: one run, with the worker's datasets, priors and models loaded once per process."""
    global _WORKER_CONTEXT
    import torch

    from .experiments import Context

    if _WORKER_CONTEXT is None:
        torch.set_num_threads(1)
        _WORKER_CONTEXT = Context("cpu")
    return run_spec(RunSpec(**spec_dict), _WORKER_CONTEXT, keep_images=keep_images)


def run_table(specs: list[RunSpec], out: str | Path, backend: str = "local", scheduler: str | None = None,
              workers: int = 2, on_record=None, images_dir: str | Path | None = None) -> list[dict]:
    """Run every spec not yet in ``out``; ``dask`` sends them to a cluster (``scheduler`` address, or a local
    cluster of ``workers`` single-thread processes) and appends each record as it arrives. With ``images_dir``
    every run's truth and reconstruction are kept there (the table's gallery, :mod:`gifd_lite.gallery`)."""
    from dataclasses import asdict

    from .experiments import end_cut_line, keep_picture, sweep

    if backend == "local":
        return sweep(specs, out, images_dir=images_dir, on_record=on_record)
    if backend != "dask":
        raise GifdError(f"unknown backend {backend!r}: use local or dask")
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise GifdError("the dask backend needs the distributed extra: pip install 'gifd_lite[distributed]'") from None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = current_records(out)
    todo = [s for s in specs if s.key() not in done]
    end_cut_line(out)
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        futures = client.map(_run_on_worker, [asdict(s) for s in todo], keep_images=images_dir is not None, pure=False)
        for future in as_completed(futures):
            record = keep_picture(future.result(), images_dir)
            with out.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            done[RunSpec.of(record).key()] = record
            if on_record is not None:
                on_record(record)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return [done[s.key()] for s in specs]


def recorded(specs: list[RunSpec], out: str | Path) -> list[dict]:
    """The records in ``out`` of the runs in ``specs``, in the table's order, without running anything (a
    partial table, or a table rendered again after a change to the report)."""
    done = current_records(out)
    return [done[s.key()] for s in specs if s.key() in done]


# ---------------------------------------------------------------- aggregating

def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student-t confidence interval (nan for a single value)."""
    from scipy.stats import t

    n = len(values)
    m = sum(values) / n
    if n < 2:
        return m, float("nan")
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    return m, float(t.ppf(0.975, n - 1) * sd / math.sqrt(n))


def summarise(records: list[dict]) -> list[dict]:
    """One row per table cell (the spec's tag): n, and mean ± CI of PSNR, SSIM, LPIPS, seconds."""
    cells = defaultdict(list)
    for r in records:
        cells[r["spec"]["tag"]].append(r)
    rows = []
    for tag, rs in cells.items():
        row = {"cell": tag, "n": len(rs)}
        for key in ("psnr", "ssim", "lpips", "seconds", "seconds_per_iteration"):
            vals = [r[key] for r in rs if r.get(key) is not None]
            row[key] = mean_ci(vals) if vals else None
        layers = [r["best_layer"] for r in rs if r.get("best_layer")]
        row["best_layers"] = ", ".join(f"{k}: {layers.count(k)}" for k in sorted(set(layers)))
        row["stages"] = _stage_means(rs)
        agree = [_agrees_with_oracle(r) for r in rs if r.get("label_mapping")]
        row["oracle_agreement"] = (sum(agree), len(agree)) if agree else None
        rows.append(row)
    return rows


def _stage_means(records: list[dict]) -> dict | None:
    """GIFD cells: stage name -> (mean, CI) of the PSNR its best restart would give (None for other attacks)."""
    per_stage = defaultdict(list)
    for r in records:
        for st in r.get("stages", []):
            if st.get("psnr") is not None:
                per_stage[st["stage"]].append(st["psnr"])
    return {name: mean_ci(v) for name, v in per_stage.items()} or None


def _agrees_with_oracle(record: dict) -> bool:
    """Did the label mapping condition every image on the oracle's (semantically closest) GAN class?"""
    from .gan.checkpoint import read_manifest
    from .label_mapping import oracle_class
    from .scenarios import get_scenario

    spec = record["spec"]
    scenario = get_scenario(spec.get("scenario", "in-distribution"))
    gan_names = read_manifest()[spec.get("prior") or scenario.prior]["classes"]
    oracle = [oracle_class(scenario.task_classes[y], gan_names) for y in record["true_labels"]]
    return record["label_mapping"]["gan_classes"] == oracle


def _reference(table: str, cell: str, cells: list[str]) -> str:
    """The cell another cell is compared with, image by image: GIFD in the same setting (``method | setting``
    tags), no mapping (label_mapping), no ball (radius), or all stages (stages)."""
    if table == "label_mapping":
        return "gifd | mapping=none"
    if table == "radius":
        return "gifd | radius=None"
    if table == "stages":
        return cells[-1]
    return f"gifd | {cell.split(' | ', 1)[1]}" if " | " in cell else "gifd"


def paired_differences(table: str, records: list[dict]) -> list[dict]:
    """PSNR of each cell minus its reference cell's on the same image and seed: mean ± 95% CI, on how many
    of the pairs the cell was higher, and the Wilcoxon signed-rank p (:func:`gifd_lite.paired.paired_difference`).
    Paired differences remove the image-to-image spread that makes the per-cell intervals wide."""
    from .paired import paired_difference

    by_cell = defaultdict(dict)
    for r in records:
        by_cell[r["spec"]["tag"]][(r["spec"]["index"], r["spec"]["seed"])] = r
    cells = list(by_cell)
    out = []
    for cell in cells:
        ref = _reference(table, cell, cells)
        if ref == cell or ref not in by_cell:
            continue
        pairs = [(by_cell[cell][k], by_cell[ref][k]) for k in by_cell[cell] if k in by_cell[ref]]
        if not pairs:
            continue
        test = paired_difference([a["psnr"] for a, _ in pairs], [b["psnr"] for _, b in pairs])
        row = {"cell": cell, "reference": ref, "n": test["n"], "difference": (test["mean"], test["ci"]),
               "higher": test["higher"], "wilcoxon_p": test["wilcoxon_p"], "stages": None}
        stage_diffs = defaultdict(list)           # both GIFD: the same comparison at every stage
        for a, b in pairs:
            sa, sb = ({s["stage"]: s.get("psnr") for s in r.get("stages", [])} for r in (a, b))
            for name in sa:
                if sa[name] is not None and sb.get(name) is not None:
                    stage_diffs[name].append(sa[name] - sb[name])
        if stage_diffs and all(len(v) == len(pairs) for v in stage_diffs.values()):
            row["stages"] = {name: mean_ci(v) for name, v in stage_diffs.items()}
        out.append(row)
    return out


def display_cell(cell: str) -> str:
    """A cell's name as the papers write it: ``compression=0.1`` (the fraction kept) reads "compression kept 10%
    (90% pruned)"; every other name is shown as it is."""
    def kept(match: re.Match) -> str:
        p = float(match.group(1))
        return f"compression kept {100 * p:.0f}% ({100 * (1 - p):.0f}% pruned)"

    return re.sub(r"compression=([0-9.]+)", kept, cell)


def _md(cell: str) -> str:
    return display_cell(cell).replace("|", "\\|")           # a cell name inside a markdown table


def _fmt(v, digits=2):
    if v is None:
        return "n/a"
    m, h = v
    return f"{m:.{digits}f} ± {h:.{digits}f}" if math.isfinite(h) else f"{m:.{digits}f}"


def _p(p: float) -> str:
    return "n/a" if not math.isfinite(p) else f"{p:.3f}" if p >= 0.001 else "< 0.001"


def _stage_lines(caption: str, columns: list[str], items: list[dict], label) -> list[str]:
    """A markdown table of ``item["stages"]`` (stage name -> mean, CI), one row per item that has stages."""
    staged = [it for it in items if it["stages"]]
    if not staged:
        return []
    names = list(dict.fromkeys(name for it in staged for name in it["stages"]))
    head = columns + names
    lines = ["", caption, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join([_md(c) for c in label(it)] + [_fmt(it["stages"][n]) if n in it["stages"] else "—"
                                                                      for n in names]) + " |" for it in staged]


def gallery_groups(table: str, cells: list[str]) -> dict[str, list[str]]:
    """The cells each gallery figure shows: one figure per defense for ``defenses`` (its 42 cells would make one
    figure 43 rows tall), one per batch size for ``batch`` (a batch of 8 fills a row by itself), one figure
    (group ``""``) for every other table."""
    if table not in ("defenses", "batch"):
        return {"": cells}
    groups: dict[str, list[str]] = {}
    for cell in cells:
        setting = cell.split(" | ", 1)[1] if " | " in cell else "none"
        groups.setdefault(setting if table == "batch" else setting.split("=")[0], []).append(cell)
    return groups


def write_table(table: str, rows: list[dict], out_dir: str | Path, command: str,
                records: list[dict] | None = None) -> tuple[Path, Path]:
    """``<table>.md`` (with the command that regenerates it) and ``<table>.csv`` in ``out_dir``; with the
    ``records``, the markdown also gets the paired differences (:func:`paired_differences`), and the gallery
    ``<table>_gallery.png`` (``<table>_gallery_<group>.png`` per :func:`gallery_groups`) when the runs kept their
    pictures in ``<table>_images/``."""
    from .gallery import write_gallery

    out_dir = Path(out_dir)
    md, csv_path = out_dir / f"{table}.md", out_dir / f"{table}.csv"
    galleries = {}
    for group, cells in gallery_groups(table, [r["cell"] for r in rows]).items():
        name = f"{table}_gallery{'_' + group.replace('=', '') if group else ''}.png"
        path = write_gallery(f"{table}, {group}" if group else table, records or [], out_dir / f"{table}_images",
                             out_dir / name, cells=cells)
        if path is not None:
            galleries[group] = path
    lines = [f"# Table `{table}`", "", f"Regenerate: `{command}`", "",
             "Mean ± half-width of the 95% t confidence interval over images and seeds (n runs per cell).", "",
             "| cell | n | PSNR (dB) | SSIM | LPIPS | s / run | best layers |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {_md(r['cell'])} | {r['n']} | {_fmt(r['psnr'])} | {_fmt(r['ssim'], 3)} | {_fmt(r['lpips'], 3)} | "
              f"{_fmt(r['seconds'], 0)} | {r['best_layers']} |" for r in rows]
    lines += _stage_lines("GIFD per stage: mean PSNR (dB) of the best restart at each stage (— : the runs stopped "
                          "before it); GIFD outputs the stage its rule picks (`select`, by default the lowest "
                          "gradient loss, stopping after 16x16 for batches of four or more and choosing on "
                          "held-out entries under noise: notebook 05), listed under best layers.",
                          ["cell"], rows, lambda r: [r["cell"]])
    mapped = [r for r in rows if r["oracle_agreement"]]
    if mapped:
        lines += ["", "Label mapping: runs whose chosen GAN class is the oracle's (semantically closest) class.", "",
                  "| cell | picked the oracle's class |", "|---|---|"]
        lines += [f"| {_md(r['cell'])} | {r['oracle_agreement'][0]} of {r['oracle_agreement'][1]} |" for r in mapped]
    paired = paired_differences(table, records) if records else []
    if paired:
        lines += ["", "Paired on the same images: PSNR of the cell minus PSNR of the reference cell (dB), with the "
                  "Wilcoxon signed-rank test's two-sided p.", "",
                  "| cell | minus | n | mean difference | cell higher on | Wilcoxon p |", "|---|---|---|---|---|---|"]
        lines += [f"| {_md(p['cell'])} | {_md(p['reference'])} | {p['n']} | {_fmt(p['difference'])} | "
                  f"{p['higher']} of {p['n']} | {_p(p['wilcoxon_p'])} |" for p in paired]
    lines += _stage_lines("The same paired difference at every GIFD stage (each stage's best restart; dB):",
                          ["cell", "minus"], paired, lambda p: [p["cell"], p["reference"]])
    if galleries:
        lines += ["", "## Gallery", "", "Ground truth on top; below it each cell's reconstruction of the same image, "
                  "with that run's PSNR, SSIM and LPIPS."]
        for group, path in galleries.items():
            lines += ([""] + ([f"### {group}", ""] if group else []) +
                      [f"![the reconstructions of table {table}{', ' + group if group else ''}]({path.name})"])
    md.write_text("\n".join(lines) + "\n")
    with csv_path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["cell", "n", "psnr", "psnr_ci", "ssim", "ssim_ci", "lpips", "lpips_ci", "seconds", "best_layers"])
        for r in rows:
            vals = [x for key in ("psnr", "ssim", "lpips") for x in (r[key] or (None, None))]
            w.writerow([r["cell"], r["n"], *vals, r["seconds"][0] if r["seconds"] else None, r["best_layers"]])
    return md, csv_path


def plot_table(table: str, rows: list[dict], path: str | Path | None = None, title: str = ""):
    """Mean PSNR per cell with its 95% confidence interval as error bar (notebook 09); saved to ``path`` if given."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(rows)), 3.6))
    means = [r["psnr"][0] for r in rows]
    errs = [r["psnr"][1] if math.isfinite(r["psnr"][1]) else 0.0 for r in rows]
    ax.bar(range(len(rows)), means, yerr=errs, capsize=3, color="tab:blue", alpha=0.8)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([display_cell(r["cell"]) for r in rows], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("PSNR (dB)")
    n = sorted({r["n"] for r in rows})
    ax.set_title(title or f"table {table} (n per cell: {', '.join(map(str, n))})", fontsize=10)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
