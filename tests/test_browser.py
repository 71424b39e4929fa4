"""The page in a real browser (Debian's chromium through Playwright): generate, play the animation, share links.

Also takes a full-page screenshot as a visitor sees it; with INFINITY_UPDATE_SCREENSHOT=1 it becomes the README's
docs/screenshot.png (otherwise it goes to pytest's temporary folder: a test run leaves the checkout unchanged).
"""
import io
import os
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from PIL import Image

# gradio's queue uses pandas options that pandas 3 deprecates; nothing this project can act on
# flaky(reruns=1): a safety net for timing on a loaded CI machine (a failure seen only in a full clean-clone run on
# 2026-11-30, passing alone); a real failure still fails twice
pytestmark = [pytest.mark.browser, pytest.mark.flaky(reruns=1), pytest.mark.filterwarnings("ignore:.*:Warning:gradio.queueing")]

README_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "screenshot.png"
TIMEOUT_MS = 120_000  # generous: the CI machine may be busy; a 64 px image itself takes well under a second

pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
pytest.importorskip("gradio")

from webui.settings import GenerateSettings, make  # noqa: E402


@pytest.fixture(scope="module")
def server(request):
    """(studio, url): the session's page, and the service it runs on for direct comparisons.
    INFINITY_TEST_URL=http://host:port/ points the tests at a server started elsewhere instead (e.g. an older
    version, to see which tests fail there); tests that need the service are then skipped."""
    if os.environ.get("INFINITY_TEST_URL"):
        return None, os.environ["INFINITY_TEST_URL"]
    served = request.getfixturevalue("app_server")  # only now: a server elsewhere needs no model loaded here
    return served.studio, served.url


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
    assert image.size == (128, 128)
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
    if studio is None:
        pytest.skip("compares with the service")
    page.goto(url + "?prompt=sunflower&seed=7&ratio=1:1&resolution=0.016M&temperature=0.7")
    page.wait_for_function("() => { const t = document.querySelector('#gen-info')?.innerText || '';"
                           " return t.includes('Seed 7 ') && t.includes('px'); }")
    wait_for_video(page)
    assert page.locator("#seed input").input_value() == "7"
    expected = studio.generate(make(GenerateSettings, {**studio.defaults(), "prompt": "sunflower", "seed": 7,
                                                       "randomize_seed": False, "temperature": 0.7}))
    assert np.array_equal(np.asarray(result_png(page)), np.asarray(Image.open(expected.pngs[0]).convert("RGB")))
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
    # point 7: the variation of a small upload is shown large, not at its few dozen pixels
    page.click("#variation-btn")
    page.wait_for_function("() => (document.querySelector('#var-info')?.innerText || '').includes('kept')")
    page.locator("#var-image img").wait_for()
    assert page.locator("#var-image img").bounding_box()["width"] >= 250
    # a damaged file: a readable message in the page, and the page keeps working
    page.locator("#upload button[aria-label='Remove Image']").first.click()
    page.locator("#upload input[type=file]").set_input_files(str(tmp_path / "broken.png"))
    page.click("#tokenize-btn")
    page.wait_for_function("() => document.body.innerText.includes('damaged or truncated')"
                           " || document.body.innerText.includes('not an image')")


# ---------------------------------------------------------------------------------------------------------------
# what a new user met (issue 13, points 1–8 and 12); each of these fails on the page as it was before
# ---------------------------------------------------------------------------------------------------------------
def info_text(page) -> str:
    return page.locator("#gen-info").inner_text()


def wait_info(page, *parts):
    page.wait_for_function("(parts) => { const t = document.querySelector('#gen-info')?.innerText || '';"
                           " return parts.every((p) => t.includes(p)); }", arg=list(parts))


def test_link_to_a_wide_larger_image_keeps_its_resolution(server, page):
    """Point 1: a 4:3 link at the larger resolution comes back on that resolution, so the next run is as large."""
    _, url = server
    page.goto(url + "?prompt=sunflower&seed=7&ratio=4:3&resolution=0.016M")
    wait_info(page, "Seed 7 ", "160×120 px")
    page.locator("#seed input").fill("8")
    page.locator("#generate-btn").click()
    wait_info(page, "Seed 8 ", "px")
    assert "160×120 px" in info_text(page)
    assert result_png(page).size == (160, 120)


def test_fresh_page_generates_and_a_refusal_is_one_notice(server, page):
    """Point 2: a fresh page holds a real prompt (the placeholder reads as an instruction), Generate works at once,
    and an empty prompt gives one notice and a status line, no red "Error" badges over the outputs."""
    _, url = server
    page.goto(url)
    box = page.locator("#prompt textarea")
    assert box.input_value() and "describe" in (box.get_attribute("placeholder") or "").lower()
    wait_info(page, "Seed 0 ", "px")  # the example shown on load has finished (a 128 px run takes longer)
    page.locator("#generate-btn").click()
    page.wait_for_function("() => !(document.querySelector('#gen-info')?.innerText || '').startsWith('Seed 0 ')")
    wait_info(page, "px")
    box.fill("")
    page.locator("#generate-btn").click()
    wait_info(page, "prompt is empty")
    page.wait_for_timeout(300)
    assert page.locator("span.error").count() == 0
    assert page.locator("[data-testid=toast-text]").count() == 1


