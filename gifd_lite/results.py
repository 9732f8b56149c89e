"""The committed records under ``docs/results``, read back so the lessons quote numbers instead of retyping them.

A lesson's markdown states a measured number and names where it comes from in an HTML comment right after it
(invisible when rendered)::

    stopping after 16x16 gives 28.96 dB<!-- q reproduce/stages.csv | gifd | stop after stage 3 | psnr -->

``tests/test_course.py`` reads every such tag, recomputes the value with :func:`quote` and fails if the text
and the record disagree, so a refreshed table cannot leave a lesson behind. A tag is
``q <file> | <key> | <key> ...`` with the file relative to ``docs/results``:

- a ``.csv`` table: the row whose ``cell`` column is the first key, then the column (the last key; a cell
  name may itself contain `` | ``);
- a ``.json`` file: keys into the nested object (integers index lists);
- a ``.md`` file: the ``key: value`` pairs of its fenced ``quote`` blocks (written by the ``tools/measure_*``
  scripts that also write the page), for summaries such as paired differences.

Optional trailing fields: ``digits=N`` (default 2), ``scale=100`` (fractions as percentages), ``sign`` (a
leading + on positive values).
"""

from __future__ import annotations

import csv
import json
import re
from functools import lru_cache
from pathlib import Path

from .errors import GifdError

__all__ = ["RESULTS_DIR", "lookup", "quote", "tags_in", "refresh", "TAG"]

RESULTS_DIR = Path(__file__).resolve().parent.parent / "docs" / "results"
TAG = re.compile(r"(?P<text>[+\-−]?\d[\d,]*(?:\.\d+)?)\s*(?P<unit>[^\s<]{0,3})\s*<!--\s*q\s+(?P<spec>.*?)\s*-->")


@lru_cache(maxsize=None)
def _load(name: str):
    path = RESULTS_DIR / name
    if not path.is_file():
        raise GifdError(f"no committed record docs/results/{name}")
    if path.suffix == ".csv":
        with path.open() as f:
            return {row["cell"]: row for row in csv.DictReader(f)}
    if path.suffix == ".json":
        return json.loads(path.read_text())
    if path.suffix == ".md":
        pairs = {}
        for block in re.findall(r"```quote\n(.*?)```", path.read_text(), re.S):
            for line in block.strip().splitlines():
                key, _, value = line.partition(":")
                pairs[key.strip()] = value.strip()
        return pairs
    raise GifdError(f"cannot quote from {name}: use a .csv, .json or .md record")


def lookup(name: str, *keys: str):
    """The raw value at ``keys`` in the record ``docs/results/<name>``."""
    value = _load(name)
    for key in keys:
        try:
            value = value[int(key)] if isinstance(value, list) else value[key]
        except (KeyError, IndexError, ValueError):
            raise GifdError(f"docs/results/{name} has no entry {' | '.join(keys)!r}") from None
    return value


def quote(name: str, *keys: str, digits: int = 2, scale: float = 1.0, sign: bool = False) -> str:
    """The value at ``keys`` in ``docs/results/<name>``, formatted as a lesson prints it (see the module doc)."""
    raw = lookup(name, *keys)
    try:
        number = float(raw) * scale
    except (TypeError, ValueError):
        return str(raw)
    text = f"{number:.{digits}f}"
    return f"+{text}" if sign and number > 0 else text


def _parse(spec: str) -> tuple[str, list[str], dict]:
    fields = [f.strip() for f in spec.split("|")]
    name, keys, options = fields[0], [], {}
    for f in fields[1:]:
        if re.fullmatch(r"digits=\d+", f):
            options["digits"] = int(f.split("=")[1])
        elif re.fullmatch(r"scale=[\d.]+", f):
            options["scale"] = float(f.split("=")[1])
        elif f == "sign":
            options["sign"] = True
        else:
            keys.append(f)
    if name.endswith(".csv") and len(keys) > 2:          # cell names such as "gifd | radius=0.3" contain " | "
        keys = [" | ".join(keys[:-1]), keys[-1]]
    return name, keys, options


def tags_in(markdown: str) -> list[dict]:
    """Every quoted number in ``markdown``: its text, the record it names and what the record says now."""
    found = []
    for m in TAG.finditer(markdown):
        name, keys, options = _parse(m["spec"])
        text = m["text"].replace("−", "-").replace(",", "")
        found.append({"text": text, "spec": m["spec"], "expected": quote(name, *keys, **options)})
    return found


def refresh(markdown: str) -> str:
    """``markdown`` with every quoted number rewritten to what its record says now (``tools/refresh_quotes.py``:
    after a table or a timing is measured again, the lessons follow it)."""
    def rewrite(m: re.Match) -> str:
        name, keys, options = _parse(m["spec"])
        new = quote(name, *keys, **options)
        if m["text"].startswith("−") and new.startswith("-"):
            new = "−" + new[1:]                      # keep the typographic minus the text used
        if "," in m["text"] and "." not in new:
            new = f"{int(new):,}" if new.lstrip("+-").isdigit() else new
        return new + m.group(0)[len(m["text"]):]
    return TAG.sub(rewrite, markdown)
