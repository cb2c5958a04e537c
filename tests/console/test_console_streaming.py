"""Streamed spoken turns in the console (issue 17): headless Chromium with a fake microphone saying a question
(espeak-ng); the page streams 16 kHz PCM over /v1/voice/stream while the button is held, shows the partial
transcript before it is released, and plays the reply's sentences as they arrive. If the stream is refused, the
recording is uploaded to /v1/voice instead."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from channels.voice_stream import SLOTS_KEY
from tests.console.conftest import browser_errors, espeak_wav, open_console, wait_for
from voice.streaming import StreamSlots

HANGUL = range(0xAC00, 0xD7A4)
QUESTION = "주민등록등본은 어떻게 발급받나요"


@pytest.fixture(scope="module")
def microphone(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path: Path = tmp_path_factory.mktemp("speech") / "question-ko.wav"
    return {"fake_mic_wav": espeak_wav(QUESTION, "ko", path)}


def turns(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#log .turn")


def partial_shown(turn) -> str:
    # Read in one script call: the page replaces the partial element as new words come, so an element found by one
    # WebDriver call can be gone (stale) by the next.
    return turn.parent.execute_script(
        "const p = arguments[0].querySelector('[data-role=partial]'); return p ? p.innerText.trim() : '';", turn)


def test_push_to_talk_shows_the_partial_transcript_before_release_and_plays_the_reply(browser, live_server):
    open_console(browser, live_server)
    browser.get_log("browser")
    assert browser.execute_script("return window.minwonConsole.streamingAvailable()") is True
    browser.find_element(By.TAG_NAME, "h1").click()
    ptt = browser.find_element(By.ID, "ptt")
    ActionChains(browser).key_down(Keys.SPACE).perform()
    try:
        wait_for(lambda: ptt.get_attribute("data-state") == "recording", message="recording to start")
        turn = wait_for(lambda: turns(browser) and turns(browser)[-1], message="the streamed turn to open")
        assert turn.get_attribute("data-transport") == "stream"
        partial = wait_for(lambda: partial_shown(turn), timeout=15, message="a partial transcript")
        # Still held: the partial came while the citizen was speaking.
        assert ptt.get_attribute("data-state") == "recording"
        assert any(ord(ch) in HANGUL for ch in partial), partial
        # The fake microphone: 0.5 s quiet, the question (about 3 s), 1.2 s quiet; release after the question.
        time.sleep(max(0.0, 4.3 - 0.5))
    finally:
        ActionChains(browser).key_up(Keys.SPACE).perform()
    wait_for(lambda: turn.get_attribute("data-state") in ("answered", "failed"), 60, "the reply")
    assert turn.get_attribute("data-state") == "answered", turn.text
    wait_for(lambda: turn.get_attribute("data-playback") in ("ended", "blocked", "error"), 60, "playback")
    assert turn.get_attribute("data-playback") == "ended"
    assert int(turn.get_attribute("data-sentences")) >= 1
    reply = turn.find_element(By.CSS_SELECTOR, "[data-role=reply]").text
    assert sum(ord(ch) in HANGUL for ch in reply) >= 10, reply
    shown = turn.find_elements(By.CSS_SELECTOR, "[data-role=transcript], [data-role=heard]")
    assert shown and shown[0].text.strip()
    timings = {e.get_attribute("data-timing") for e in turn.find_elements(By.CSS_SELECTOR, "[data-timing]")}
    assert {"asr", "dialog", "round_trip", "first_audio"} <= timings, timings
    assert browser.find_element(By.ID, "caption").text == reply
    assert ptt.get_attribute("data-state") == "idle"
    assert browser_errors(browser) == []


def test_hands_free_streams_each_utterance(browser, live_server):
    open_console(browser, live_server)
    browser.find_element(By.ID, "hands-free").click()
    try:
        turn = wait_for(lambda: turns(browser) and turns(browser)[-1], 20, "a streamed hands-free turn")
        assert turn.get_attribute("data-transport") == "stream"
        wait_for(lambda: turn.get_attribute("data-playback") in ("ended", "blocked", "error"), 60, "the reply")
        assert turn.get_attribute("data-playback") == "ended", turn.text
    finally:
        if browser.find_element(By.ID, "hands-free").is_selected():
            browser.find_element(By.ID, "hands-free").click()
    assert browser_errors(browser) == []


def test_a_refused_stream_falls_back_to_the_upload(browser, live_server, app, monkeypatch):
    limits, _slots = app.extensions[SLOTS_KEY]
    monkeypatch.setitem(app.extensions, SLOTS_KEY, (replace(limits, per_worker=0), StreamSlots(0)))
    open_console(browser, live_server)
    browser.find_element(By.TAG_NAME, "h1").click()
    ptt = browser.find_element(By.ID, "ptt")
    ActionChains(browser).key_down(Keys.SPACE).perform()
    try:
        wait_for(lambda: ptt.get_attribute("data-state") == "recording", message="recording to start")
        time.sleep(4.3)
    finally:
        ActionChains(browser).key_up(Keys.SPACE).perform()
    turn = wait_for(lambda: [t for t in turns(browser) if t.get_attribute("data-state") == "answered"],
                    60, "the uploaded turn")[0]
    assert turn.get_attribute("data-transport") is None, "the reply came by the upload path"
    assert len(turns(browser)) == 1, "the refused stream's turn was taken back"
    wait_for(lambda: turn.get_attribute("data-playback") in ("ended", "blocked", "error"), 60, "playback")
    assert turn.get_attribute("data-playback") == "ended"
