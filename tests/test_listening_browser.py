"""The listening page in a real browser: Debian's headless chromium, driven by selenium.

Every ``<audio>`` must load its clip (``readyState`` >= 1, no media error), every image must
decode (``naturalWidth`` > 0), every link must resolve, and the console must stay free of
errors, both from a static web server and opened as a file. A screenshot of each page is
kept in ``build/test-artifacts/``. ``make install`` installs chromium and chromium-driver;
only where they are absent are these tests skipped.
"""

import functools
import http.server
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import results_fixture as fx

from stemprover.report import listening

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "build" / "test-artifacts"
SMOKE_PAGE = REPO / "build" / "demo" / "smoke" / "index.html"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Debian chromium and chromium-driver are not installed (make install as root "
    "installs them)",
)

STATE = """
const audio = Array.from(document.querySelectorAll('audio'));
return {
  audio: audio.map(a => ({src: a.currentSrc, ready: a.readyState,
                          error: a.error ? a.error.code : null})),
  images: Array.from(document.images).map(i => ({src: i.currentSrc || i.src,
                                                 complete: i.complete, width: i.naturalWidth})),
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  resources: performance.getEntriesByType('resource').map(r => r.name),
  sheets: Array.from(document.styleSheets).map(s => s.href),
  scripts: document.scripts.length,
};
"""


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900", "--mute-audio"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    failed: list

    def log_message(self, *args):
        pass

    def log_request(self, code="-", size="-"):
        if isinstance(code, int) and code >= 400:
            self.failed.append(f"{self.path}: HTTP {code}")


@pytest.fixture
def serve():
    """Serve a folder on localhost; yields a function folder -> (base URL, failed requests)."""
    servers = []

    def start(folder: Path):
        handler = type("Handler", (_QuietHandler,), {"failed": []})
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/", handler.failed

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _link_problems(links: list[str], page: Path) -> list[str]:
    problems = []
    for link in links:
        parsed = urllib.parse.urlparse(link)
        if parsed.scheme == "file":
            if not Path(urllib.parse.unquote(parsed.path)).is_file():
                problems.append(f"broken link {link}")
            continue
        try:
            with urllib.request.urlopen(urllib.request.Request(link, method="HEAD"), timeout=10):
                pass
        except (urllib.error.URLError, OSError) as err:
            problems.append(f"broken link {link}: {err}")
    return problems


def page_problems(driver, url: str, page: Path, screenshot: str) -> list[str]:
    """Everything wrong with the page at ``url`` as a browser sees it (empty when all loads)."""
    driver.get_log("browser")  # drop what an earlier page logged
    driver.get(url)
    deadline = time.monotonic() + 20.0
    state = driver.execute_script(STATE)
    while time.monotonic() < deadline and any(
            a["ready"] < 1 and a["error"] is None for a in state["audio"]):
        time.sleep(0.2)
        state = driver.execute_script(STATE)
    problems = [f"audio {a['src']}: readyState {a['ready']}, error {a['error']}"
                for a in state["audio"] if a["ready"] < 1 or a["error"] is not None]
    problems += [f"image {i['src']} did not load" for i in state["images"]
                 if not i["complete"] or i["width"] == 0]
    base = url.rsplit("/", 1)[0] + "/"
    problems += [f"outside resource {r}" for r in state["resources"] if not r.startswith(base)]
    problems += [f"external style sheet {s}" for s in state["sheets"] if s]
    problems += ["a script on the page"] if state["scripts"] else []
    problems += _link_problems(state["links"], page)
    problems += [f"console {e['level']}: {e['message']}" for e in driver.get_log("browser")
                 if e["level"] in ("SEVERE", "WARNING")]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1280, min(max(height + 40, 600), 8000))
    driver.save_screenshot(str(ARTIFACTS / screenshot))
    driver.set_window_size(1280, 900)
    if not state["audio"] or not state["images"]:
        problems.append("the page has no players or no images")
    return problems


@pytest.fixture(scope="module")
def fixture_page(tmp_path_factory):
    """A page built from small known results (two test sets, five clips each)."""
    root = tmp_path_factory.mktemp("listening")
    results = root / "results" / "smoke"
    fx.write_examples(results / "05_evaluation" / "examples")
    return listening.build_page(results, root / "demo")


def test_page_loads_every_clip_image_and_link_from_a_web_server(browser, serve, fixture_page):
    base, failed = serve(fixture_page.parent)
    problems = page_problems(browser, base + "index.html", fixture_page, "listening_http.png")
    assert problems + failed == []
    players = browser.execute_script("return document.querySelectorAll('audio').length")
    assert players == 10
    durations = browser.execute_script(
        "return Array.from(document.querySelectorAll('audio')).map(a => a.duration)")
    assert durations == pytest.approx([fx.CLIP_SECONDS] * 10, abs=0.01)


def test_page_loads_every_clip_image_and_link_as_a_file(browser, fixture_page):
    problems = page_problems(browser, fixture_page.as_uri(), fixture_page, "listening_file.png")
    assert problems == []


def test_a_missing_clip_is_caught(browser, serve, tmp_path):
    results = tmp_path / "results" / "smoke"
    fx.write_examples(results / "05_evaluation" / "examples", testsets=("real",))
    page = listening.build_page(results, tmp_path / "demo")
    (page.parent / "media" / "real_vocals_identity.flac").unlink()
    base, failed = serve(page.parent)
    problems = page_problems(browser, base + "index.html", page, "listening_broken.png")
    assert any("real_vocals_identity.flac: readyState 0" in p for p in problems)
    assert any(p.startswith("broken link") and "identity" in p for p in problems)
    assert "/media/real_vocals_identity.flac: HTTP 404" in failed


@pytest.mark.skipif(not SMOKE_PAGE.is_file(),
                    reason="no smoke page yet: `make paper PROFILE=smoke` builds it")
def test_built_smoke_page_loads_in_the_browser(browser, serve):
    base, failed = serve(SMOKE_PAGE.parent)
    problems = page_problems(browser, base + "index.html", SMOKE_PAGE, "listening_smoke.png")
    assert problems + failed == []


COMMITTED_PAGES = sorted(p for p in (REPO / "paper" / "demo").glob("*/index.html")
                         if p.parent.name != "smoke")


@pytest.mark.skipif(not COMMITTED_PAGES, reason="no profile page is committed")
@pytest.mark.parametrize("page", COMMITTED_PAGES, ids=lambda p: p.parent.name)
def test_committed_page_loads_every_clip_and_image_in_the_browser(browser, serve, page):
    base, failed = serve(page.parent)
    problems = page_problems(browser, base + "index.html", page,
                             f"listening_{page.parent.name}.png")
    assert problems + failed == []
    players = browser.execute_script("return document.querySelectorAll('audio').length")
    assert players == len(list((page.parent / "media").glob("*.flac")))
