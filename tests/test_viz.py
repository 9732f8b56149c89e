import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from gifd_lite import viz
from gifd_lite.widgets import snapshot_explorer


def test_comparison_png_has_truth_above_reconstruction(tmp_path):
    truth = torch.zeros(3, 3, 32, 32)
    recon = torch.ones(3, 3, 32, 32)
    path = viz.save_comparison(truth, recon, tmp_path / "r.png")
    img = torch.tensor(np.array(Image.open(path).convert("L")), dtype=torch.float32)
    assert img.shape == (2 * 34 + 2, 3 * 34 + 2)
    assert img[2:34, 2:34].mean() == 0 and img[36:68, 2:34].mean() == 255


def test_figures_and_widget_build():
    images = torch.rand(2, 3, 32, 32)
    scores = {"order": [1, 0], "per_image": {"psnr": [10.0, 12.0], "lpips": [None, None]}}
    assert viz.show_comparison(images, images, scores, title="t") is not None
    assert viz.plot_loss({"a": [3.0, 2.0, 1.0]}) is not None
    snapshots = [(1, images), (10, images)]
    assert viz.show_snapshots(snapshots) is not None
    widget = snapshot_explorer({"run": snapshots})
    assert len(widget.children) == 2


def test_fetch_offline_is_a_clean_error_or_success():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "gifd_lite", "fetch", "lpips"], capture_output=True, text=True)
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr      # 1: a runtime error (offline)
    assert result.returncode == 0 or len(result.stdout.strip()) == 0           # no JSON, no download chatter


def test_defense_figure_puts_each_reconstruction_under_its_setting_and_beside_its_attack():
    from gifd_lite import defense_study

    settings = defense_study.defense_settings({"noise": 0.01, "soteria": 0.4}, ["soteria"])
    rows, pictures = [], []
    for k, (name, param, adaptive) in enumerate(settings):
        for a, attack in enumerate(["ig", "gifd"]):
            rows.append({"setting": defense_study.setting_name(name, param, adaptive), "attack": attack,
                         "psnr": 10.0 + k + a / 10})
            pictures.append(torch.full((1, 3, 32, 32), (2 * k + a) / 10))
    fig = defense_study.show_defense_images(rows, pictures, truth=torch.ones(1, 3, 32, 32))
    axes = np.array(fig.axes).reshape(2, 1 + len(settings))
    names = [defense_study.setting_name(*s) for s in settings]
    assert [" ".join(ax.get_title().split()) for ax in axes[0, 1:]] == names    # each column under its setting
    for a in range(2):
        assert axes[a, 0].get_images()[0].get_array().min() == 1.0            # the client's image first
        for k in range(len(settings)):
            ax = axes[a, 1 + k]
            assert np.allclose(ax.get_images()[0].get_array(), (2 * k + a) / 10)
            assert ax.texts[-1].get_text() == f"{10.0 + k + a / 10:.1f} dB"
    assert axes[1, 0].texts[0].get_text() == "gifd"
    plt.close(fig)
    missing = [r for r in rows if not (r["attack"] == "gifd" and r["setting"] == "none")]
    fig = defense_study.show_defense_images(missing, [p for r, p in zip(rows, pictures) if r in missing])
    axes = np.array(fig.axes).reshape(2, len(settings))                     # no truth column
    assert not axes[1, 0].get_images() and axes[1, 1].get_images()          # the missing cell stays empty
    assert "ig" in [t.get_text() for t in axes[0, 0].texts]
    plt.close(fig)


def test_paired_explorer_opens_on_the_table_and_cells_asked_for():
    """Notebook 08 opens it on the defenses table's adaptive-compression comparison; a name it does not hold
    is a clear error, not an empty widget."""
    import re
    from pathlib import Path

    import pytest

    from gifd_lite import paired

    committed = Path(__file__).resolve().parents[1] / "docs" / "results" / "reproduce"
    widget = paired.paired_explorer(committed, "defenses", "gifd | compression=0.1 adaptive", "gifd | compression=0.1")
    table, cell, reference = widget.children[0].children
    assert (table.value, cell.value, reference.value) == \
        ("defenses", "gifd | compression=0.1 adaptive", "gifd | compression=0.1")
    assert "ig | noise=0.01" in cell.options
    table.value = "main"                                   # another table opens on its own last and first cells
    assert (cell.value, reference.value) == (cell.options[-1], cell.options[0]) and "gifd" in cell.options
    with pytest.raises(ValueError, match="no table 'nope'"):
        paired.paired_explorer(committed, "nope")
    with pytest.raises(ValueError, match=re.escape("no cell 'gifd | none' in table 'defenses'")):
        paired.paired_explorer(committed, "defenses", "gifd | none")


def test_dataset_browser_pages_through_one_class_at_a_time():
    """Notebook 00: the slider's pages cover exactly the chosen class's images, per_page at a time."""
    import numpy as np

    from gifd_lite.data import ImageSet
    from gifd_lite.widgets import dataset_browser

    labels = np.array([0, 1, 0, 0, 1, 0, 0])
    split = ImageSet(np.zeros((7, 32, 32, 3), np.uint8), labels, ("cat", "dog"), "test")
    widget = dataset_browser(split, per_page=2)
    pick, page = widget.children[0].children
    assert pick.options == ("cat", "dog") and page.max == 2       # five cats: pages 0, 1, 2
    pick.value = "dog"
    assert page.max == 0                                          # two dogs: one page
