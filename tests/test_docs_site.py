"""The documentation site, built with MkDocs (``mkdocs build --strict``) and read in a real
browser: headless Chromium (the distribution's ``chromium`` and ``chromium-driver``, which
``.ci/run`` installs) driven by Selenium, against the site served on localhost.

For each page it checks what a reader would see: the formulas typeset by MathJax (an
``mjx-container`` per formula, no ``mjx-merror``), every image loaded (a non-zero natural
width), no error in the browser's console, and for the language switch, the other edition one
click away. A search for a word returns results in each language. Screenshots land in
``docs/screenshots/`` for review.

The site comes from ``SCRATCHLM_DOCS_SITE`` when ``.ci/run`` has just built it, otherwise it
is built here (about a minute). The generated pages (``docs/api/``, the notebook links) must be
up to date: ``python docs/sync_pages.py`` writes them.
"""

import functools
import http.server
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "docs" / "screenshots"
CJK = re.compile(r"[\u4e00-\u9fff]")

sys.path.insert(0, str(REPO / "docs"))
import sync_pages  # noqa: E402

sys.path.pop(0)


def test_generated_pages_are_up_to_date():
    assert sync_pages.stale() == [], "run `python docs/sync_pages.py` to write the site's pages"


def test_every_public_module_has_an_api_page_and_no_answer_key_does():
    modules = set(sync_pages.public_modules())
    assert {"scratchlm.autograd.engine", "scratchlm.functional.layer_norm",
            "scratchlm.models.gpt", "scratchlm.optim"} <= modules
    assert not any(".reference" in name for name in modules)
    for name in modules:
        page = REPO / "docs" / sync_pages.page_of(name)
        assert page.read_text(encoding="utf-8").endswith(f"::: {name}\n")


def test_every_notebook_of_both_editions_is_on_the_site():
    english = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    chinese = sorted(p.stem for p in (REPO / "notebooks" / "zh").glob("[0-9][0-9]_*.ipynb"))
    linked = sorted(p.name for p in (REPO / "docs" / "notebooks").glob("*.ipynb"))
    assert linked == sorted([f"{s}.ipynb" for s in english] + [f"{s}.zh.ipynb" for s in chinese])
    for link in (REPO / "docs" / "notebooks").glob("*.ipynb"):
        assert link.resolve().is_file(), f"{link.name} points nowhere"


needs_site_tools = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("selenium") is None
    or shutil.which("chromium") is None or shutil.which("chromedriver") is None,
    reason="needs the docs extra (pip install -e '.[docs]') and the distribution's chromium "
           "and chromium-driver (installed by .ci/run)")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    built = os.environ.get("SCRATCHLM_DOCS_SITE")
    if built:
        return Path(built).resolve()
    folder = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                             str(folder)], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "DISABLE_MKDOCS_2_WARNING": "true",
                                 "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def base_url(site):
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1000", "--lang=en"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def open_page(browser, url):
    """Load ``url``, wait for MathJax to finish typesetting, and return the console's
    errors."""
    browser.get_log("browser")  # drop what earlier pages left
    browser.get(url)
    browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const ready = () => window.MathJax && MathJax.startup && MathJax.startup.promise;"
        "const wait = (tries) => ready() ? MathJax.startup.promise.then(() => done(true))"
        "  : tries > 0 ? setTimeout(() => wait(tries - 1), 100) : done(false);"
        "wait(100);")
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def rendered(browser):
    """What the reader sees: formulas typeset, formulas that failed, images and how many of
    them loaded, the page's language and its text."""
    return browser.execute_script(
        "const images = [...document.querySelectorAll('article img')];"
        "return {formulas: document.querySelectorAll('mjx-container').length,"
        "        failed: document.querySelectorAll('mjx-merror').length,"
        "        images: images.length,"
        "        loaded: images.filter(i => i.complete && i.naturalWidth > 0).length,"
        "        lang: document.documentElement.lang,"
        "        text: document.querySelector('article').innerText};")


PAGES = [
    ("home", "", "en"),
    ("home-zh", "zh/", "zh"),
    ("api-layer-norm", "api/scratchlm/functional/layer_norm/", "en"),
    ("notebook-attention", "notebooks/05_attention/", "en"),
    ("notebook-attention-zh", "zh/notebooks/05_attention/", "zh"),
]


@needs_site_tools
@pytest.mark.parametrize("name, path, lang", PAGES, ids=[page[0] for page in PAGES])
def test_page_renders_in_the_browser(browser, base_url, name, path, lang):
    errors = open_page(browser, base_url + path)
    SCREENSHOTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    page = rendered(browser)
    assert errors == [], f"{path}: console errors {errors}"
    assert page["lang"] == lang
    assert page["failed"] == 0, f"{path}: {page['failed']} formulas failed to typeset"
    assert page["loaded"] == page["images"], f"{path}: {page['images'] - page['loaded']} " \
                                             "images did not load"
    if lang == "zh":
        assert len(CJK.findall(page["text"])) > 50, f"{path} is not Chinese"
    if name.startswith("home"):
        assert page["formulas"] >= 1
    if name.startswith("notebook"):
        assert page["formulas"] >= 5, f"{path}: only {page['formulas']} formulas typeset"
        assert page["images"] >= 1, f"{path}: the notebook's figures are missing"
    if name == "api-layer-norm":
        assert "LayerNorm" in page["text"] and "backward" in page["text"]


@needs_site_tools
def test_language_switch_leads_to_the_same_page_in_the_other_edition(browser, base_url):
    open_page(browser, base_url + "notebooks/05_attention/")
    link = browser.find_element("css selector", "a[hreflang='zh']").get_attribute("href")
    assert link.rstrip("/").endswith("zh/notebooks/05_attention")
    open_page(browser, link)
    assert rendered(browser)["lang"] == "zh"


@needs_site_tools
@pytest.mark.parametrize("path, query", [("", "attention"), ("zh/", "注意力")],
                         ids=["en", "zh"])
def test_search_finds_pages(browser, base_url, path, query):
    from selenium.webdriver.support.ui import WebDriverWait

    errors = open_page(browser, base_url + path)
    box = browser.find_element("css selector", "input.md-search__input")
    box.click()
    box.send_keys(query)
    WebDriverWait(browser, 30).until(
        lambda driver: driver.find_elements("css selector", ".md-search-result__item"))
    results = browser.find_elements("css selector", ".md-search-result__item")
    browser.save_screenshot(str(SCREENSHOTS / f"search-{'zh' if path else 'en'}.png"))
    assert errors == []
    assert len(results) >= 1
    assert query.lower() in results[0].text.lower()
