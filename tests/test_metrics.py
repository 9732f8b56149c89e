import math

import pytest
import torch

from gifd_lite import metrics


def _images(seed=0, n=3):
    return torch.rand((n, 3, 32, 32), generator=torch.Generator().manual_seed(seed))


def test_identical_images():
    x = _images()
    assert torch.all(metrics.mse(x, x) == 0)
    assert torch.all(torch.isinf(metrics.psnr(x, x)))
    assert torch.allclose(metrics.ssim(x, x), torch.ones(3), atol=1e-6)
    report = metrics.evaluate(x, x, with_lpips=False)
    assert report["psnr"] == 100.0 and report["mse"] == 0.0


@pytest.mark.parametrize("shift", [0.01, 0.05, 0.2])
def test_psnr_of_constant_shift_is_analytic(shift):
    x = torch.full((2, 3, 32, 32), 0.5)
    assert torch.allclose(metrics.psnr(x + shift, x), torch.full((2,), -20 * math.log10(shift)), atol=1e-3)


def test_ssim_agrees_with_scikit_image():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    x = _images(1, 2)
    y = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    ours = metrics.ssim(y, x)
    for i in range(2):
        ref = skimage_metrics.structural_similarity(
            x[i].permute(1, 2, 0).numpy(), y[i].permute(1, 2, 0).numpy(), channel_axis=2, data_range=1.0,
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        assert abs(float(ours[i]) - ref) < 1e-3


def test_batch_matching_recovers_a_permutation():
    x = _images(3, 4)
    perm = torch.tensor([2, 0, 3, 1])
    order = metrics.match_batch(x[perm], x)
    assert torch.equal(x[perm][order], x)
    report = metrics.evaluate(x[perm], x, with_lpips=False)
    assert report["psnr"] == 100.0


def test_lpips_is_a_number_or_cleanly_missing():
    x, y = _images(4, 2), _images(5, 2)
    value = metrics.lpips_distance(x, y)
    if value is None:
        assert "fetch lpips" in metrics.lpips_status()
    else:
        assert value.shape == (2,) and torch.all(value > 0)
        assert torch.allclose(metrics.lpips_distance(x, x), torch.zeros(2), atol=1e-4)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        metrics.mse(_images(n=2), _images(n=3))
