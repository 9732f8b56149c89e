"""Notebook 05's look at GIFD's stage choice: every candidate with the losses the attacker sees and the PSNR it
does not, what each selection rule picks, and an oracle that may look at the truth.

A GIFD run (:func:`gifd_lite.attacks.gifd.gifd`) leaves ``history.extra["candidates"]``: for every restart and
stage, the features with the lowest *fitting* loss and, with a held-out split, the step with the lowest
*held-out* loss. Stages are chained, so the fitting loss can only fall with depth; the held-out loss, computed
on entries of the update the attack never fitted, rises again once a stage starts to fit what is not the image.
"""

from __future__ import annotations

import torch

from .attacks.gifd import choose_candidate
from .metrics import evaluate

__all__ = ["candidate_table", "stage_bests", "stage_title", "rule_outcomes", "rule_rows", "stage_psnrs",
           "plot_stage_losses"]


def candidate_table(reconstructions: list, truth01: torch.Tensor) -> list[dict]:
    """One row per (image, candidate): ``image``, ``restart``, ``stage``, ``by``, ``fit``, ``held``, ``psnr`` and
    ``chosen`` (the one GIFD output). ``truth01`` holds the images in the order of ``reconstructions``."""
    rows = []
    for j, rec in enumerate(reconstructions):
        chosen = rec.history.extra["chosen"]
        for c in rec.history.extra["candidates"]:
            psnr = evaluate(c["images"], truth01[j:j + 1], with_lpips=False)["psnr"]
            rows.append({"image": j, "restart": c["restart"], "stage": c["stage"], "by": c["by"], "fit": c["fit"],
                         "held": c["held"], "psnr": psnr, "chosen": c is chosen})
    return rows


def stage_bests(rows: list[dict], image: int = 0) -> list[dict]:
    """For one image, per stage (in order): the stage-end candidate with the lowest fitting loss over restarts,
    i.e. the row the attacker would keep of that stage; its ``fit``, ``held`` and ``psnr`` title notebook 05's
    stage-by-stage pictures."""
    mine = [r for r in rows if r["image"] == image and r["by"] == "fit"]
    stages = list(dict.fromkeys(r["stage"] for r in mine))
    return [min((r for r in mine if r["stage"] == st), key=lambda r: r["fit"]) for st in stages]


def stage_title(row: dict) -> str:
    """A picture's title for one candidate row: its stage, fitting loss, held-out loss (when there is a split)
    and PSNR."""
    held = "" if row["held"] is None else f"\nheld {row['held']:.4f}"
    return f"{row['stage']}\nfit {row['fit']:.4f}{held}\n{row['psnr']:.1f} dB"


def rule_outcomes(rows: list[dict]) -> dict[str, list[float]]:
    """Per rule, the PSNR of the candidate it picks on each image: ``holdout`` (runs with a held-out split only),
    ``loss`` (the lowest fitting loss), ``oracle`` (the best PSNR of any candidate: the ceiling of any rule).
    These are the candidates before GIFD's refit of the chosen stage."""
    rules = ("holdout", "loss") if all(r["held"] is not None for r in rows) else ("loss",)
    out = {**{rule: [] for rule in rules}, "oracle": []}
    for j in sorted({r["image"] for r in rows}):
        mine = [r for r in rows if r["image"] == j]
        for rule in rules:
            out[rule].append(mine[choose_candidate(mine, rule)]["psnr"])
        out["oracle"].append(max(r["psnr"] for r in mine))
    return out


def rule_rows(cases: dict[str, list[dict]]) -> list[dict]:
    """Tidy rows of :func:`rule_outcomes` for several cases (e.g. ``{"clean": table, "noise": noisy_table}``):
    ``case``, ``rule``, ``psnr`` (one value per image) and ``mean``. No rule can beat ``oracle`` on any image."""
    return [{"case": case, "rule": rule, "psnr": values, "mean": sum(values) / len(values)}
            for case, rows in cases.items() for rule, values in rule_outcomes(rows).items()]


def stage_psnrs(reconstruction, truth01: torch.Tensor) -> list[dict]:
    """For one GIFD run on a batch (any size): per stage it searched, ``stage``, the best restart's fitting loss
    ``loss`` and the ``psnr`` of that stage's images against the whole batch (matched by assignment, as every
    score here); plus ``chosen``, whether GIFD output that stage (before any refit)."""
    chosen = reconstruction.history.extra["best_layer"]
    return [{"stage": st["stage"], "loss": st["best_loss"], "chosen": st["stage"] == chosen,
             "psnr": evaluate(st["images"], truth01, with_lpips=False)["psnr"]}
            for st in reconstruction.history.extra["stages"] if st["images"] is not None]


def plot_stage_losses(rows: list[dict], image: int = 0, ax=None, title: str = ""):
    """For one image: fitting and held-out loss of every restart's stage ends (log scale), and their PSNR on a
    second axis; the chosen candidate is circled."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.2))
    mine = [r for r in rows if r["image"] == image and r["by"] == "fit"]
    stages = list(dict.fromkeys(r["stage"] for r in mine))
    twin = ax.twinx()
    for restart in sorted({r["restart"] for r in mine}):
        line = [r for r in mine if r["restart"] == restart]
        ax.plot(stages, [r["fit"] for r in line], "o-", color="tab:red", alpha=0.5 + 0.5 * (restart == 0),
                label="fitting loss" if restart == 0 else None)
        if line[0]["held"] is not None:
            ax.plot(stages, [r["held"] for r in line], "s--", color="tab:purple", alpha=0.5 + 0.5 * (restart == 0),
                    label="held-out loss" if restart == 0 else None)
        twin.plot(stages, [r["psnr"] for r in line], "^:", color="tab:blue", alpha=0.5 + 0.5 * (restart == 0),
                  label="PSNR (the attacker cannot see it)" if restart == 0 else None)
    chosen = [r for r in rows if r["image"] == image and r["chosen"]]
    for r in chosen:
        twin.plot([r["stage"]], [r["psnr"]], "o", ms=14, mfc="none", mec="black", label="GIFD's output")
    ax.set_yscale("log")
    ax.set_ylabel("cosine distance")
    twin.set_ylabel("PSNR (dB)", color="tab:blue")
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="lower left")
    ax.set_title(title or f"image {image}: every restart's stages (faded: restart 2)", fontsize=9)
    return ax.figure
