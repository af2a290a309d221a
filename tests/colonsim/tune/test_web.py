"""The interactive tuner, end to end in headless Chromium: move a slider, see the new preview, save."""
from __future__ import annotations

import shutil
import tempfile
import threading
import time

import numpy as np
import pytest

from colonsim.simconfig import load_sim_config
from colonsim.tune.web import serve

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
WAIT_S = 60


def _wait(cond, what: str, timeout: float = WAIT_S):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def server(tmp_path):
    cfg = load_sim_config("realistic", overrides=["output.size_px=64"])
    stop, urls, result = threading.Event(), [], {}
    out = tmp_path / "saved.yaml"
    t = threading.Thread(target=lambda: result.update(serve(cfg, out=out, port=0, size_px=64,
                                                            on_ready=urls.append, stop=stop)), daemon=True)
    t.start()
    try:
        yield _wait(lambda: urls and urls[0], "the server to listen"), out, result
    finally:
        stop.set()
        t.join(timeout=20)
    assert not t.is_alive(), "the tuner did not stop"


@pytest.fixture
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="colonsim-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", f"--user-data-dir={profile}"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_slider_updates_the_preview_and_save_writes_the_config(server, browser):
    url, out, result = server
    browser.get(url)
    seq = lambda: int(browser.find_element("id", "rgb").get_attribute("data-seq") or 0)  # noqa: E731
    _wait(lambda: seq() >= 1, "the first preview")
    first_src = browser.find_element("id", "rgb").get_attribute("src")
    slider = browser.find_element("css selector", "input[data-key='sensor.exposure_ev']")
    # Drag the slider: several input events in quick succession (the page debounces them).
    for v in (0.4, 0.8, 1.2):
        browser.execute_script("arguments[0].value = arguments[1];"
                               "arguments[0].dispatchEvent(new Event('input'));", slider, v)
    before = seq()
    _wait(lambda: seq() > before, "the preview after moving the slider")
    assert browser.find_element("id", "rgb").get_attribute("src") != first_src   # a new image
    browser.find_element("id", "save").click()
    _wait(lambda: out.is_file() and "saved" in browser.find_element("id", "saved").text, "the saved config")
    cfg = load_sim_config(path=out)
    assert np.mean(cfg.sensor.exposure_ev) == pytest.approx(1.2, abs=0.02)
    assert cfg.output.size_px == 64             # the user's config, not the preview's
