"""The page in a real browser (Debian's chromium through Playwright): generate, play the animation, share links.

Also takes a full-page screenshot as a visitor sees it; with INFINITY_UPDATE_SCREENSHOT=1 it becomes the README's
docs/screenshot.png (otherwise it goes to pytest's temporary folder: a test run leaves the checkout unchanged).
"""
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import io
import socket
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from PIL import Image

# gradio's queue uses pandas options that pandas 3 deprecates; nothing this project can act on
pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore:.*:Warning:gradio.queueing")]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
README_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "screenshot.png"
TIMEOUT_MS = 60_000  # generous: the CI machine may be busy; a 64 px image itself takes well under a second

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
pytest.importorskip("gradio")

import app  # noqa: E402
from webui import make_studio  # noqa: E402
from webui.settings import GenerateSettings, make  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory, bundled_pipe):
    """(studio, url): the page launched on a free port, and the service it runs on for direct comparisons."""
    root = tmp_path_factory.mktemp("browser-outputs")
    demo = app.build_demo(bundled_pipe, output_root=root)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.queue().launch(prevent_thread_lock=True, server_port=port, server_name="127.0.0.1", quiet=True,
                        **app.launch_kwargs(root))
    try:
        yield make_studio(bundled_pipe, root), f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    ctx.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def wait_for_video(page):
    """The scale animation is loaded and playable: enough data for a frame, a duration, no media error."""
    page.wait_for_function("""() => {
        const v = document.querySelector('#scale-video video');
        return v && !v.error && (v.readyState >= 2 || v.duration > 0);
    }""")
    return page.evaluate("""() => {
        const v = document.querySelector('#scale-video video');
        return {ready: v.readyState, duration: v.duration, error: v.error ? v.error.code : null, src: v.currentSrc};
    }""")


def result_png(page) -> Image.Image:
    src = page.locator("#result img").first.get_attribute("src")
    return Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB")


def test_generate_plays_animation_and_screenshot(server, page, tmp_path):
    _, url = server
    page.goto(url)
    page.locator("#prompt textarea").fill("a red circle on a blue background")
    page.click("#generate-btn")
    page.wait_for_function("() => document.querySelector('#gen-info')?.innerText.includes('px')")
    video = wait_for_video(page)
    assert video["error"] is None and (video["ready"] >= 2 or video["duration"] > 0), video
    assert video["src"].endswith(".mp4")
    image = result_png(page)
    assert image.size == (64, 64)
    # the address bar now carries the settings, with the seed that was drawn
    query = parse_qs(urlparse(page.url).query)
    assert query["prompt"] == ["a red circle on a blue background"]
    assert query["seed"] == [page.locator("#seed input").input_value()]
    page.wait_for_timeout(600)  # let the animation advance past its first frame for the picture
    shot = README_SCREENSHOT if os.environ.get("INFINITY_UPDATE_SCREENSHOT") == "1" else tmp_path / "screenshot.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_share_link_regenerates_the_same_image(server, page):
    studio, url = server
    page.goto(url + "?prompt=sunflower&seed=7&ratio=1:1&resolution=0.004M&temperature=0.7")
    page.wait_for_function("() => { const t = document.querySelector('#gen-info')?.innerText || '';"
                           " return t.includes('Seed 7 ') && t.includes('px'); }")
    wait_for_video(page)
    assert page.locator("#seed input").input_value() == "7"
    expected = studio.generate(make(GenerateSettings, {**studio.defaults(), "prompt": "sunflower", "seed": 7,
                                                       "randomize_seed": False, "temperature": 0.7}))
    assert np.array_equal(np.asarray(result_png(page)), np.asarray(Image.open(expected["pngs"][0]).convert("RGB")))
    page.get_by_role("button", name="Copy link to these settings").click()
    page.wait_for_function("() => document.querySelector('#share-link textarea, #share-link input')?.value"
                           ".includes('seed=7')")


def test_upload_tokenize_and_a_damaged_file(server, page, tmp_path):
    _, url = server
    im = Image.new("RGB", (96, 64), (40, 90, 220))
    im.paste((220, 40, 40), (30, 16, 62, 48))
    im.save(tmp_path / "mine.png")
    (tmp_path / "broken.png").write_bytes((tmp_path / "mine.png").read_bytes()[:60])
    page.goto(url)
    page.get_by_role("tab", name="Tokenizer").click()
    page.locator("#upload input[type=file]").set_input_files(str(tmp_path / "mine.png"))
    page.wait_for_function("() => document.querySelector('#upload img')")
    page.click("#tokenize-btn")
    page.wait_for_function("() => (document.querySelector('#tok-info')?.innerText || '').includes('PSNR')")
    assert "scales" in page.locator("#tok-info").inner_text()
    # a damaged file: a readable message in the page, and the page keeps working
    page.locator("#upload button[aria-label='Remove Image']").first.click()
    page.locator("#upload input[type=file]").set_input_files(str(tmp_path / "broken.png"))
    page.click("#tokenize-btn")
    page.wait_for_function("() => document.body.innerText.includes('damaged or truncated')"
                           " || document.body.innerText.includes('not an image')")
