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

Inside a markdown table row, write the separators as ``\\|`` (a bare ``|`` would split the table's cell even
inside a comment); the tags read the same either way.

Optional trailing fields: ``digits=N`` (default 2), ``scale=100`` (fractions as percentages; ``scale=-1`` quotes
B − A from a record of A − B), ``sign`` (a
leading + on positive values).

A sentence that *concludes* something from a record carries a claim tag, checked the same way, so a refreshed
table that no longer supports a conclusion fails the tests at the very sentence that draws it::

    GIFD beats IG at batch 4<!-- claim reproduce/summary.json | batch | paired | gifd B=4 - ig B=4 | higher -->

``claim <file> | <key> ... | <verdict>``, the keys as for ``q``, the verdict one of

- ``higher`` / ``lower``: a paired difference whose 95% t-interval lies above / below zero and, where the record
  has it, whose Wilcoxon signed-rank p is below 0.05 (the keys name an entry with ``mean``, ``ci`` and
  ``wilcoxon_p``; in a ``.md`` quote block, the key's value is the mean, ``<key> ci`` the half-width and
  ``<key> wilcoxon p`` the p). With five pairs or fewer the exact Wilcoxon p cannot go below 0.0625, so a record
  that carries it can then never say ``higher`` or ``lower``: five images establish no difference here;
- ``unsettled``: neither ``higher`` nor ``lower`` (no established difference either way);
- ``> x``, ``>= x``, ``< x``, ``<= x``, ``== x``: the number at the keys against ``x``;
- ``< <file> | <key> ...`` (any of the five operators): the number at the keys against another record's
  number, for an ordering of two means that no paired entry holds (it states an ordering, not an established
  difference: say so in the text).
"""

from __future__ import annotations

import csv
import json
import math
import re
from functools import lru_cache
from pathlib import Path

from .errors import GifdError

__all__ = ["RESULTS_DIR", "lookup", "quote", "tags_in", "refresh", "TAG", "CLAIM", "claims_in", "judge"]

RESULTS_DIR = Path(__file__).resolve().parent.parent / "docs" / "results"
TAG = re.compile(r"(?P<text>[+\-−]?\d[\d,]*(?:\.\d+)?)\s*(?P<unit>[^\s<\d]{0,3})\s*<!--\s*q\s+(?P<spec>.*?)\s*-->")
CLAIM = re.compile(r"<!--\s*claim\s+(?P<spec>.*?)\s*-->", re.S)
_RELATIVE = re.compile(r"(?P<op>>=|<=|==|>|<)\s*(?P<file>[\w./-]+\.(?:json|csv|md))")
_OPS = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__, "==": float.__eq__}
_COMPARE = re.compile(r"(?P<op>>=|<=|==|>|<)\s*(?P<x>[+\-−]?\d+(?:\.\d+)?)")


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
    if raw is None:                                  # a partial table's missing interval: never write "None"
        raise GifdError(f"docs/results/{name} | {' | '.join(keys)} is null: nothing to quote")
    try:
        number = float(raw) * scale
    except (TypeError, ValueError):
        return str(raw)
    if not math.isfinite(number):
        raise GifdError(f"docs/results/{name} | {' | '.join(keys)} is {raw!r}: nothing to quote")
    text = f"{number:.{digits}f}"
    return f"+{text}" if sign and number > 0 else text


def _fields(spec: str) -> list[str]:
    """A tag's ``|``-separated fields; ``\\|`` (a table row's escaped separator) counts as ``|``."""
    return [f.strip() for f in spec.replace("\\|", "|").split("|")]


def _parse(spec: str) -> tuple[str, list[str], dict]:
    fields = _fields(spec)
    name, keys, options = fields[0], [], {}
    for f in fields[1:]:
        if re.fullmatch(r"digits=\d+", f):
            options["digits"] = int(f.split("=")[1])
        elif re.fullmatch(r"scale=-?[\d.]+", f):
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


def _number(name: str, keys: list[str]) -> float:
    """The finite number at ``keys`` in a record; a missing, null or NaN value is an error, not a verdict."""
    raw = lookup(name, *keys)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise GifdError(f"docs/results/{name} | {' | '.join(keys)} is {raw!r}, not a number") from None
    if not math.isfinite(value):
        raise GifdError(f"docs/results/{name} | {' | '.join(keys)} is {raw!r}: nothing to conclude from")
    return value


def _interval(name: str, keys: list[str]) -> tuple[float, float, float]:
    """(mean, 95% half-width, Wilcoxon p or NaN) of the paired difference at ``keys``: an entry with ``mean``,
    ``ci`` (and ``wilcoxon_p``), or in a ``.md`` quote block the key, ``<key> ci`` (and ``<key> wilcoxon p``)."""
    value = lookup(name, *keys)
    if isinstance(value, dict):
        if "mean" not in value or "ci" not in value:
            raise GifdError(f"docs/results/{name} | {' | '.join(keys)} is not a paired difference (no mean and ci)")
        p = value.get("wilcoxon_p")
        return (_number(name, [*keys, "mean"]), _number(name, [*keys, "ci"]),
                float("nan") if p is None else float(p))
    if name.endswith(".md"):
        stem = keys[-1]
        pairs = _load(name)
        p = float(pairs[f"{stem} wilcoxon p"]) if f"{stem} wilcoxon p" in pairs else float("nan")
        return _number(name, keys), _number(name, [*keys[:-1], stem + " ci"]), p
    raise GifdError(f"docs/results/{name} | {' | '.join(keys)} is a number, not a paired difference")


def _csv_keys(name: str, keys: list[str]) -> list[str]:
    """A .csv record's keys are (cell, column), and a cell name may itself contain `` | `` (as in :func:`_parse`)."""
    return [" | ".join(keys[:-1]), keys[-1]] if name.endswith(".csv") and len(keys) > 2 else keys


