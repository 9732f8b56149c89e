"""The course website (issue 19): ``make course`` publishes the executed notebooks to docs/course/executed/, and
``make book`` gives every notebook, solution and doc a page, showing a notebook from its executed copy with its
figures, else the stripped one with a note; the build is clean and its pages load nothing from another host."""

import base64
import io
import re
import subprocess
import sys

import nbformat
import pytest
from PIL import Image

from gifd_lite import course
from gifd_lite.course import NOTEBOOK_DIR, notebooks, solutions
from gifd_lite.errors import GifdError

ROOT = NOTEBOOK_DIR.parent
EXECUTED_DIR = ROOT / "docs" / "course" / "executed"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs" / "course").glob("*.md")),
        *sorted((ROOT / "docs" / "course" / "instructor").glob("*.md")), *sorted((ROOT / "docs" / "results").glob("**/*.md"))]
SHOWN = "01_gradient_leakage"          # the lesson the site test shows from a (fake) executed copy
STALE = "03_gan_prior"                 # one whose (fake) executed copy ran an earlier version of its code
OLD_SENTENCE = "A sentence the lesson has since corrected."   # in SHOWN's executed copy only


def _png(size: tuple[int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, "red").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built into a temporary folder, lesson 01 from an executed copy with one 32x16 figure."""
    for module in ("sphinx", "myst_nb", "sphinx_book_theme", "sphinx-mathjax-offline"):
        pytest.importorskip(module, reason=f"{module} is not installed: pip install -e '.[book]' (Python >= 3.11)")
    tmp = tmp_path_factory.mktemp("book")
    executed = tmp / "executed"
    executed.mkdir()
    nb = nbformat.read(NOTEBOOK_DIR / f"{SHOWN}.ipynb", as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    first_code.outputs = [nbformat.v4.new_output("display_data", data={"image/png": _png((32, 16)),
                                                                      "text/plain": "<Figure>"})]
    next(c for c in nb.cells if c.cell_type == "markdown").source += f"\n\n{OLD_SENTENCE}"
    nbformat.write(nb, executed / f"{SHOWN}.ipynb")
    stale = nbformat.read(NOTEBOOK_DIR / f"{STALE}.ipynb", as_version=4)
    next(c for c in stale.cells if c.cell_type == "code").source += "\nprint('an earlier version')"
    nbformat.write(stale, executed / f"{STALE}.ipynb")
    warnings = tmp / "warnings.txt"
    subprocess.run([sys.executable, "-m", "sphinx", "-q", "-c", str(ROOT / "docs" / "book"), "-d", str(tmp / "doctrees"),
                    "-w", str(warnings), "-D", f"book_executed={executed}", str(ROOT), str(tmp / "html")], check=True)
    return tmp / "html", warnings.read_text()


def test_every_notebook_solution_and_doc_has_a_page(site):
    html, _ = site
    sources = notebooks() + solutions() + DOCS
    missing = [str(p.relative_to(ROOT)) for p in sources if not (html / p.relative_to(ROOT)).with_suffix(".html").exists()]
    assert not missing, f"no page for {missing}"
    assert (html / "index.html").exists() and (html / "docs" / "book" / "index.html").exists()


def test_a_notebook_is_shown_from_its_executed_copy_with_its_figure(site):
    html, _ = site
    page = html / "notebooks" / f"{SHOWN}.html"
    text = page.read_text()
    assert "no-outputs" not in text
    shown = [Image.open(page.parent / src).size for src in re.findall(r'<img[^>]*\ssrc="([^"]+)"', text)]
    assert (32, 16) in shown, f"the executed copy's figure is not on {page.name} (images: {shown})"


def test_an_executed_copy_of_older_code_says_so(site):
    html, _ = site
    assert "stale-outputs" in (html / "notebooks" / f"{STALE}.html").read_text()
    assert "stale-outputs" not in (html / "notebooks" / f"{SHOWN}.html").read_text()


def test_an_executed_copy_of_the_same_code_shows_the_lessons_current_text(site):
    html, _ = site
    text = (html / "notebooks" / f"{SHOWN}.html").read_text()
    assert OLD_SENTENCE not in text
    assert "What you will learn" in text


def test_a_notebook_without_an_executed_copy_says_it_has_no_outputs(site):
    html, _ = site
    text = (html / "notebooks" / "02_inverting_gradients.html").read_text()
    assert "no-outputs" in text and "No outputs yet" in text


def test_the_build_has_no_warnings_and_loads_nothing_from_another_host(site):
    html, warnings = site
    assert not warnings.strip(), f"sphinx warned:\n{warnings}"
    external = re.compile(r'<(?:script|link|img)\b[^>]*\s(?:src|href)="(?:https?:)?//')
    remote = [str(p.relative_to(html)) for p in html.rglob("*.html") if external.search(p.read_text())]
    assert not remote, f"pages that load a script, style sheet or image from another host: {remote}"


def test_run_course_publishes_lessons_and_solutions_where_the_book_finds_them(tmp_path, monkeypatch):
    def fake_run(path, out_root, **_):
        (out_root / path.stem).mkdir(parents=True)
        (out_root / path.stem / path.name).write_text("{}")
        return {"_wall_seconds": 0.0}

    monkeypatch.setattr(course, "run_notebook", fake_run)
    ran = course.run_course("smoke", tmp_path / "runs", only=["01"], publish=tmp_path / "executed")
    assert set(ran) == {"01_gradient_leakage", "01_gradient_leakage_solutions"}
    assert (tmp_path / "executed" / "01_gradient_leakage.ipynb").exists()
    assert (tmp_path / "executed" / "solutions" / "01_gradient_leakage_solutions.ipynb").exists()


def test_a_published_copy_names_paths_relative_to_its_notebook(tmp_path):
    run = tmp_path / "run.ipynb"
    root = NOTEBOOK_DIR.parent
    run.write_text(f'{{"OUTPUT_DIR": "{root}/runs/laptop/x"}}')
    course.publish_notebook(run, tmp_path / "a.ipynb", source=NOTEBOOK_DIR / "01_gradient_leakage.ipynb")
    course.publish_notebook(run, tmp_path / "b.ipynb", source=NOTEBOOK_DIR / "solutions" / "01_x_solutions.ipynb")
    assert (tmp_path / "a.ipynb").read_text() == '{"OUTPUT_DIR": "../runs/laptop/x"}'
    assert (tmp_path / "b.ipynb").read_text() == '{"OUTPUT_DIR": "../../runs/laptop/x"}'


def test_a_failing_notebook_does_not_stop_the_course_and_is_reported(tmp_path, monkeypatch):
    def fake_run(path, out_root, **_):
        if path.stem == "01_gradient_leakage":
            raise RuntimeError("cell 4 failed")
        (out_root / path.stem).mkdir(parents=True)
        (out_root / path.stem / path.name).write_text("{}")
        return {"_wall_seconds": 1.5}

    done = []
    monkeypatch.setattr(course, "run_notebook", fake_run)
    with pytest.raises(GifdError, match="1 of 3 notebooks failed: 01_gradient_leakage .RuntimeError: cell 4 failed"):
        course.run_course("smoke", tmp_path / "runs", only=["00", "01"], publish=tmp_path / "executed",
                          on_done=lambda *a: done.append(a))
    assert done == [("00_setup_and_tour", 1.5, None), ("01_gradient_leakage", None, "RuntimeError: cell 4 failed"),
                    ("01_gradient_leakage_solutions", 1.5, None)]
    assert (tmp_path / "executed" / "solutions" / "01_gradient_leakage_solutions.ipynb").exists()
    assert not (tmp_path / "executed" / "01_gradient_leakage.ipynb").exists()


PUBLISHED = sorted(EXECUTED_DIR.glob("**/*.ipynb")) or [
    pytest.param(None, marks=pytest.mark.skip(reason="no executed notebooks committed yet (make course)"))]


@pytest.mark.parametrize("path", PUBLISHED, ids=lambda p: p.stem if p else "none")
def test_committed_executed_notebooks_show_figures_and_no_errors(path):
    """What the website renders (``make course`` publishes it): a copy of a notebook that exists, run to the end."""
    relative = path.relative_to(EXECUTED_DIR)
    assert (NOTEBOOK_DIR / relative).exists(), f"{relative}: no such notebook under notebooks/"
    outputs = [o for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"], f"{relative} has an error output"
    draws = any(re.search(r"plt\.show\(|\bshow_\w+\(|\bplot_\w+\(", c.source)
                for c in nbformat.read(NOTEBOOK_DIR / relative, as_version=4).cells if c.cell_type == "code")
    if draws:                               # a solutions notebook may answer with tables only
        assert any("image/png" in o.get("data", {}) for o in outputs), f"{relative} shows no figure"


@pytest.mark.parametrize("path", sorted(EXECUTED_DIR.glob("**/*.ipynb")), ids=lambda p: p.stem)
def test_an_executed_copy_of_the_same_code_carries_the_lessons_text(path):
    """The website shows a same-code copy with its lesson's text anyway; the committed copy says the same, so a
    reader who opens the .ipynb does not meet a corrected sentence (tools/refresh_quotes.py keeps them in step)."""
    lesson = nbformat.read(NOTEBOOK_DIR / path.relative_to(EXECUTED_DIR), as_version=4)
    copy = nbformat.read(path, as_version=4)
    if course.code_cells(copy) != course.code_cells(lesson):
        pytest.skip("executed with earlier code: the website marks it stale")
    synced = nbformat.read(path, as_version=4)
    course.current_text(synced, lesson)
    assert [c.source for c in copy.cells] == [c.source for c in synced.cells], "run tools/refresh_quotes.py"
