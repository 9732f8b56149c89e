"""ipywidgets explorers over stored results (no optimisation inside a callback); notebooks 00, 01, 02, 04 and 05."""

from __future__ import annotations

import matplotlib.pyplot as plt

__all__ = ["dataset_browser", "snapshot_explorer", "stage_explorer"]


def dataset_browser(dataset, per_page: int = 10):
    """Notebook 00: a dropdown (which class) and a slider (which page) over an in-memory split
    (:class:`gifd_lite.data.ImageSet`), each image titled with its index, the ``--index`` / ``IMAGE_INDEX`` that
    names it in every notebook and on the command line."""
    import ipywidgets as W

    by_class = {name: [int(i) for i in (dataset.labels == k).nonzero()[0]] for k, name in enumerate(dataset.classes)}
    pick = W.Dropdown(options=list(by_class), description="class")
    page = W.IntSlider(min=0, max=0, description="page")
    out = W.Output()

    def draw(*_):
        indices = by_class[pick.value]
        page.max = max(0, (len(indices) - 1) // per_page)
        shown = indices[page.value * per_page:(page.value + 1) * per_page]
        with out:
            out.clear_output(wait=True)
            if not shown:
                print(f"no {pick.value} images in this split")
                return
            images, _ = dataset.tensors(shown)
            fig, axes = plt.subplots(1, len(shown), figsize=(1.3 * len(shown), 1.6), squeeze=False)
            for ax, img, i in zip(axes[0], images, shown):
                ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")
                ax.set_title(str(i), fontsize=8)
                ax.axis("off")
            plt.show()

    pick.observe(draw, "value")
    page.observe(draw, "value")
    draw()
    return W.VBox([W.HBox([pick, page]), out])


def snapshot_explorer(snapshots_by_name: dict[str, list]):
    """A dropdown (which run) and a slider (which snapshot) over stored ``History.snapshots`` lists."""
    import ipywidgets as W

    names = list(snapshots_by_name)
    run = W.Dropdown(options=names, description="run")
    step = W.IntSlider(min=0, max=len(snapshots_by_name[names[0]]) - 1, description="snapshot")
    out = W.Output()

    def draw(*_):
        snaps = snapshots_by_name[run.value]
        step.max = len(snaps) - 1
        it, images = snaps[min(step.value, step.max)]
        with out:
            out.clear_output(wait=True)
            n = len(images)
            fig, axes = plt.subplots(1, n, figsize=(1.8 * n, 2.0), squeeze=False)
            for ax, img in zip(axes[0], images):
                ax.imshow(img.clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
                ax.axis("off")
            fig.suptitle(f"{run.value}: step {it}", fontsize=9)
            plt.show()

    run.observe(draw, "value")
    step.observe(draw, "value")
    draw()
    return W.VBox([W.HBox([run, step]), out])


def stage_explorer(stages: list[dict], truth=None):
    """Notebook 05: sliders over GIFD's stages and restarts (``history.extra["stages"]``), showing each
    restart's image at that stage with its gradient-matching loss; the truth, if given, for comparison."""
    import ipywidgets as W

    stage = W.IntSlider(min=0, max=len(stages) - 1, description="stage")
    restart = W.IntSlider(min=0, max=len(stages[0]["losses"]) - 1, description="restart")
    out = W.Output()

    def draw(*_):
        st = stages[stage.value]
        images = st["restart_images"][restart.value]
        rows = [images] if truth is None else [truth.cpu(), images]
        with out:
            out.clear_output(wait=True)
            n = len(images)
            fig, axes = plt.subplots(len(rows), n, figsize=(1.8 * n, 1.9 * len(rows)), squeeze=False)
            for r, row in enumerate(rows):
                for ax, img in zip(axes[r], row):
                    ax.imshow(img.clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
                    ax.axis("off")
            fig.suptitle(f"stage {st['stage']}, restart {restart.value}: gradient loss "
                         f"{st['losses'][restart.value]:.4f}", fontsize=9)
            plt.show()

    stage.observe(draw, "value")
    restart.observe(draw, "value")
    draw()
    return W.VBox([W.HBox([stage, restart]), out])