def test_examples_are_shown_and_run(server, page):
    """Point 3: the page opens with an example's result, and clicking an example shows that example's result."""
    _, url = server
    page.goto(url)
    wait_info(page, "Seed 0 ", "px")
    assert page.locator("#result img").count() == 1
    page.get_by_role("button", name="sunflower").first.click()
    page.wait_for_function("() => document.querySelector('#prompt textarea').value === 'sunflower'")
    wait_info(page, "Seed 0 ", "px")
    assert page.locator("#settings-json, #gen-info").count() >= 1


@pytest.mark.parametrize("box,value,words", [
    ("#guidance input", "1000000", "guidance must be in [0.0, 30.0], got 1e+06"),
    ("#guidance input", "-5", "guidance must be in [0.0, 30.0], got -5"),
    ("#temperature input", "0", "temperature must be in (0.0, 10.0], got 0"),
    ("#num-images input", "10", "number of images must be a whole number from 1 to 4, got 10"),
])
def test_typed_values_are_judged_not_clamped(server, page, box, value, words):
    """Point 4: a value typed into the page reaches the pipeline as typed and gets its words (as the API does)."""
    _, url = server
    page.goto(url)
    wait_info(page, "px")
    page.locator(box).fill(value)
    page.locator(box).blur()
    page.locator("#generate-btn").click()
    wait_info(page, words)


def slow_request(page, url):
    """A run long enough to watch: four images at the larger resolution (use with the `slow_scales` fixture)."""
    page.goto(url + "?ratio=1:1&resolution=0.016M&n=4")
    wait_info(page, "px")
    page.locator("#generate-btn").click()
    page.wait_for_function("() => (document.querySelector('#gen-info')?.innerText || '').includes('image 1/4 · scale')",
                           polling=20)


def test_one_progress_indicator(server, page, slow_scales):
    """Point 5: while a run streams, the status line is the only progress shown (no overlay on seed or image)."""
    _, url = server
    slow_request(page, url)
    # Gradio's status overlays: shown unless their wrapper is in its 'hidden' mode
    trackers = page.evaluate("() => [...document.querySelectorAll('.wrap.default')]"
                             ".filter((e) => !e.classList.contains('hidden') && e.innerText.trim() !== ''"
                             " && e.offsetParent !== null)"
                             ".map((e) => (e.closest('[id]') || {}).id + ': ' + e.innerText.slice(0, 30))")
    assert trackers == []
    wait_info(page, "▰")  # the status line's bar fills as scales finish
    page.locator("#cancel-btn").click()  # leave no four-image run queued ahead of the next test
    wait_info(page, "Cancelled")


def test_cancel_says_cancelled(server, page, slow_scales):
    """Point 6: Cancel leaves no half-finished preview, and the status says the run was cancelled."""
    _, url = server
    slow_request(page, url)
    page.locator("#cancel-btn").click()
    wait_info(page, "Cancelled")
    page.wait_for_timeout(1500)  # nothing of the cancelled run arrives afterwards
    assert "Cancelled" in info_text(page)
    assert page.locator("#result img").count() == 0


def test_every_scale_is_readable(server, page):
    """Point 7: every scale of a 7-scale run is on screen with a text caption; an opened scale is large; the
    video has no label badge over it."""
    _, url = server
    page.goto(url + "?prompt=sunflower&seed=3&ratio=1:1&resolution=0.016M")
    wait_info(page, "Seed 3 ", "px")
    gallery = page.locator("#scales")
    thumbs = gallery.locator("button.thumbnail-item")
    assert thumbs.count() == 7
    box = gallery.bounding_box()
    for i in range(7):
        t = thumbs.nth(i).bounding_box()
        assert box["y"] <= t["y"] and t["y"] + t["height"] <= box["y"] + box["height"] + 1
    assert "scale 7:" in gallery.inner_text()
    thumbs.nth(6).click()
    big = gallery.locator(".preview img").first
    big.wait_for()
    assert big.bounding_box()["width"] >= 300
    assert not page.locator("#scale-video [data-testid=block-label]").first.is_visible()


def test_old_notices_close_when_a_new_run_starts(server, page):
    """Point 8: an error notice from an earlier click does not stay over the next, successful result."""
    _, url = server
    page.goto(url)
    wait_info(page, "px")
    page.locator("#prompt textarea").fill("")
    page.locator("#generate-btn").click()
    page.locator("[data-testid=toast-text]").first.wait_for()
    page.locator("#prompt textarea").fill("red apple")
    page.locator("#generate-btn").click()
    wait_info(page, "Seed", "px")
    page.wait_for_timeout(800)  # the close animation
    assert page.locator("[data-testid=toast-text]").count() == 0


def test_ratio_and_resolution_are_sliders_with_pixel_sizes(server, page):
    """Point 12: aspect ratio and resolution are sliders that snap to what the model supports; the line under
    them gives the result in pixels (width×height)."""
    _, url = server
    page.goto(url)
    wait_info(page, "px")
    ratio = page.locator("#ratio input[type=range]")
    resolution = page.locator("#resolution input[type=range]")
    assert ratio.count() == 1 and resolution.count() == 1
    ratio.fill("0")  # the widest template
    resolution.fill("1")
    page.wait_for_function("() => document.querySelector('#size-line').innerText.includes('0.016M')")
    size = page.locator("#size-line").inner_text()
    w, h = (int(v) for v in size.split(" at ")[1].split(" px")[0].split("×"))
    assert w > h and size.startswith("2:1")
