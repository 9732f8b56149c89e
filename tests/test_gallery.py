"""The pictures a reproduce run keeps, and the gallery made of them (gifd_lite.gallery)."""

import numpy as np
import pytest
import torch

from gifd_lite.gallery import image_name, load_pair, save_pair, write_gallery


def test_a_pair_round_trips_to_the_nearest_8_bit_value(tmp_path):
    g = torch.Generator().manual_seed(0)
    truth, recon = torch.rand(3, 3, 32, 32, generator=g), torch.rand(3, 3, 32, 32, generator=g)
    path = save_pair(truth, recon, tmp_path / "a.png")
    got_truth, got_recon = load_pair(path, 3)
    for want, got in ((truth, got_truth), (recon, got_recon)):
        for k in range(3):
            expected = (want[k].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
            assert np.array_equal(got[k], expected)
    with pytest.raises(ValueError):
        save_pair(truth, recon[:2], tmp_path / "b.png")


def test_the_gallery_has_a_row_per_cell_and_skips_runs_without_pictures(tmp_path):
    import matplotlib

    matplotlib.use("svg")                  # standing in for a notebook's inline backend, which it must not switch
    records = []
    for tag in ("ig", "gifd"):
        for index in (5, 1005):
            key = f"{tag}-{index}"
            save_pair(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), tmp_path / image_name(key))
            records.append({"spec": {"tag": tag, "index": index}, "key": key, "indices": [index], "true_labels": [3],
                            "reconstruction_png": image_name(key),
                            "per_image": {"psnr": [20.0], "ssim": [0.5], "lpips": [0.3]}})
    records.append({"spec": {"tag": "ggl", "index": 5}, "key": "old", "indices": [5], "true_labels": [3]})
    path = write_gallery("main", records, tmp_path, tmp_path / "main_gallery.png")
    assert path is not None and path.stat().st_size > 0
    from PIL import Image

    assert Image.open(path).size[1] > Image.open(path).size[0] / 3     # 3 rows (truth, ig, gifd) of 2 columns
    assert matplotlib.get_backend() == "svg"
    assert write_gallery("main", records[-1:], tmp_path, tmp_path / "none.png") is None
    assert image_name("a") == image_name("a") != image_name("b")


def test_a_batch_gallery_shows_whole_batches_and_skips_smaller_ones(tmp_path):
    """Columns are whole victim batches (two batches of 4 fit in 10 images, a third does not); a batch-1 cell of
    the same start image fills only its own column."""
    import matplotlib

    matplotlib.use("svg")
    records = []
    for tag, batch in (("gifd | B=4", 4), ("gifd | B=1", 1)):
        for index in (5, 1005, 2005):
            key = f"{tag}-{index}"
            save_pair(torch.rand(batch, 3, 32, 32), torch.rand(batch, 3, 32, 32), tmp_path / image_name(key))
            records.append({"spec": {"tag": tag, "index": index}, "key": key, "true_labels": list(range(batch)),
                            "indices": list(range(index, index + batch)), "reconstruction_png": image_name(key),
                            "per_image": {"psnr": [20.0] * batch}})
    import matplotlib.figure

    seen = []
    original = matplotlib.figure.Figure.subplots
    matplotlib.figure.Figure.subplots = lambda self, rows, cols, **kw: seen.append((rows, cols)) or original(
        self, rows, cols, **kw)
    try:
        path = write_gallery("batch", records, tmp_path, tmp_path / "batch_gallery.png")
    finally:
        matplotlib.figure.Figure.subplots = original
    assert path is not None and path.stat().st_size > 0
    assert seen == [(3, 8)]                       # truth + 2 cells; images 5–8 and 1005–1008, not 2005's batch
    seen.clear()
    matplotlib.figure.Figure.subplots = lambda self, rows, cols, **kw: seen.append((rows, cols)) or original(
        self, rows, cols, **kw)
    try:                                          # the batch-1 cell alone: one column per batch-1 run (3)
        write_gallery("batch, B=1", records, tmp_path, tmp_path / "b1.png", cells=["gifd | B=1"])
    finally:
        matplotlib.figure.Figure.subplots = original
    assert seen == [(2, 3)]


