"""The live page in a real headless Chromium (selenium): frames reach the canvas, a prompt typed in the page's box
switches the stream, the page shows it, and the object on the canvas turns the new prompt's colour by the shapes
evaluator's own scoring. Skipped where no Chromium and chromedriver are installed (Debian: apt-get install chromium
chromium-driver). SERVE_SCREENSHOT=PATH also saves a screenshot of the page there (docs/serve.png is made so)."""
import base64
import io
import os
import shutil
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("aiohttp")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the test extra has it)")
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
DRIVER = shutil.which("chromedriver")
if CHROMIUM is None or DRIVER is None:
    pytest.skip(f"no Chromium browser and chromedriver found (chromium: {CHROMIUM}, chromedriver: {DRIVER}); "
                f"Debian: apt-get install chromium chromium-driver", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from streamdit_jax import shapes_world  # noqa: E402
from streamdit_jax.evaluation.shapes_metrics import score_frames  # noqa: E402
from streamdit_jax.sampling.pretrained import load_streamer  # noqa: E402
from streamdit_jax.serving.app import SESSION, ServerThread, make_app  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED = os.path.join(REPO, "experiments", "checkpoints", "shapes_minilm")
RED, BLUE = "a red circle moving left", "a blue square moving up"
FPS = 16
CANVAS = "return [window.streamdit.index, document.getElementById('video').toDataURL('image/png')];"


@pytest.fixture(scope="module")
def server():
    _, streamer = load_streamer(BUNDLED, queue_size=1)
    server = ServerThread(make_app(streamer, RED, fps=FPS)).start()
    yield server
    server.stop()


@pytest.fixture
def browser():
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium's driver manager: never download a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=520,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    driver.set_script_timeout(10)
    yield driver
    driver.quit()


def canvas_frame(driver) -> tuple[int, np.ndarray]:
    """(the index of the frame on the canvas, its pixels), read in one script run: the two belong together."""
    index, url = driver.execute_script(CANVAS)
    return index, np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def distinct_frames(driver, count: int, timeout: float = 30.0) -> list[np.ndarray]:
    """``count`` successive different frames from the canvas (polled faster than the stream's fps)."""
    frames, last, deadline = [], -1, time.monotonic() + timeout
    while len(frames) < count and time.monotonic() < deadline:
        index, frame = canvas_frame(driver)
        if index != last:
            frames.append(frame)
            last = index
        time.sleep(0.3 / FPS)
    assert len(frames) == count, f"only {len(frames)} frames in {timeout} s"
    return frames


def test_the_page_streams_and_follows_a_typed_prompt(server, browser):
    browser.get(server.url + "/")
    wait = WebDriverWait(browser, 60, poll_frequency=0.1)
    wait.until(lambda d: d.execute_script("return window.streamdit.frames") >= 2, "no frames drawn on the canvas")
    first, second = distinct_frames(browser, 2)
    assert first.shape == (32, 32, 3) and not np.array_equal(first, second)  # the canvas is live
    assert browser.find_element(By.ID, "current-prompt").text == RED
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(name.startswith(server.url + "/") for name in resources), resources

    box = browser.find_element(By.ID, "prompt-input")
    box.send_keys(BLUE)
    browser.find_element(By.ID, "prompt-submit").click()
    wait.until(lambda d: d.find_element(By.ID, "current-prompt").text == BLUE,
               f"the page's current prompt did not switch to {BLUE!r}")
    switched = browser.execute_script("return window.streamdit.index")
    buffer = server.app[SESSION].source.partition.B  # a frame is denoised over the whole buffer: the colour follows
    wait.until(lambda d: d.execute_script("return window.streamdit.index") >= switched + buffer,
               "the canvas stopped showing new frames")
    frames = np.stack(distinct_frames(browser, 16))
    scores = score_frames(frames, {0: BLUE})
    blue = shapes_world.COLOURS.index("blue")
    assert scores.colour.mean() >= 0.75, (scores.colour, scores.blob_colour[:, 0])
    assert (scores.blob_colour[:, 0] == blue).mean() >= 0.75, scores.blob_colour[:, 0]
    assert "error" not in browser.find_element(By.ID, "message").get_attribute("class")
    shot = os.environ.get("SERVE_SCREENSHOT")
    if shot:
        wait.until(lambda d: d.find_element(By.ID, "fps").text != "\u2013")
        browser.save_screenshot(shot)
