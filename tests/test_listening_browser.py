"""The listening page in a real browser: Debian's headless chromium, driven by selenium.

Every ``<audio>`` must load its clip (``readyState`` >= 1, no media error), every image must
decode (``naturalWidth`` > 0), every link must resolve, and the console must stay free of
errors, both from a static web server and opened as a file. A screenshot of each page is
kept in ``build/test-artifacts/``. ``make install`` installs chromium and chromium-driver;
only where they are absent are these tests skipped.
"""

import functools
import http.server
import io
import re
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
  scripts: Array.from(document.scripts).map(s => s.src),
};
"""


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900", "--mute-audio",
                 "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """A static server that answers byte ranges, as the hosts of a page do (GitHub Pages,
    nginx): a browser seeking in a clip, or reloading it on a switch, asks for one."""

    failed: list

    def log_message(self, *args):
        pass

    def send_head(self):
        found = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if not found or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        first = int(found.group(1))
        last = min(int(found.group(2)) if found.group(2) else size - 1, size - 1)
        if first >= size:
            self.send_error(416)
            return None
        with open(path, "rb") as handle:
            handle.seek(first)
            body = handle.read(last - first + 1)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return io.BytesIO(body)

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
    problems += [f"outside script {src}" for src in state["scripts"] if src]
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
    assert players == 2  # one per example; the switch reaches the other clips
    durations = []
    for row in range(players):
        n_buttons = browser.execute_script(
            "return document.querySelectorAll('div.player')[arguments[0]]"
            ".querySelectorAll('button[data-src]').length", row)
        for k in range(n_buttons):
            target = browser.execute_script(SWITCH, row, k)["expected"]
            state = _wait(browser, PLAYBACK, [row],
                          lambda s, t=target: s["src"].endswith(t) and s["ready"] >= 1
                          or s["error"] is not None)
            assert state["error"] is None and state["ready"] >= 1, (target, state)
            durations.append(browser.execute_script(
                "return document.querySelectorAll('div.player audio')[arguments[0]].duration",
                row))
    assert durations == pytest.approx([fx.CLIP_SECONDS] * 10, abs=0.01)
    assert failed == []


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


SWITCH = """
const player = document.querySelectorAll('div.player')[arguments[0]];
const audio = player.querySelector('audio');
const target = player.querySelectorAll('button[data-src]')[arguments[1]];
target.click();
return {src: audio.getAttribute('src'), expected: target.dataset.src,
        image: player.querySelector('img.spec').getAttribute('src'),
        pressed: Array.from(player.querySelectorAll('button[aria-pressed="true"]'))
                      .map(b => b.dataset.src)};
"""
PLAYBACK = """
const audio = document.querySelectorAll('div.player audio')[arguments[0]];
return {time: audio.currentTime, paused: audio.paused, ready: audio.readyState,
        src: audio.currentSrc, error: audio.error ? audio.error.code : null,
        message: audio.error ? audio.error.message : null};
"""


def _wait(driver, script, args, until, seconds=10.0):
    deadline = time.monotonic() + seconds
    state = driver.execute_script(script, *args)
    while not until(state) and time.monotonic() < deadline:
        time.sleep(0.05)
        state = driver.execute_script(script, *args)
    return state


@pytest.fixture(scope="module")
def long_page(tmp_path_factory):
    """A page with 3 s clips, long enough to switch in the middle of one."""
    from types import SimpleNamespace

    import numpy as np

    from stemprover.data.testsets import TestItem
    from stemprover.stages.evaluation import save_examples

    root = tmp_path_factory.mktemp("listening_long")
    results = root / "results" / "smoke"
    t = np.arange(3 * fx.CLIP_RATE) / fx.CLIP_RATE
    clean = np.tile(0.5 * np.sin(2 * np.pi * 440 * t), (2, 1)).astype(np.float32)
    other = np.tile(0.5 * np.sin(2 * np.pi * 1000 * t), (2, 1)).astype(np.float32)
    item = TestItem("synthetic", "track", "hpss", fx.CLIP_RATE, clean + other,
                    {"vocals": clean}, {"vocals": clean + 0.2 * other})
    outputs = {name: {"vocals": clean + a * other} for name, a in fx.CLIP_NOISE.items()}
    cfg = SimpleNamespace(example_stems=None, stems=["vocals"], example_seconds=3.0,
                          examples_max_mb=1.0)
    kept = {"synthetic": (item, outputs), "real": (item, outputs)}
    save_examples(kept, cfg, results / "05_evaluation" / "examples", "stemprover@4")
    return listening.build_page(results, root / "demo")


def test_switching_systems_keeps_the_play_position_and_keeps_playing(browser, serve, long_page):
    base, failed = serve(long_page.parent)
    browser.get_log("browser")
    browser.get(base + "index.html")
    start = "const a = document.querySelectorAll('div.player audio')[0]; a.currentTime = 1.0; a.play();"
    browser.execute_script(start)
    before = _wait(browser, PLAYBACK, [0], lambda s: not s["paused"] and s["time"] > 1.1)
    assert not before["paused"] and before["time"] > 1.1, before
    switched = browser.execute_script(SWITCH, 0, 3)  # a StemProver clip
    assert switched["src"] == switched["expected"] and switched["pressed"] == [switched["src"]]
    assert switched["image"] == switched["expected"].replace(".flac", ".png")
    after = _wait(browser, PLAYBACK, [0],
                  lambda s: s["src"].endswith(switched["expected"]) and s["ready"] >= 1
                  and not s["paused"])
    assert after["src"].endswith(switched["expected"]) and after["error"] is None
    assert not after["paused"], after
    # the new clip goes on from where the old one was (plus the time the switch took)
    assert before["time"] - 0.05 <= after["time"] < before["time"] + 1.0, (before, after)
    paused = "document.querySelectorAll('div.player audio')[1].pause();"
    browser.execute_script(paused)  # a paused row stays paused, at its position
    browser.execute_script("document.querySelectorAll('div.player audio')[1].currentTime = 2.0;")
    browser.execute_script(SWITCH, 1, 1)
    still = _wait(browser, PLAYBACK, [1], lambda s: s["ready"] >= 1 and abs(s["time"] - 2.0) < 0.05)
    assert still["paused"] and abs(still["time"] - 2.0) < 0.05, still
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == [] and failed == []


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
    heard = browser.execute_script(
        "return Array.from(document.querySelectorAll('audio[src], button[data-src]'))"
        ".map(e => e.getAttribute('data-src') || e.getAttribute('src'))")
    assert {Path(h).name for h in heard} == {p.name for p in (page.parent / "media").glob("*.flac")}
