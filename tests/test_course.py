"""The course's structure: every lesson opens and closes the same way, its cells stay short, the numbers its
text quotes agree with the committed records, and every solutions notebook runs (issue 18)."""

import re

import nbformat
import pytest

from gifd_lite.course import course_texts, documents, lessons, notebooks, run_notebook, solutions
from gifd_lite.results import CLAIM, TAG, claims_in, tags_in
from gifd_lite.errors import GifdError

OPENING = ["### What you will learn", "### Before you start", "### How long it takes", "### Where it sits"]
CLOSING = ["## Takeaways", "## Check your understanding", "## Exercises"]
MAX_CELL_LINES = 15


def _markdown(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "markdown"]


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level."""
    level = heading.split()[0]
    start = text.index(heading) + len(heading)
    stop = re.search(rf"^#{{1,{len(level)}}} ", text[start:], re.M)
    return text[start:start + stop.start()] if stop else text[start:]


@pytest.mark.parametrize("path", lessons(), ids=lambda p: p.stem)
def test_lesson_opens_with_objectives_and_closes_with_exercises(path):
    nb = nbformat.read(path, as_version=4)
    opening = nb.cells[0].source
    for heading in OPENING:
        assert heading in opening, f"{path.name}: the first cell lacks {heading!r}"
    objectives = re.findall(r"^\s*[-*\d.]+\s", _section(opening, OPENING[0]), re.M)
    assert 3 <= len(objectives) <= 5, f"{path.name}: {len(objectives)} learning objectives (3-5)"
    text = "\n".join(_markdown(nb))
    for heading in CLOSING:
        assert re.search(rf"^{re.escape(heading)}\s*$", text, re.M), f"{path.name}: no {heading!r} section"
    questions = re.findall(r"^\d+\.\s", _section(text, "## Check your understanding"), re.M)
    assert 3 <= len(questions) <= 5, f"{path.name}: {len(questions)} check questions (3-5)"
    exercises = _section(text, "## Exercises")
    assert len(re.findall(r"^\*\*Exercise", exercises, re.M)) >= 2, f"{path.name}: fewer than two exercises"
    assert "Stretch" in exercises, f"{path.name}: no stretch exercise"


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_every_lesson_takes_the_guides_parameters_and_keeps_its_widgets_behind_interactive(path):
    """The course's parameters contract (README, notebook 00): the first code cell (tagged ``parameters``) sets
    PRESET, SEED, DEVICE, OUTPUT_DIR and INTERACTIVE; a widget only shows behind ``if INTERACTIVE:`` (``make course``
    runs with it False)."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), f"{path.name}: the first code cell is not tagged"
    for name in ("PRESET", "SEED", "DEVICE", "OUTPUT_DIR", "INTERACTIVE"):
        assert re.search(rf"^{name} = ", code[0].source, re.M), f"{path.name}: the parameters cell lacks {name}"
    assert re.search(r"^INTERACTIVE = False\b", code[0].source, re.M), f"{path.name}: INTERACTIVE defaults to True"
    widgets = [c.source for c in code[1:] if re.search(r"_explorer\(|_browser\(|ipywidgets", c.source)]
    assert all(w.startswith("if INTERACTIVE:") for w in widgets), f"{path.name}: a widget outside INTERACTIVE"
    assert widgets, f"{path.name}: INTERACTIVE is set but no cell shows a widget"


def test_code_cells_are_short():
    longest = []
    for path in notebooks() + solutions():
        nb = nbformat.read(path, as_version=4)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code" and "parameters" not in cell.metadata.get("tags", []):
                longest.append((len(cell.source.strip().splitlines()), f"{path.name} cell {i}"))
    longest.sort(reverse=True)
    print("longest code cells:", longest[:5])
    assert longest[0][0] <= MAX_CELL_LINES, f"code cells over {MAX_CELL_LINES} lines: " + \
        ", ".join(f"{where} ({n})" for n, where in longest if n > MAX_CELL_LINES)