def judge(spec: str) -> tuple[bool, str]:
    """Whether the claim ``spec`` (``<file> | <key> ... | <verdict>``, see the module doc) holds for the committed
    records, and what the record says."""
    name, *rest = _fields(spec)
    if not rest:
        raise GifdError(f"claim {spec!r} names no verdict")
    for k, field in enumerate(rest):                     # two records compared: "<keys> | < <file> | <keys>"
        m = _RELATIVE.fullmatch(field)
        if m:
            if k == 0 or k == len(rest) - 1:
                raise GifdError(f"claim {spec!r}: an ordering needs keys on both sides of {field!r}")
            a = _number(name, _csv_keys(name, rest[:k]))
            b = _number(m["file"], _csv_keys(m["file"], rest[k + 1:]))
            return _OPS[m["op"]](a, b), f"{a:g} {m['op']} {b:g}"
    *keys, verdict = rest
    keys = _csv_keys(name, keys)
    if verdict in ("higher", "lower", "unsettled"):
        mean, ci, p = _interval(name, keys)
        said = f"{mean:+.2f} ± {ci:.2f}" + ("" if p != p else f", Wilcoxon p {p:.3f}")
        settled = p != p or p < 0.05
        higher, lower = mean - ci > 0 and settled, mean + ci < 0 and settled
        return {"higher": higher, "lower": lower, "unsettled": not (higher or lower)}[verdict], said
    m = _COMPARE.fullmatch(verdict)
    if not m:
        raise GifdError(f"claim {spec!r}: the verdict must be higher, lower, unsettled or a comparison such as '> 0'")
    value = _number(name, keys)
    return _OPS[m["op"]](value, float(m["x"].replace("−", "-"))), f"{value:g}"


def claims_in(markdown: str) -> list[dict]:
    """Every claim tag in ``markdown``: its spec, whether it holds, and what the record says."""
    found = []
    for m in CLAIM.finditer(markdown):
        spec = " ".join(m["spec"].split())
        holds, said = judge(spec)
        found.append({"spec": spec, "holds": holds, "record": said})
    return found
