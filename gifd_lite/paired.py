"""Paired comparisons of two attacks on the same images (notebook 09; the summaries notebooks 06-08 quote).

Two cells of a table, say IG and GIFD at batch 4, were run on the same images. Each cell's mean has a wide 95%
interval because images differ a lot (one image is easy for every attack, another hard for all). Whether the
two intervals overlap says little about the *difference*: that is a question about the per-image differences
$d_i = a_i - b_i$, whose spread no longer contains the image-to-image spread. The paired estimate is

    $\\bar d \\pm t_{0.975,\\,n-1}\\, s_d / \\sqrt n$,

with $s_d$ the standard deviation of the $d_i$ (the paired t-test's interval; ``scipy.stats.ttest_rel`` gives
the same $t = \\bar d / (s_d/\\sqrt n)$), on how many of the $n$ images $a$ was higher (a sign count that
needs no normality), and the Wilcoxon signed-rank test's two-sided p (``scipy.stats.wilcoxon``: it ranks the
$|d_i|$ and asks whether the positive ones hold more of the rank sum than chance would give; it assumes a
symmetric, not a normal, distribution of differences, so one image far off the others moves it less than the t-test). Overlapping per-cell intervals are compatible with a clear paired difference: batch 4 in
``docs/results/reproduce/batch.md`` is one.

Records are the dicts of a ``reproduce`` results file (``docs/results/reproduce/<table>.jsonl``): a cell is a
spec's ``tag`` (``"gifd | B=4"``), an image is the spec's (``index``, ``seed``).
"""

from __future__ import annotations

import math
from pathlib import Path

from .reproduce import mean_ci   # the tables' mean ± 95% t-interval, shared

__all__ = ["mean_ci", "paired_difference", "values", "compare_cells", "load_records", "plot_paired", "cell_key",
           "paired_explorer"]


def paired_difference(a: list[float], b: list[float]) -> dict:
    """``a[i] - b[i]`` over pairs: n, mean, ci (95% t half-width), t, p (two-sided paired t-test), on how
    many pairs ``a`` was higher or lower, and wilcoxon_p (two-sided Wilcoxon signed-rank; NaN when every
    difference is zero or there is a single pair)."""
    from scipy.stats import t as student
    from scipy.stats import wilcoxon

    if len(a) != len(b) or not a:
        raise ValueError("a paired difference needs two equally long, non-empty lists")
    d = [x - y for x, y in zip(a, b)]
    n = len(d)
    mean, ci = mean_ci(d)
    out = {"n": n, "mean": mean, "ci": ci, "higher": sum(v > 0 for v in d), "lower": sum(v < 0 for v in d),
           "t": float("nan"), "p": float("nan"), "wilcoxon_p": float("nan")}
    if n >= 2:
        sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1))
        if sd > 0:
            out["t"] = mean / (sd / math.sqrt(n))
            out["p"] = float(2 * student.sf(abs(out["t"]), n - 1))
        if any(v != 0 for v in d):
            out["wilcoxon_p"] = float(wilcoxon(d).pvalue)
    return out


def cell_key(tag: str) -> str:
    """A cell's tag without the ``|`` a quote tag cannot hold: ``"gifd | B=4"`` -> ``"gifd B=4"``."""
    return tag.replace(" | ", " ")


def load_records(path: str | Path) -> list[dict]:
    """The records of a ``reproduce`` results file (``.jsonl``) that its table shows, one per run (cell, image,
    seed): in a cell with current records (made by the code and checkpoints as they are) only those, in a stale
    cell (kept until it is re-run) its records; the last record of a run wins. A re-run appends its records to
    the old ones, so without this a cell would mix two protocols."""
    from .experiments import is_current, read_records

    records, hashes = read_records(path), {}
    current = [is_current(r, hashes) for r in records]
    fresh_cells = {r["spec"]["tag"] for r, ok in zip(records, current) if ok}
    shown = {}
    for r, ok in zip(records, current):
        if ok or r["spec"]["tag"] not in fresh_cells:
            shown[(r["spec"]["tag"], r["spec"]["index"], r["spec"]["seed"])] = r
    return list(shown.values())


def values(records: list[dict], cell: str, stage: str | None = None, key: str = "psnr") -> dict:
    """``{(index, seed): value}`` of one cell: the run's ``key``, or a GIFD stage's PSNR with ``stage``."""
    found = {}
    for r in records:
        if r["spec"]["tag"] != cell:
            continue
        if stage is None:
            v = r.get(key)
        else:
            v = next((s.get("psnr") for s in r.get("stages", []) if s["stage"] == stage), None)
        if v is not None:
            found[(r["spec"]["index"], r["spec"]["seed"])] = v
    return found