def test_no_cell_shows_a_figure_twice():
    """A cell whose value is a figure (a bare ``viz.show_images(...)`` as its last line) shows it once as the cell's
    value and once more when the inline backend flushes the open figures, in the wrong order (lesson 07 did)."""
    import ast

    bare = []
    for path in notebooks() + solutions():
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            lines = [line for line in cell.source.splitlines() if line.strip() and not line.lstrip().startswith("%")]
            if cell.cell_type != "code" or not lines or lines[-1].rstrip().endswith(";"):
                continue
            last = ast.parse("\n".join(lines)).body[-1]
            if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call):
                name = getattr(last.value.func, "attr", getattr(last.value.func, "id", ""))
                if name.startswith(("show_", "plot_")):
                    bare.append(f"{path.name} cell {i}: {name}")
    assert not bare, f"end these cells with plt.show() or a semicolon: {bare}"


def _stale_quotes(named_texts) -> tuple[int, list[str]]:
    """(how many quote tags the ``(name, markdown)`` pairs hold, the ones whose number the record contradicts)."""
    checked, wrong = 0, []
    for name, text in named_texts:
        for tag in tags_in(text):
            checked += 1
            if tag["text"] != tag["expected"]:
                wrong.append(f"{name}: {tag['text']} but the record says {tag['expected']} ({tag['spec']})")
    return checked, wrong


def test_quoted_numbers_agree_with_the_records():
    checked, wrong = _stale_quotes((path.name, text) for path in notebooks() + solutions()
                                   for text in _markdown(nbformat.read(path, as_version=4)))
    print(f"{checked} quoted numbers checked against docs/results")
    assert not wrong, "\n".join(wrong)
    assert checked > 0


def test_quoted_numbers_in_the_course_pages_agree_with_the_records():
    """The instructor notes and docs/results/README.md quote records the same way the lessons do."""
    pages = [(path.name, path.read_text()) for path in documents()]
    for name, text in pages:
        assert text.count("<!-- q ") == len(TAG.findall(text)), f"{name}: a quote tag without its number"
    checked, wrong = _stale_quotes(pages)
    print(f"{checked} quoted numbers in {len(pages)} pages checked against docs/results")
    assert not wrong, "\n".join(wrong)
    assert checked > 0


def _course_texts() -> list[tuple[str, str]]:
    """(file name, markdown) of every lesson's and solutions notebook's markdown cells and of every course page."""
    return [(path.name, text) for path, text in course_texts()]


def test_conclusions_hold_for_the_records():
    """Every sentence that concludes something from a record (a claim tag) still holds: a table measured again that
    no longer supports a conclusion fails here, at the sentence that draws it."""
    checked, failing = 0, []
    for name, text in _course_texts():
        for claim in claims_in(text):
            checked += 1
            if not claim["holds"]:
                failing.append(f"{name}: '{claim['spec']}' does not hold: the record says {claim['record']}")
    print(f"{checked} conclusions checked against docs/results")
    assert not failing, "\n".join(failing)
    assert checked > 0


