"""Sphinx configuration of the course website (``make book``).

The source folder is the repository itself (``sphinx-build -c docs/book . build/book/html``), so every page keeps
its path and the relative links between the docs work. MyST-NB renders the notebooks without executing anything:
a lesson or solution is shown from its executed copy in ``docs/course/executed/`` (written by ``make course``)
where one is committed, else from the stripped notebook with a note that it has no outputs yet.
"""

from pathlib import Path

import nbformat
from pygments.lexers.special import TextLexer

from gifd_lite.course import code_cells, current_text

ROOT = Path(__file__).resolve().parents[2]

project = "gifd_lite"
author = "the gifd_lite authors"
root_doc = "docs/book/index"
extensions = ["myst_nb", "sphinx-mathjax-offline"]   # MathJax from the package, not from a CDN

include_patterns = ["README.md", "docs/book/index.md", "notebooks/*.ipynb", "notebooks/solutions/*.ipynb",
                    "docs/course/*.md", "docs/course/instructor/*.md", "docs/results/*.md",
                    "docs/results/reproduce*/*.md"]
# prune every other top-level folder (.venv, runs, data, ...) so that Sphinx does not walk it
exclude_patterns = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and p.name not in ("docs", "notebooks"))
exclude_patterns += ["docs/course/executed", "**/.ipynb_checkpoints"]

nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
# the lessons open with "# title" then "### What you will learn": a deliberate jump of heading level
suppress_warnings = ["myst.header"]

html_theme = "sphinx_book_theme"
html_title = "gifd_lite: gradient inversion, from DLG to GIFD"
html_extra_path = ["_extra"]          # index.html at the site's root, forwarding to the landing page
html_theme_options = {"show_toc_level": 2}
html_show_sourcelink = False

NO_OUTPUTS = """```{{admonition}} No outputs yet
:class: warning no-outputs
This page shows the stripped notebook `{path}`: `docs/course/executed/` has no executed copy of it. Run
`make course` and then `make book` to see its figures and numbers here.
```"""


STALE = """```{{admonition}} Outputs from an earlier version
:class: warning stale-outputs
The code of `notebooks/{path}` has changed since this copy was executed: the outputs below come from the
earlier code. `make course` and then `make book` refresh them.
```"""


def use_executed_copy(app, docname: str, source: list[str]) -> None:
    """Swap a notebook's source for its executed copy (with a note when the notebook's code has changed since,
    else with the lesson's current markdown), or put the no-outputs note above the stripped one."""
    if not docname.startswith("notebooks/"):
        return
    relative = Path(docname).relative_to("notebooks").with_suffix(".ipynb")
    executed = Path(app.config.book_executed) / relative
    app.env.note_dependency(str(executed))      # rebuilt when the executed copy appears or changes
    if executed.exists():
        nb = nbformat.reads(executed.read_text(encoding="utf-8"), as_version=4)
        lesson = nbformat.reads(source[0], as_version=4)
        if code_cells(nb) != code_cells(lesson):
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(STALE.format(path=relative)))
        else:
            current_text(nb, lesson)
        source[0] = nbformat.writes(nb)
    else:
        nb = nbformat.reads(source[0], as_version=4)
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(NO_OUTPUTS.format(path=f"notebooks/{relative}")))
        source[0] = nbformat.writes(nb)


def setup(app) -> None:
    app.add_config_value("book_executed", str(ROOT / "docs" / "course" / "executed"), "env")
    app.connect("source-read", use_executed_copy)
    app.set_html_assets_policy("always")    # MathJax on every page: the sidebar's titles have formulas too
    app.add_lexer("quote", TextLexer)       # docs/results' ```quote blocks: values for gifd_lite.results, plain text
