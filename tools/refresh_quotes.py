"""Rewrite every quoted number in the notebooks' markdown and the course's pages to what docs/results says now.

    .venv/bin/python tools/refresh_quotes.py [--check]

A lesson states a measured number followed by a tag naming its record (``gifd_lite.results``); after a table or
a timing is measured again, this puts the new values into the lessons, their solutions, the executed copies
in docs/course/executed/ (their markdown only, taken from the lesson's when the code is the same; outputs are what
the run printed) and the markdown pages of
``gifd_lite.course.documents`` (instructor notes, docs/results/README.md). ``--check`` changes nothing
and exits 1 if any number would change (tests/test_course.py checks the same for the lessons and solutions).
Either way it then lists every conclusion (claim tag) the records no longer support, and exits 1 if there is one:
those sentences need rewriting by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402

from gifd_lite.course import code_cells, course_texts, current_text, documents  # noqa: E402
from gifd_lite.results import claims_in, refresh  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report the notebooks that would change")
    args = parser.parse_args()
    executed = ROOT / "docs" / "course" / "executed"
    paths = sorted((ROOT / "notebooks").glob("**/*.ipynb")) + sorted(executed.glob("**/*.ipynb"))
    stale = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        before = [c.source for c in nb.cells if c.cell_type == "markdown"]
        lesson = ROOT / "notebooks" / path.relative_to(executed) if executed in path.parents else None
        source = nbformat.read(lesson, as_version=4) if lesson is not None and lesson.exists() else None
        for cell in source.cells if source is not None else []:
            if cell.cell_type == "markdown":
                cell.source = refresh(cell.source)
        # an executed copy of the same code takes the lesson's text (its own may quote keys a re-run removed)
        if not (source is not None and code_cells(nb) == code_cells(source) and current_text(nb, source)):
            for cell in nb.cells:
                if cell.cell_type == "markdown":
                    cell.source = refresh(cell.source)
        changed = sum(a != b.source for a, b in zip(before, [c for c in nb.cells if c.cell_type == "markdown"]))
        if changed:
            stale.append(f"{path.relative_to(ROOT)} ({changed} cells)")
            if not args.check:
                nbformat.write(nb, path)
    for path in documents():
        text = path.read_text()
        new = refresh(text)
        if new != text:
            stale.append(f"{path.relative_to(ROOT)}")
            if not args.check:
                path.write_text(new)
    print("\n".join(stale) or "every quoted number is current")
    failing = []
    for path, text in course_texts():
        failing += [f"{path.relative_to(ROOT)}: {c['spec']} (the record says {c['record']})"
                    for c in claims_in(text) if not c["holds"]]
    if failing:
        print("conclusions the records no longer support (rewrite these sentences):", *failing, sep="\n  ")
    sys.exit(1 if failing or (stale and args.check) else 0)


if __name__ == "__main__":
    main()