def test_claim_verdicts_on_known_records(tmp_path, monkeypatch):
    import json

    from gifd_lite import results

    (tmp_path / "s.json").write_text(json.dumps({
        "clear": {"mean": 1.0, "ci": 0.5, "wilcoxon_p": 0.01}, "ranks_disagree": {"mean": 1.0, "ci": 0.5, "wilcoxon_p": 0.2},
        "zero_inside": {"mean": -0.1, "ci": 0.5, "wilcoxon_p": 0.8}, "down": {"mean": -2.0, "ci": 1.0}, "count": 7,
        "five_images": {"mean": 2.0, "ci": 1.0, "wilcoxon_p": 0.0625}, "no_ci": {"mean": 1.0, "ci": None}}))
    (tmp_path / "t.md").write_text("text\n```quote\nrule diff: 1.5\nrule diff ci: 2.0\nclear: 2.0\nclear ci: 1.0\n"
                                   "clear wilcoxon p: 0.3\nbroken: 1.0\nbroken ci: nan\n```\n")
    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path)
    results._load.cache_clear()
    try:
        verdicts = {spec: results.judge(spec)[0] for spec in (
            "s.json | clear | higher", "s.json | clear | unsettled", "s.json | ranks_disagree | higher",
            "s.json | zero_inside | unsettled", "s.json | zero_inside | lower", "s.json | down | lower",
            "t.md | rule diff | unsettled", "t.md | rule diff | higher", "s.json | count | >= 7", "s.json | count | > 7",
            "s.json | count | > t.md | rule diff", "t.md | rule diff | >= s.json | count",
            "s.json | five_images | higher", "s.json | five_images | unsettled", "t.md | clear | higher",
            "t.md | clear | unsettled", "s.json | down | mean | < −1.5")}
        assert verdicts == {"s.json | clear | higher": True, "s.json | clear | unsettled": False,
                            "s.json | ranks_disagree | higher": False, "s.json | zero_inside | unsettled": True,
                            "s.json | zero_inside | lower": False, "s.json | down | lower": True,
                            "t.md | rule diff | unsettled": True, "t.md | rule diff | higher": False,
                            "s.json | count | >= 7": True, "s.json | count | > 7": False,
                            "s.json | count | > t.md | rule diff": True, "t.md | rule diff | >= s.json | count": False,
                            # an exact Wilcoxon p on five pairs is at least 0.0625: no established difference
                            "s.json | five_images | higher": False, "s.json | five_images | unsettled": True,
                            "t.md | clear | higher": False, "t.md | clear | unsettled": True,   # the .md record's p
                            "s.json | down | mean | < −1.5": True}
        with pytest.raises(Exception, match="not a paired difference"):
            results.judge("s.json | count | higher")
        with pytest.raises(Exception, match="verdict"):
            results.judge("s.json | count | bigger")
        for broken in ("t.md | broken | unsettled", "s.json | no_ci | unsettled"):   # NaN or null is no verdict
            with pytest.raises(results.GifdError, match="not a number|nothing to conclude"):
                results.judge(broken)
        with pytest.raises(results.GifdError, match="keys on both sides"):
            results.judge("s.json | > s.json | count")
        assert len(CLAIM.findall("a<!-- claim s.json | clear |\n higher --> b")) == 1   # a tag may wrap
    finally:
        results._load.cache_clear()


def test_refresh_rewrites_a_stale_number_and_keeps_the_rest():
    from gifd_lite.results import refresh

    spec = "foundation.md | idlg lenet, mean psnr"
    right = tags_in(f"1.0 dB<!-- q {spec} -->")[0]["expected"]
    text = f"iDLG reached −1,234.5 dB<!-- q {spec} --> on average, and 7 images."
    assert refresh(text) == f"iDLG reached {right} dB<!-- q {spec} --> on average, and 7 images."
    assert refresh(refresh(text)) == refresh(text)


def test_every_quote_tag_is_well_formed():
    """A tag the pattern cannot read (no number right before it) would silently check nothing."""
    for name, text in _course_texts():
        assert text.count("<!-- q ") == len(TAG.findall(text)), f"{name}: a quote tag without its number"
        assert text.count("<!-- claim ") == len(CLAIM.findall(text)), f"{name}: an unclosed claim tag"


def test_a_quote_negates_and_reads_the_number_before_a_parenthesis():
    spec = "reproduce/summary.json | main | paired | gifd - gias | mean"
    plain = tags_in(f"1<!-- q {spec} -->")[0]["expected"]
    negated = tags_in(f"1<!-- q {spec} | scale=-1 -->")[0]["expected"]
    assert float(negated) == pytest.approx(-float(plain))
    (tag,) = tags_in(f"batch 8 (10<!-- q {spec} -->")
    assert tag["text"] == "10"                    # not "8" with "(10" read as its unit


