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

__all__ = ["candidate_table", "rule_outcomes", "plot_stage_losses"]


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
