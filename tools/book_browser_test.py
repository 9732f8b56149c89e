"""Open every page of the built course website in headless Chromium and check what a reader sees (``make book-test``).

Checks, on every page: each image is loaded with a non-zero natural size, no error output or Python traceback is
shown, and every formula has been typeset by MathJax (served from the site itself). A page built from an executed
notebook (``docs/course/executed/``) must also show every figure that notebook's outputs hold (a solutions
notebook that only prints tables has none). A full-page screenshot
of each page goes to ``BUILD/screenshots/``.

Chromium is Debian's ``chromium`` with its ``chromium-driver``, installed with apt-get when missing (as root); the
driver is given to Selenium explicitly, so Selenium Manager never downloads one. Where Chromium or Selenium cannot
be had, the script prints one ``SKIP:`` line and exits 0.

    python tools/book_browser_test.py [BUILD]     # BUILD defaults to build/book (the site is BUILD/html)
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

EXECUTED = Path(__file__).resolve().parent.parent / "docs" / "course" / "executed"
WIDTH, MAX_HEIGHT = 1280, 16000          # screenshot size in CSS pixels (Chromium's limit is about 16k)
TIMEOUT = 600                            # seconds for one page: generous, for a machine busy with training

# run in the page once it has loaded: waits for MathJax and for every image, then reports what is shown
INSPECT = """
const done = arguments[arguments.length - 1];
const typeset = window.MathJax && MathJax.startup ? MathJax.startup.promise : Promise.resolve();
const decoded = [...document.images].map(img => img.decode().catch(() => null));
Promise.all([typeset, ...decoded]).then(() => done({
  images: [...document.images].map(img => [img.getAttribute("src"), img.naturalWidth, img.naturalHeight]),
  outputImages: document.querySelectorAll(".cell_output img").length,
  noOutputs: document.querySelector(".no-outputs") !== null,
  errors: document.querySelectorAll(".output.traceback, .output.error").length,
  traceback: /Traceback \\(most recent call last\\)|An Exception was encountered/.test(document.body.innerText),
  untypeset: [...document.querySelectorAll(".math")].filter(m => !m.querySelector("mjx-container")).length,
  height: document.documentElement.scrollHeight,
}));
"""


def find_chromium() -> tuple[str, str] | str:
    """The Chromium and chromedriver executables, installing Debian's packages if they are missing; or why not."""
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if all(found):
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return "Chromium is not installed and apt-get is not available as root (apt-get install chromium chromium-driver)"
    print("installing Debian's chromium and chromium-driver ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]):
        if subprocess.run(command, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            return f"Chromium could not be installed: {' '.join(command)} failed"
    found = shutil.which("chromium"), shutil.which("chromedriver")
    return found if all(found) else "Chromium is still not on PATH after apt-get install"


def start_browser(chromium: str, chromedriver: str):
    """Headless Chromium under Selenium, with the given driver (no Selenium Manager, no download)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WIDTH},900", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.command_executor.client_config.timeout = TIMEOUT
    driver.set_page_load_timeout(TIMEOUT)
    driver.set_script_timeout(TIMEOUT)
    return driver


def screenshot(driver, height: int, path: Path) -> None:
    """A PNG of the whole page (up to MAX_HEIGHT), through the DevTools protocol."""
    clip = {"x": 0, "y": 0, "width": WIDTH, "height": min(height, MAX_HEIGHT), "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                              "clip": clip})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def figures_in_executed_copy(name: str) -> int:
    """How many image outputs the executed copy behind page ``name`` (``notebooks/….html``) holds; 0 without one."""
    copy = EXECUTED / Path(name).relative_to("notebooks").with_suffix(".ipynb")
    if not copy.is_file():
        return 0
    cells = json.loads(copy.read_text())["cells"]
    return sum(any(kind.startswith("image/") for kind in out.get("data", {}))
               for cell in cells for out in cell.get("outputs", []))


def check_page(driver, page: Path, html: Path, shots: Path) -> tuple[dict, list[str]]:
    """Load one page, screenshot it, and return what it showed and its problems."""
    name = page.relative_to(html).as_posix()
    driver.get(page.as_uri())
    seen = driver.execute_async_script(INSPECT)
    screenshot(driver, seen["height"], shots / name.replace("/", "__").replace(".html", ".png"))
    problems = [f"{name}: image {src} not loaded" for src, w, h in seen["images"] if not (w and h)]
    if seen["errors"] or seen["traceback"]:
        problems.append(f"{name}: shows an error output or a Python traceback")
    if seen["untypeset"]:
        problems.append(f"{name}: {seen['untypeset']} formulas not typeset by MathJax")
    seen["expected"] = expected = figures_in_executed_copy(name) if name.startswith("notebooks/") else 0
    if name.startswith("notebooks/") and not seen["noOutputs"]:
        if seen["outputImages"] < expected:
            problems.append(f"{name}: shows {seen['outputImages']} of its executed notebook's {expected} figures")
    return seen, problems


def main(build: Path) -> int:
    """Check every page of ``build/html``; 0 when all pass (or the check is skipped), 1 otherwise."""
    html = (build / "html").resolve()
    if not (html / "index.html").exists():
        print(f"no site at {html}: run `make book` first", file=sys.stderr)
        return 1
    try:
        import selenium  # noqa: F401
    except ImportError:
        print("SKIP: selenium is not installed (pip install -e '.[book]')")
        return 0
    found = find_chromium()
    if isinstance(found, str):
        print(f"SKIP: {found}")
        return 0
    pages = sorted(p for p in html.rglob("*.html") if not p.relative_to(html).parts[0].startswith("_"))
    shots = build / "screenshots"
    shutil.rmtree(shots, ignore_errors=True)
    start, driver = time.perf_counter(), start_browser(*found)
    problems, images, executed = [], 0, 0
    try:
        for page in pages:
            began = time.perf_counter()
            seen, page_problems = check_page(driver, page, html, shots)
            figures = f" ({seen['outputImages']} output figures of {seen['expected']})" if seen["expected"] else ""
            print(f"  {page.relative_to(html)}: {len(seen['images'])} images{figures}, "
                  f"{time.perf_counter() - began:.0f} s", flush=True)
            images += len(seen["images"])
            executed += page.relative_to(html).parts[0] == "notebooks" and not seen["noOutputs"]
            problems += page_problems
    finally:
        driver.quit()
    print(f"checked {len(pages)} pages ({executed} built from executed notebooks) and {images} images in "
          f"{time.perf_counter() - start:.0f} s; screenshots in {shots}")
    for problem in problems:
        print("FAIL:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/book")))
