"""Run the course: execute every notebook with papermill into ``runs/<preset>/`` (README, ``make course``), and
publish the executed copies to ``docs/course/executed/`` for the course website (``make book``)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

__all__ = ["NOTEBOOK_DIR", "notebooks", "lessons", "solutions", "documents", "run_notebook", "run_course",
           "publish_notebook", "code_cells", "current_text", "course_texts"]

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def _only(found: list[Path], only: list[str] | None) -> list[Path]:
    """The notebooks whose two-digit prefix or stem is listed (all of them without a list)."""
    return [p for p in found if p.name[:2] in only or p.stem in only] if only else found


def notebooks(only: list[str] | None = None) -> list[Path]:
    """The course's notebooks in order (``NN_name.ipynb``), optionally only those whose prefix is listed."""
    return _only(sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")), only)


def lessons() -> list[Path]:
    """The lesson notebooks, 01-08 and 10: each opens with objectives and closes with exercises (issue 18); 00 sets
    up and 09 runs the reproduction sweeps."""
    return [p for p in notebooks() if p.name[:2] not in ("00", "09")]


def solutions(only: list[str] | None = None) -> list[Path]:
    """The worked solutions, ``solutions/NN_<lesson>_solutions.ipynb``, one per lesson (``only`` as in notebooks)."""
    return _only(sorted((NOTEBOOK_DIR / "solutions").glob("[0-9][0-9]_*_solutions.ipynb")), only)


def documents() -> list[Path]:
    """The course's markdown pages, which may quote records as the lessons do (``gifd_lite.results``): the
    instructor guide and notes, the glossary and bibliography, ``docs/results/README.md`` and the README."""
    root = NOTEBOOK_DIR.parent
    pages = sorted(p for p in (root / "docs" / "course").rglob("*.md") if "executed" not in p.parts)
    return pages + [root / "docs" / "results" / "README.md", root / "README.md"]


def course_texts() -> list[tuple[Path, str]]:
    """(path, markdown) of every markdown cell of the lessons and solutions and of every course page: what quote and
    claim tags may sit in (``gifd_lite.results``; checked by tests/test_course.py, refreshed by
    tools/refresh_quotes.py)."""
    import nbformat

    return [(path, cell.source) for path in notebooks() + solutions()
            for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "markdown"] + \
           [(path, path.read_text()) for path in documents()]


def run_notebook(path: Path, out_root: Path, preset: str = "laptop", seed: int = 0, device: str = "auto",
                 **parameters) -> dict:
    """Execute one notebook; returns the metrics.json it wrote (plus its wall time)."""
    import papermill

    from .data import data_root

    # notebooks run with notebooks/ as their working directory: pin a relative GIFD_DATA to where we are
    os.environ["GIFD_DATA"] = str(data_root().resolve())
    os.environ["GIFD_PRESET"] = preset        # for nbval-style runs; papermill's PRESET wins anyway
    # nobody watches a progress bar inside papermill's kernel, and saved as a widget it needs a CDN to be shown
    os.environ.setdefault("GIFD_NO_PROGRESS", "1")
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
               device: str = "auto", publish: str | Path | None = None, jobs: int = 1, on_done=None) -> dict:
    """Execute the lessons, then their solutions, into ``runs/<preset>/``; print each one's wall time.

    With ``publish`` (``make course`` passes ``docs/course/executed`` at the laptop preset), each executed notebook is
    also copied there at its place under ``notebooks/``: the course website renders those copies. With ``jobs`` > 1
    that many notebooks run at once (they do not read each other's outputs), each kernel with one torch thread
    (``OMP_NUM_THREADS=1``), so that two of them share a 2-core machine without stalling each other.
    A notebook that fails does not stop the others; the failures are raised together at the end.
    ``on_done(stem, seconds, error)`` is called as each finishes (``tools/measure_course_times.py`` records them).
    """
    from .errors import GifdError

    out_root = Path(out_root or Path("runs") / preset)
    todo = notebooks(only) + solutions(only)
    if jobs > 1:                                           # inherited by every kernel papermill starts
        os.environ["OMP_NUM_THREADS"] = os.environ["GIFD_THREADS"] = "1"
    times, failed = {}, {}

    def out_dir(nb: Path) -> Path:
        verb = "running" if jobs <= 1 else "queued"
        print(f"{verb} {nb.relative_to(NOTEBOOK_DIR)} (preset {preset}) ...", flush=True)
        return out_root / nb.relative_to(NOTEBOOK_DIR).parent

    def finished(nb: Path, outcome) -> None:
        out = out_root / nb.relative_to(NOTEBOOK_DIR).parent
        try:
            times[nb.stem] = outcome()["_wall_seconds"]
        except Exception as exc:                           # papermill's error names the failing cell
            failed[nb.stem] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
            print(f"  {nb.stem} FAILED: {failed[nb.stem]}", flush=True)
        else:
            print(f"  {nb.stem} done in {times[nb.stem]} s -> {out / nb.stem}", flush=True)
            if publish:
                executed = out / nb.stem / nb.name
                dest = Path(publish) / nb.relative_to(NOTEBOOK_DIR)
                print(f"  published {publish_notebook(executed, dest, source=nb)}", flush=True)
        if on_done:
            on_done(nb.stem, times.get(nb.stem), failed.get(nb.stem))

    if jobs <= 1:
        for nb in todo:
            out = out_dir(nb)
            finished(nb, lambda: run_notebook(nb, out, preset=preset, device=device))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(run_notebook, nb, out_dir(nb), preset=preset, device=device): nb for nb in todo}
            for future in as_completed(futures):
                finished(futures[future], future.result)
    if failed:
        raise GifdError(f"{len(failed)} of {len(todo)} notebooks failed: "
                        + "; ".join(f"{k} ({v})" for k, v in failed.items()))
    return {nb.stem: times[nb.stem] for nb in todo}


def publish_notebook(executed: Path, dest: Path, source: Path | None = None) -> str:
    """Copy one executed notebook to the website's folder; returns where it went and its size. With ``source`` (the
    notebook it was run from) absolute paths into this checkout become relative to the notebook's folder, so the
    published copy shows ``../runs/laptop/...`` rather than one machine's directories."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    text = Path(executed).read_text(encoding="utf-8")
    if source is not None:
        root = NOTEBOOK_DIR.parent
        text = text.replace(f"{root}/", os.path.relpath(root, Path(source).parent) + "/")
    dest.write_text(text, encoding="utf-8")
    return f"{dest} ({dest.stat().st_size // 1024} kB)"


def code_cells(nb) -> list[str]:
    """A notebook's code, without the cell papermill injects (it holds the run's parameters)."""
    return [c.source for c in nb.cells
            if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]


def current_text(executed, lesson) -> bool:
    """Give the executed copy the lesson's markdown as it is now, when the code is the same and the cells line up:
    a corrected sentence needs no re-execution (text has no outputs, and its quoted numbers come from the
    records). Returns whether it did."""
    cells = [c for c in executed.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    if [c.cell_type for c in cells] != [c.cell_type for c in lesson.cells]:
        return False
    for mine, theirs in zip(cells, lesson.cells):
        if mine.cell_type == "markdown":
            mine.source = theirs.source
    return True