def compare_cells(records: list[dict], cell: str, reference: str, stage: str | None = None) -> dict:
    """Cell minus reference on the images both have: the per-image rows, each cell's own mean ± CI (what an
    unpaired reading compares), whether those intervals overlap, and the paired difference."""
    a, b = values(records, cell, stage), values(records, reference, stage)
    common = [k for k in a if k in b]
    if not common:
        raise ValueError(f"no image has both {cell!r} and {reference!r}")
    rows = [{"image": k[0], "seed": k[1], "cell": a[k], "reference": b[k], "difference": a[k] - b[k]} for k in common]
    ma, ha = mean_ci([a[k] for k in common])
    mb, hb = mean_ci([b[k] for k in common])
    overlap = (ma - ha <= mb + hb) and (mb - hb <= ma + ha) if math.isfinite(ha) and math.isfinite(hb) else True
    return {"cell": cell, "reference": reference, "stage": stage, "rows": rows,
            "cell_mean": (ma, ha), "reference_mean": (mb, hb), "intervals_overlap": overlap,
            "paired": paired_difference([a[k] for k in common], [b[k] for k in common])}


def plot_paired(comparison: dict, title: str = ""):
    """Notebook 09: the same numbers read two ways. Left, each cell's mean with its 95% interval (the unpaired
    view); middle, one line per image from the reference to the cell; right, the per-image differences with
    their mean and paired 95% interval."""
    import matplotlib.pyplot as plt

    c, rows = comparison, comparison["rows"]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
    names = [c["reference"], c["cell"]]
    for x, (m, h) in enumerate([c["reference_mean"], c["cell_mean"]]):
        axes[0].errorbar([x], [m], yerr=[h if math.isfinite(h) else 0], fmt="o", capsize=6)
    axes[0].set_title("per cell: mean ± 95% CI" + (" (overlap)" if c["intervals_overlap"] else ""), fontsize=9)
    for r in rows:
        colour = "tab:green" if r["difference"] > 0 else "tab:red"
        axes[1].plot([0, 1], [r["reference"], r["cell"]], "o-", color=colour, alpha=0.7)
    axes[1].set_title(f"per image: {c['paired']['higher']} of {c['paired']['n']} higher", fontsize=9)
    for ax in axes[:2]:
        ax.set_xticks([0, 1], names, fontsize=8)
        ax.set_xlim(-0.5, 1.5)
        ax.set_ylabel("PSNR (dB)")
    d = [r["difference"] for r in rows]
    axes[2].scatter(range(len(d)), d, color="tab:gray")
    p = c["paired"]
    axes[2].axhline(p["mean"], color="tab:blue", label=f"mean {p['mean']:+.2f} ± {p['ci']:.2f}")
    if math.isfinite(p["ci"]):
        axes[2].axhspan(p["mean"] - p["ci"], p["mean"] + p["ci"], color="tab:blue", alpha=0.2)
    axes[2].axhline(0, color="black", lw=0.8)
    axes[2].set_xlabel("image")
    axes[2].set_ylabel("difference (dB)")
    axes[2].set_title("paired: cell minus reference", fontsize=9)
    axes[2].legend(fontsize=8)
    fig.suptitle(title or f"{c['cell']} against {c['reference']}" + (f", stage {c['stage']}" if c["stage"] else ""),
                 fontsize=10)
    fig.tight_layout()
    return fig


def paired_explorer(directory: str | Path, table: str | None = None, cell: str | None = None,
                    reference: str | None = None):
    """Notebooks 08 and 09: a widget over committed ``reproduce`` records (nothing is run): pick a table, a cell
    and a reference cell (at first ``table``, ``cell`` and ``reference`` if given; by default the table's last
    and first cells), and see both readings of the difference (:func:`plot_paired`)."""
    import ipywidgets as W
    import matplotlib.pyplot as plt

    tables = {p.stem: load_records(p) for p in sorted(Path(directory).glob("*.jsonl"))}
    if table is not None and table not in tables:
        raise ValueError(f"no table {table!r} in {directory}: choose one of {', '.join(tables)}")
    first = {"cell": cell, "minus": reference}
    table = W.Dropdown(options=list(tables), value=table or next(iter(tables)), description="table")
    cell, reference = W.Dropdown(description="cell"), W.Dropdown(description="minus")
    out = W.Output()

    def cells(*_):
        names = list(dict.fromkeys(r["spec"]["tag"] for r in tables[table.value]))
        for name in filter(None, first.values()):
            if name not in names:
                raise ValueError(f"no cell {name!r} in table {table.value!r}: choose one of {', '.join(names)}")
        cell.options, reference.options = names, names
        cell.value, reference.value = first["cell"] or names[-1], first["minus"] or names[0]
        first.update(cell=None, minus=None)              # only the first table opens on them

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            if None in (cell.value, reference.value) or cell.value == reference.value:
                print("pick two different cells")
                return
            try:
                plot_paired(compare_cells(tables[table.value], cell.value, reference.value))
                plt.show()
            except ValueError as exc:
                print(exc)

    table.observe(cells, "value")
    for w in (table, cell, reference):
        w.observe(draw, "value")
    cells()
    draw()
    return W.VBox([W.HBox([table, cell, reference]), out])