def test_a_quote_of_a_missing_value_fails_instead_of_writing_it(monkeypatch):
    """A partial table has intervals of null (n = 1): refreshing a lesson must stop, not write "None" into it."""
    from gifd_lite import results

    for raw in (None, float("nan")):
        monkeypatch.setattr(results, "lookup", lambda *a, raw=raw: raw)
        with pytest.raises(GifdError, match="nothing to quote"):
            results.refresh("+1.00<!-- q reproduce/summary.json | main | paired | gifd - gias | ci -->")


def test_tags_inside_a_table_row_escape_their_separators():
    """A bare ``|`` inside a comment still splits a markdown table's cell: the tag then shows as text and the row
    loses a column. In a table row, tags write ``\\|``."""
    import re

    broken = [f"{name}: {line.strip()[:80]}" for name, text in _course_texts() for line in text.splitlines()
              if line.lstrip().startswith("|")
              and any(re.search(r"(?<!\\)\|", c) for c in re.findall(r"<!--.*?-->", line))]
    assert not broken, "\n".join(broken)
    from gifd_lite.results import judge, tags_in
    row = "| batch 8 | 1.0<!-- q foundation.md \\| idlg lenet, mean psnr --> |"
    assert tags_in(row)[0]["expected"] == tags_in("1.0<!-- q foundation.md | idlg lenet, mean psnr -->")[0]["expected"]
    assert judge("foundation.md \\| idlg lenet, mean psnr \\| > 0") == judge("foundation.md | idlg lenet, mean psnr | > 0")


def test_every_lesson_with_exercises_has_a_solutions_notebook():
    names = {p.stem.removesuffix("_solutions") for p in solutions()}
    missing = [p.stem for p in lessons() if p.stem not in names]
    assert not missing, f"no solutions notebook for {missing}"


@pytest.mark.notebook
@pytest.mark.parametrize("path", solutions(), ids=lambda p: p.stem)
def test_solutions_run_in_smoke_preset(path, tmp_path):
    metrics = run_notebook(path, tmp_path, preset="smoke", device="cpu")
    assert metrics["preset"] == "smoke" and len(metrics) > 3, f"{path.stem} wrote no results"


@pytest.mark.notebook
def test_a_newcomer_runs_the_first_notebooks_from_notebooks_without_setting_anything(tmp_path, monkeypatch):
    """``jupyter lab notebooks/`` with the data at the documented default place (the checkout's ``data/``): the
    kernel's working directory is ``notebooks/`` and GIFD_DATA is not set."""
    import os

    import papermill

    from gifd_lite.course import NOTEBOOK_DIR
    from gifd_lite.data import data_root

    default = NOTEBOOK_DIR.parent / "data" / "cifar10"
    made_link = False
    if not default.exists():           # CI keeps CIFAR-10 elsewhere: put it where a newcomer would, for this test
        source = data_root() / "cifar10"
        if not source.is_dir():
            pytest.skip("no CIFAR-10 image folder to place at the default location")
        default.symlink_to(source.resolve(), target_is_directory=True)
        made_link = True
    monkeypatch.delenv("GIFD_DATA", raising=False)
    monkeypatch.setenv("GIFD_PRESET", "smoke")
    try:
        for stem in ("00_setup_and_tour", "01_gradient_leakage"):
            out = tmp_path / stem
            out.mkdir()
            papermill.execute_notebook(str(NOTEBOOK_DIR / f"{stem}.ipynb"), str(out / f"{stem}.ipynb"),
                                       parameters={"OUTPUT_DIR": str(out)}, cwd=str(NOTEBOOK_DIR),
                                       kernel_name="python3", progress_bar=False)
            assert (out / "metrics.json").exists()
            assert "GIFD_DATA" not in os.environ
    finally:
        if made_link:
            default.unlink()
