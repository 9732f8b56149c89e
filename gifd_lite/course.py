"""Run the course: execute every notebook with papermill into ``runs/<preset>/`` (README, ``make course``)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

__all__ = ["NOTEBOOK_DIR", "notebooks", "lessons", "solutions", "run_notebook", "run_course"]

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def notebooks(only: list[str] | None = None) -> list[Path]:
    """The course's notebooks in order (``NN_name.ipynb``), optionally only those whose prefix is listed."""
    found = sorted(p for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [p for p in found if p.name[:2] in only or p.stem in only]
    return found


def lessons() -> list[Path]:
    """The lesson notebooks, 01-08 and 10: each opens with objectives and closes with exercises (issue 18); 00 sets
    up and 09 runs the reproduction sweeps."""
    return [p for p in notebooks() if p.name[:2] not in ("00", "09")]


def solutions() -> list[Path]:
    """The worked solutions, ``solutions/NN_<lesson>_solutions.ipynb``, one per lesson."""
    return sorted((NOTEBOOK_DIR / "solutions").glob("[0-9][0-9]_*_solutions.ipynb"))


def run_notebook(path: Path, out_root: Path, preset: str = "laptop", seed: int = 0, device: str = "auto",
                 **parameters) -> dict:
    """Execute one notebook; returns the metrics.json it wrote (plus its wall time)."""
    import papermill

    from .data import data_root

    # notebooks run with notebooks/ as their working directory: pin a relative GIFD_DATA to where we are
    os.environ["GIFD_DATA"] = str(data_root().resolve())
    os.environ["GIFD_PRESET"] = preset        # for nbval-style runs; papermill's PRESET wins anyway
    out_dir = Path(out_root) / path.stem
    out_dir.mkdir(parents=True, exist_ok=True)
    params = dict(PRESET=preset, SEED=seed, DEVICE=device, OUTPUT_DIR=str(out_dir.resolve()), INTERACTIVE=False)
    params.update(parameters)
    known = papermill.inspect_notebook(str(path))          # the notebook's own parameters cell
    params = {k: v for k, v in params.items() if k in known or k in parameters}   # INTERACTIVE only where it exists
    start = time.perf_counter()
    papermill.execute_notebook(str(path), str(out_dir / path.name), parameters=params, kernel_name="python3",
                               cwd=str(path.parent), progress_bar=False, kernel_manager_class=_ipc_kernel_manager())
    metrics = json.loads((out_dir / "metrics.json").read_text())
    metrics["_wall_seconds"] = round(time.perf_counter() - start, 1)
    return metrics


def _ipc_kernel_manager():
    """A kernel manager that talks to the kernel over local IPC sockets (in a temporary folder) instead of TCP on
    localhost: nothing listens on a port, and the kernel has no reason to warn about unencrypted TCP."""
    import tempfile

    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.transport = "ipc"
            self.ip = str(Path(tempfile.mkdtemp(prefix="gifd-kernel-")) / "kernel")

    return IPCKernelManager


def run_course(preset: str = "laptop", out_root: str | Path | None = None, only: list[str] | None = None,
               device: str = "auto") -> dict:
    """Execute the notebooks in order into ``runs/<preset>/``; print each one's wall time."""
    out_root = Path(out_root or Path("runs") / preset)
    results = {}
    for nb in notebooks(only):
        print(f"running {nb.name} (preset {preset}) ...", flush=True)
        results[nb.stem] = run_notebook(nb, out_root, preset=preset, device=device)
        print(f"  done in {results[nb.stem]['_wall_seconds']} s -> {out_root / nb.stem}", flush=True)
    return {name: m["_wall_seconds"] for name, m in results.items()}