def test_a_caption_shows_lpips_to_the_thousandth():
    """A good reconstruction's LPIPS is a few thousandths: two decimals would print 0.00 under every image."""
    from gifd_lite.gallery import _caption

    record = {"per_image": {"psnr": [30.24], "ssim": [0.951], "lpips": [0.0043]}}
    assert _caption(record, 0) == "30.2 dB\n0.95 · 0.004"
    assert _caption({"per_image": {"psnr": [30.24], "ssim": [0.951]}}, 0) == "30.2 dB\n0.95 · LPIPS n/a"


def test_a_gallery_of_several_seeds_shows_the_lowest_seeds_runs(tmp_path, monkeypatch):
    """Runs are keyed by (cell, image): with two seeds the second must not silently replace the first's picture
    under a caption that could belong to either."""
    import matplotlib

    matplotlib.use("svg")
    import gifd_lite.gallery as gallery

    records = []
    for seed in (0, 1):                            # the order a sweep writes them: the last would win a plain dict
        key = f"gifd-5-seed{seed}"
        save_pair(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), tmp_path / image_name(key))
        records.append({"spec": {"tag": "gifd", "index": 5, "seed": seed}, "key": key, "indices": [5],
                        "true_labels": [3], "reconstruction_png": image_name(key),
                        "per_image": {"psnr": [20.0 + seed]}})
    loaded, titles = [], []
    original_load = gallery.load_pair
    monkeypatch.setattr(gallery, "load_pair", lambda path, b: loaded.append(path.name) or original_load(path, b))
    original_title = matplotlib.figure.Figure.suptitle
    monkeypatch.setattr(matplotlib.figure.Figure, "suptitle",
                        lambda self, text, **kw: titles.append(text) or original_title(self, text, **kw))
    assert write_gallery("main", records, tmp_path, tmp_path / "g.png") is not None
    assert loaded == [image_name("gifd-5-seed0")]
    assert "seed 0 of 2 seeds" in titles[0]


def test_cells_on_other_images_get_their_own_ground_truth_row(tmp_path, monkeypatch):
    """The ood table's two scenarios both have an image 5 (a CIFAR-10 test image in one, a photograph in the other):
    each scenario gets a block with its own ground truth, so no reconstruction sits under another image's truth."""
    import matplotlib
    import matplotlib.figure

    matplotlib.use("svg")
    records, truths = [], {}
    for scenario, indices, shade in (("cross-domain", (0, 5), 0.2), ("ood-disjoint", (5, 505), 0.8)):
        for index in indices:
            key = f"{scenario}-{index}"
            truths[key] = torch.full((1, 3, 32, 32), shade + index / 10000)
            save_pair(truths[key], torch.rand(1, 3, 32, 32), tmp_path / image_name(key))
            records.append({"spec": {"tag": f"gifd | {scenario}", "index": index, "scenario": scenario}, "key": key,
                            "indices": [index], "true_labels": [3], "reconstruction_png": image_name(key),
                            "per_image": {"psnr": [20.0]}})
    grids = []
    original = matplotlib.figure.Figure.subplots
    monkeypatch.setattr(matplotlib.figure.Figure, "subplots",
                        lambda self, rows, cols, **kw: grids.append(original(self, rows, cols, **kw)) or grids[-1])
    assert write_gallery("ood", records, tmp_path, tmp_path / "ood_gallery.png") is not None
    axes = grids[0]
    assert axes.shape == (4, 2)                   # (truth + 1 cell) per scenario, two images each
    for row, scenario, indices in ((0, "cross-domain", (0, 5)), (2, "ood-disjoint", (5, 505))):
        for j, index in enumerate(indices):
            want = (truths[f"{scenario}-{index}"][0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
            assert np.array_equal(np.asarray(axes[row, j].images[0].get_array()), want)
            assert axes[row + 1, j].images                 # the reconstruction below it
