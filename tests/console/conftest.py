"""Browser fixtures for the web console: Debian's Chromium, headless, driven by Selenium through Debian's
chromedriver, with a fake microphone fed from a WAV file. Nothing is downloaded: the paths are explicit
and Selenium Manager is switched off.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("SE_OFFLINE", "true")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402

from tests.conftest import ROOT  # noqa: E402
from voice.tts import TtsConfig  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
OUT = ROOT / "tests" / "out"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic",
)


def launch_chromium(user_data_dir: Path, fake_mic_wav: Path | None = None, *, fake_device: bool = True,
                    grant_microphone: bool = True) -> WebDriver:
    """A fresh headless Chromium.

    With `fake_device` it has a fake microphone that plays `fake_mic_wav` (in a loop, from the start each
    time the microphone is opened; a beep without a file); without it the browser has no microphone at
    all. `grant_microphone` answers the permission prompt with yes; otherwise the permission is whatever
    the test sets with Browser.setPermission.
    """
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), (
        "Chromium and its driver are missing: install the Debian packages chromium and chromium-driver "
        "(make install does)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    options.add_argument("--window-size=1280,1000")
    if fake_device:
        options.add_argument("--use-fake-device-for-media-stream")
        if fake_mic_wav is not None:
            options.add_argument(f"--use-file-for-fake-audio-capture={fake_mic_wav}")
    if grant_microphone:
        options.add_argument("--use-fake-ui-for-media-stream")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    return driver


def espeak_wav(text: str, voice: str, path: Path, lead_s: float = 0.5, tail_s: float = 1.2) -> Path:
    """Speech synthesised by espeak-ng at the speaking rate of the service's own synthesis, with silence
    before and after (so a looping fake microphone plays one clear utterance per loop)."""
    raw = path.with_suffix(".espeak.wav")
    rate = str(TtsConfig().rate_wpm)
    subprocess.run(["espeak-ng", "-v", voice, "-s", rate, "-w", str(raw), text], check=True, timeout=60)
    with wave.open(str(raw), "rb") as source:
        params = source.getparams()
        frames = source.readframes(source.getnframes())
    silence = b"\x00" * params.sampwidth * params.nchannels
    with wave.open(str(path), "wb") as out:
        out.setparams(params)
        out.writeframes(silence * int(lead_s * params.framerate) + frames + silence * int(tail_s * params.framerate))
    raw.unlink()
    return path


@pytest.fixture(scope="session")
def spoken_help_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return espeak_wav("도움말", "ko", tmp_path_factory.mktemp("speech") / "help-ko.wav")


@pytest.fixture(scope="module")
def microphone(spoken_help_wav: Path) -> dict[str, Any]:
    """The module's browser microphone (launch_chromium's arguments); a module overrides this to change it.
    By default: a granted fake microphone that says "도움말"."""
    return {"fake_mic_wav": spoken_help_wav}


@pytest.fixture(scope="module")
def browser(microphone: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    driver = launch_chromium(profile, **microphone)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(0.1)


def open_console(driver: WebDriver, base_url: str) -> None:
    driver.get(base_url + "/")
    wait_for(lambda: driver.execute_script("return document.body.dataset.ready === 'true'"), message="the page")


def browser_errors(driver: WebDriver) -> list[dict[str, Any]]:
    """SEVERE entries of the browser console since the last call (the log is drained by reading it)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def require_route(app: Any, rule: str, method: str, needs: str) -> None:
    """Fails (never skips) a test whose endpoint has not been merged yet, saying which branch brings it."""
    for r in app.url_map.iter_rules():
        if r.rule == rule and method in r.methods:
            return
    pytest.fail(f"{method} {rule} is not on this branch: this test needs {needs}", pytrace=False)


def save_screenshot(driver: WebDriver, name: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    assert driver.save_screenshot(str(path)), f"could not save {path}"
    return path
