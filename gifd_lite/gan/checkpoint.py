"""Shipped weights: sha256-checked loading, saving, and the ``data/MANIFEST`` that records how each was made.

``data/MANIFEST`` is JSON: one entry per file with its sha256, what it is (``generator`` or ``classifier``),
the dataset and classes it was trained on, steps, seed, the exact command and its wall time. Loading a
shipped name checks the hash first and then uses ``torch.load(..., weights_only=True)``, so a corrupt,
truncated or substituted file is refused with one clear line.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from ..errors import GifdError

__all__ = ["DATA_DIR", "sha256", "read_manifest", "register", "resolve", "load_payload", "save_payload"]

DATA_DIR = Path(__file__).resolve().parent.parent.parent / "data"


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(data_dir: Path = DATA_DIR) -> dict:
    path = data_dir / "MANIFEST"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise GifdError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def register(name: str, file: Path, entry: dict, data_dir: Path = DATA_DIR) -> dict:
    """Add or replace ``name`` in the manifest, with the file's current sha256."""
    manifest = read_manifest(data_dir)
    rel = os.path.relpath(Path(file).resolve(), data_dir.resolve())
    manifest[name] = {"file": rel, "sha256": sha256(file), **entry}
    (data_dir / "MANIFEST").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest[name]


def resolve(name_or_path: str, data_dir: Path = DATA_DIR) -> tuple[Path, str | None]:
    """A shipped name → (its file, expected sha256); an existing path → (path, None)."""
    manifest = read_manifest(data_dir)
    if name_or_path in manifest:
        entry = manifest[name_or_path]
        return data_dir / entry["file"], entry["sha256"]
    path = Path(name_or_path)
    if path.is_file():
        return path, None
    known = ", ".join(sorted(manifest)) or "none shipped yet"
    raise GifdError(f"no checkpoint {name_or_path!r}: not a file and not a shipped name ({known})")


def load_payload(name_or_path: str, data_dir: Path = DATA_DIR) -> dict:
    """Load a checkpoint dictionary, checking its sha256 against the manifest when it is a shipped name."""
    path, expected = resolve(name_or_path, data_dir)
    if not path.is_file():
        raise GifdError(f"checkpoint file {path} is missing (listed in data/MANIFEST)")
    if expected is not None and sha256(path) != expected:
        raise GifdError(f"checkpoint {path.name} is corrupt or was replaced: its sha256 does not match data/MANIFEST")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise GifdError(f"cannot read checkpoint {path} ({type(exc).__name__}): not a gifd_lite checkpoint") from None
    if not isinstance(payload, dict) or "state_dict" not in payload or "kind" not in payload:
        raise GifdError(f"{path} is not a gifd_lite checkpoint (no state_dict/kind)")
    return payload


def save_payload(payload: dict, path: str | os.PathLike) -> Path:
    """Write a checkpoint atomically (a crash never leaves a half-written file under the final name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path
