"""The console page in headless Chromium, against the shared live server: it loads cleanly, is usable by
keyboard and at phone width / 200 % zoom, says its errors in words, takes typed turns in both languages
(screenshots for review), and its own audio code (resampler, WAV encoder, voice detector) is right.

Needs only main (typed turns go to /v1/converse). The spoken turns are in test_console_voice.py.
"""

from __future__ import annotations

import base64
import io
import wave

import numpy as np
import pytest
import soxr
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select

from tests.console.conftest import browser_errors, open_console, save_screenshot, wait_for

HANGUL = range(0xAC00, 0xD7A4)


def has_hangul(text: str) -> bool:
    return any(ord(ch) in HANGUL for ch in text)


@pytest.fixture()
def page(browser, live_server):
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    open_console(browser, live_server)
    return browser


def type_turn(driver, text: str) -> None:
    count = len(driver.find_elements(By.CSS_SELECTOR, "#log .turn"))
    box = driver.find_element(By.ID, "text-input")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)
    wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#log .turn[data-state='answered']")) > count
             or driver.find_elements(By.CSS_SELECTOR, "#log .turn[data-state='failed']"), message="the reply")


def last_turn(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#log .turn")[-1]


def error_code(driver) -> str:
    box = driver.find_element(By.ID, "error")
    return "" if not box.is_displayed() else box.get_attribute("data-code")


def test_page_loads_without_console_errors(browser, live_server):
    browser.get_log("browser")  # drain anything from before
    open_console(browser, live_server)
    # The My data panel is filled from the overview API once the page has started.
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#consents .consent"), message="My data")
    assert browser.execute_script("return document.documentElement.lang") == "ko"
    assert browser.find_element(By.TAG_NAME, "h1").text == "민원 음성 도우미 콘솔"
    wait_for(lambda: browser.find_element(By.ID, "service-status").get_attribute("data-state") == "ok",
             message="the health check")
    assert browser_errors(browser) == []


def test_every_control_is_labelled_and_reachable_by_keyboard(page):
    names = page.execute_script("""
        const controls = [...document.querySelectorAll('button, input, select, a[href], summary')]
            .filter((el) => el.offsetParent !== null);
        return controls.map((el) => {
            const labelled = (el.labels && [...el.labels].map((l) => l.textContent).join(' ')) ||
                el.getAttribute('aria-label') || el.textContent;
            return [el.id || el.tagName, labelled.trim()];
        });
    """)
    assert len(names) >= 7
    for control, name in names:
        assert name, f"{control} has no accessible name"
    order = []
    page.find_element(By.TAG_NAME, "h1").click()  # sequential focus starts from the top of the page
    for _ in range(10):
        ActionChains(page).send_keys(Keys.TAB).perform()
        order.append(page.execute_script("return document.activeElement.id"))
    for control in ("speaker", "language", "new-session", "ptt", "hands-free", "text-input", "send"):
        assert control in order, f"{control} is not reachable with Tab ({order})"
    assert order.index("ptt") < order.index("text-input")
    # The focused control shows a visible ring.
    page.execute_script("document.getElementById('ptt').blur()")
    page.find_element(By.ID, "text-input").click()
    ActionChains(page).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
    style = page.execute_script(
        "const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]")
    assert style[0] != "none" and float(style[1].rstrip("px")) >= 2


@pytest.mark.parametrize(("width", "height", "scale", "mobile"), [
    (390, 844, 3, True),     # a phone
    (640, 500, 2, False),    # a 1280 px window at 200 % zoom
])
def test_fits_a_phone_and_200_percent_zoom(page, width, height, scale, mobile):
    page.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                         {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile})
    try:
        wait_for(lambda: page.execute_script("return window.innerWidth") == width, message="the new viewport")
        overflow = page.execute_script("""
            const doc = document.documentElement;
            const wide = [...document.querySelectorAll('button, input, select, label, .card, .bubble, h1, h2')]
                .filter((el) => el.offsetParent !== null)
                .filter((el) => el.getBoundingClientRect().right > doc.clientWidth + 1)
                .map((el) => el.id || el.className || el.tagName);
            return {scroll: doc.scrollWidth, client: doc.clientWidth, wide};
        """)
        assert overflow["scroll"] <= overflow["client"], overflow
        assert overflow["wide"] == [], overflow
        # One column: the My data panel comes below the conversation, not beside it.
        talk = page.find_element(By.ID, "talk").rect
        mydata = page.find_element(By.ID, "mydata").rect
        assert mydata["y"] >= talk["y"] + talk["height"] - 1
    finally:
        page.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_typed_turns_in_korean_and_english_with_screenshots(page):
    type_turn(page, "도움말")
    turn = last_turn(page)
    assert turn.get_attribute("data-intent") == "help"
    reply = turn.find_element(By.CSS_SELECTOR, "[data-role=reply]").text
    assert "말해 보세요" in reply
    assert turn.find_element(By.CSS_SELECTOR, ".said q").text == "도움말"
    assert "help" in turn.find_element(By.CSS_SELECTOR, "[data-role=intent]").text
    assert "ms" in turn.find_element(By.CSS_SELECTOR, "[data-role=timings]").text
    # Every reply is captioned (spoken or not).
    wait_for(lambda: page.find_element(By.ID, "caption").text == reply, message="the caption")
    save_screenshot(page, "console-ko.png")

    Select(page.find_element(By.ID, "language")).select_by_value("en-US")
    wait_for(lambda: page.execute_script("return document.documentElement.lang") == "en", message="English")
    assert page.find_element(By.TAG_NAME, "h1").text == "Minwon Voice console"
    assert page.find_element(By.ID, "mydata-heading").text == "My data"
    # The earlier turn's labels follow the interface language too.
    assert "Intent" in page.find_elements(By.CSS_SELECTOR, "#log .turn")[0].text
    type_turn(page, "help")
    turn = last_turn(page)
    assert turn.get_attribute("data-intent") == "help"
    reply = turn.find_element(By.CSS_SELECTOR, "[data-role=reply]").text
    assert reply.startswith("You can say") and not has_hangul(reply)
    # Read in one go: the panel is re-rendered when the overview is refreshed after a turn.
    consent_titles = page.execute_script(
        "return [...document.querySelectorAll('#consents .card-title')].map((e) => e.textContent)")
    assert "National Tax Service · health insurance data" in consent_titles
    save_screenshot(page, "console-en.png")


def test_speaker_selector_switches_citizen_language_and_session(page):
    speaker = Select(page.find_element(By.ID, "speaker"))
    speaker.select_by_value("demo-user-en")
    wait_for(lambda: "citizen-0002" in page.find_element(By.ID, "mydata-who").text, message="Jane's data")
    assert page.execute_script("return document.documentElement.lang") == "en"
    assert page.execute_script("return window.minwonConsole.state.sessionId") is None
    statuses = dict(page.execute_script(
        "return [...document.querySelectorAll('#certificates .card')].map((e) => [e.dataset.certificateId, e.dataset.status])"))
    assert statuses == {"cert-0002-rrc": "issued", "cert-0002-vac": "revoked"}
    speaker.select_by_index(2)
    assert speaker.first_selected_option.text == "Guest (public questions only)"
    wait_for(lambda: "not linked" in page.find_element(By.ID, "mydata-who").text, message="the unlinked note")
    assert not page.find_element(By.ID, "mydata-body").is_displayed()
    # The guest keeps the English the page was showing.
    type_turn(page, "help")
    reply = last_turn(page).find_element(By.CSS_SELECTOR, "[data-role=reply]").text
    assert reply.startswith("You can say") and not has_hangul(reply)


def test_new_session_button_forgets_the_session(page):
    type_turn(page, "도움말")
    assert page.execute_script("return window.minwonConsole.state.sessionId")
    page.find_element(By.ID, "new-session").click()
    assert page.execute_script("return window.minwonConsole.state.sessionId") is None
    assert page.find_elements(By.CSS_SELECTOR, "#log .divider")


def test_a_tap_too_short_to_hold_speech_is_explained(page):
    page.find_element(By.TAG_NAME, "body").click()
    ActionChains(page).key_down(Keys.SPACE).key_up(Keys.SPACE).perform()
    wait_for(lambda: error_code(page) == "err_too_short", message="the too-short message")
    assert "too short" in page.find_element(By.ID, "error").text or "짧아요" in page.find_element(By.ID, "error").text
    assert page.find_elements(By.CSS_SELECTOR, "#log .turn") == []


def test_service_unreachable_is_said_in_words(page):
    page.execute_cdp_cmd("Network.enable", {})
    page.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    try:
        type_turn(page, "도움말")
        assert last_turn(page).get_attribute("data-state") == "failed"
        assert error_code(page) == "err_unreachable"
        assert "서비스에 연결할 수 없어요" in page.find_element(By.ID, "error").text
    finally:
        page.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        page.execute_cdp_cmd("Network.disable", {})
    browser_errors(page)  # the refused requests are logged by the browser; that is expected here


def test_a_recording_over_the_limit_is_refused_in_words_before_upload(page):
    page.execute_script("window.__requests = performance.getEntriesByType('resource').length")
    # 31 s of 16 kHz audio, as the recorder would hand it over.
    page.execute_script("return window.minwonConsole.sendAudio(new Float32Array(16000 * 31))")
    wait_for(lambda: error_code(page) == "err_too_long", message="the too-long message")
    assert "30초" in page.find_element(By.ID, "error").text
    assert page.find_elements(By.CSS_SELECTOR, "#log .turn") == []
    uploads = page.execute_script(
        "return performance.getEntriesByType('resource').filter((e) => e.name.includes('/v1/voice')).length")
    assert uploads == 0


# ---- the page's own audio code, run in the browser on known signals ----------------------------------

def run_module(driver, body: str):
    """Runs `body` (an async function body with `m` = audio.js) in the page and returns its result."""
    return driver.execute_async_script(f"""
        const done = arguments[arguments.length - 1];
        import('/console/static/audio.js').then(async (m) => {{ {body} }})
            .then(done, (e) => done({{error: String(e && e.stack || e)}}));
    """)


def test_resampler_keeps_the_speech_band_and_removes_what_would_alias(page):
    result = run_module(page, """
        const tone = (rate, hz, seconds, amp) => Float32Array.from({length: rate * seconds},
            (_, i) => amp * Math.sin(2 * Math.PI * hz * i / rate));
        const middleRms = (x) => { const a = x.subarray(x.length / 4, 3 * x.length / 4) ;
            return Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length); };
        const crossings = (x) => { const a = x.subarray(x.length / 4, 3 * x.length / 4); let n = 0;
            for (let i = 1; i < a.length; i++) if ((a[i - 1] < 0) !== (a[i] < 0)) n++; return n / (a.length / 16000); };
        const in1k = tone(48000, 1000, 1, 0.5);
        const out1k = m.resampleAll(in1k, 48000);
        // Streaming in microphone-sized blocks gives the same samples as one call.
        const r = new m.StreamingResampler(48000);
        const parts = [];
        for (let i = 0; i < in1k.length; i += 2048) parts.push(r.push(in1k.subarray(i, i + 2048)));
        parts.push(r.flush());
        const streamed = m.concat(parts);
        let maxDiff = 0;
        for (let i = 0; i < out1k.length; i++) maxDiff = Math.max(maxDiff, Math.abs(out1k[i] - streamed[i]));
        const out3k = m.resampleAll(tone(44100, 3000, 1, 0.5), 44100);
        const out10k = m.resampleAll(tone(48000, 10000, 1, 0.5), 48000);
        const out6k = m.resampleAll(tone(44100, 6000, 1, 0.5), 44100);
        const out7k = m.resampleAll(tone(44100, 7000, 1, 0.5), 44100);
        return {len1k: out1k.length, lenStreamed: streamed.length, maxDiff, len3k: out3k.length,
                rms1k: middleRms(out1k), rms3k: middleRms(out3k), rms6k: middleRms(out6k), rms7k: middleRms(out7k), rms10k: middleRms(out10k),
                hz1k: crossings(out1k) / 2, hz3k: crossings(out3k) / 2};
    """)
    assert "error" not in result, result
    sine_rms = 0.5 / 2 ** 0.5
    assert result["len1k"] == 16000 and result["lenStreamed"] == 16000 and result["len3k"] == 16000
    assert result["maxDiff"] < 1e-5
    assert abs(result["rms1k"] / sine_rms - 1) < 0.01 and abs(result["rms3k"] / sine_rms - 1) < 0.01
    # The pass band reaches 6 kHz flat; the transition to the 8 kHz Nyquist starts above it.
    assert abs(result["rms6k"] / sine_rms - 1) < 0.03, result
    assert result["rms7k"] / sine_rms > 0.8, result
    assert abs(result["hz1k"] - 1000) < 5 and abs(result["hz3k"] - 3000) < 5
    # A 10 kHz tone cannot exist at 16 kHz; dropping samples would fold it to 6 kHz at full level.
    assert result["rms10k"] < sine_rms * 0.01                    # at least 40 dB down


def test_microphone_capture_reaches_16_khz_intact(page, spoken_help_wav):
    """The whole capture path (fake microphone → worklet → resampler → WAV) against soxr's resampling of the
    file the microphone plays: the same waveform, not just the same length."""
    result = run_module(page, """
        const chunks = [];
        const mic = new m.MicCapture({onSamples: (s) => chunks.push(s), workletUrl: '/console/static/capture-worklet.js'});
        await mic.open();
        const rate = mic.sampleRate;
        await new Promise((resolve) => setTimeout(resolve, 2200));
        const blob = m.encodeWav(m.concat([...chunks, mic.close()]));
        const url = await new Promise((resolve) => { const r = new FileReader(); r.onload = () => resolve(r.result);
                                                     r.readAsDataURL(blob); });
        return {rate, b64: url.split(',')[1]};
    """)
    assert "error" not in result, result
    with wave.open(io.BytesIO(base64.b64decode(result["b64"]))) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        captured = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768
    with wave.open(str(spoken_help_wav)) as wav:
        source = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768
        reference = soxr.resample(source, wav.getframerate(), 16000, quality="HQ")
    assert 1.8 < len(captured) / 16000 < 2.8
    correlation = np.correlate(captured, reference, mode="full")
    peak = correlation.max() / np.sqrt((captured ** 2).sum() * (reference ** 2).sum())
    # The microphone runs at the browser's rate (44.1 or 48 kHz); the page brings it to 16 kHz as soxr does.
    assert result["rate"] in (44100, 48000)
    assert peak > 0.99, f"captured audio correlates {peak:.4f} with the reference"
    assert np.abs(captured).max() < 0.99, "no clipping (the browser's automatic gain is off)"


def test_wav_encoder_writes_16_khz_mono_pcm(page):
    result = run_module(page, """
        const blob = m.encodeWav(Float32Array.from([0, 0.5, -0.5, 1, -1, 2, -2]));
        const bytes = new Uint8Array(await blob.arrayBuffer());
        return {type: blob.type, b64: btoa(String.fromCharCode(...bytes))};
    """)
    assert result["type"] == "audio/wav"
    with wave.open(io.BytesIO(base64.b64decode(result["b64"]))) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getnframes()) == (16000, 1, 2, 7)
        frames = wav.readframes(7)
    samples = [int.from_bytes(frames[i:i + 2], "little", signed=True) for i in range(0, 14, 2)]
    assert samples == [0, 16384, -16384, 32767, -32768, 32767, -32768]


def test_voice_detector_cuts_one_utterance_and_ignores_clicks(page):
    result = run_module(page, """
        const rate = 16000;
        let seed = 1;
        const noise = () => ((seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5) * 2e-3;
        const signal = (parts) => Float32Array.from(parts.flatMap(([seconds, amp]) =>
            Array.from({length: Math.round(seconds * rate)}, (_, i) => amp * Math.sin(2 * Math.PI * 220 * i / rate) + noise())));
        const run = (x, options) => { const vad = new m.VoiceActivityDetector(options); const events = [];
            for (let i = 0; i < x.length; i += 700) events.push(...vad.push(x.subarray(i, i + 700)));
            // A streaming caller gets the utterance as the start's pre-roll and then one "audio" event per frame.
            const streamed = events.filter((e) => e.type === "start" || e.type === "audio")
                .reduce((n, e) => n + e.samples.length, 0) / rate;
            return events.filter((e) => e.type !== "audio")
                .map((e) => ({type: e.type, seconds: e.samples ? e.samples.length / rate : null, streamed})); };
        return {
            speech: run(signal([[1, 0], [0.6, 0.3], [1.5, 0]])),
            click: run(signal([[1, 0], [0.04, 0.5], [1.5, 0]])),
            twoWords: run(signal([[0.5, 0], [0.4, 0.3], [0.3, 0], [0.4, 0.3], [1.5, 0]])),
            tooLong: run(signal([[0.5, 0], [1.5, 0.3], [0.5, 0]]), {maxSeconds: 1}),
        };
    """)
    assert "error" not in result, result
    speech = result["speech"]
    assert [e["type"] for e in speech] == ["start", "end"], speech
    # 0.6 s of speech, plus up to 0.3 s before it and 0.2 s of quiet after it.
    assert 0.75 <= speech[1]["seconds"] <= 1.15, speech
    # What was streamed frame by frame is the utterance and its pause (the end trims the pause to 0.2 s).
    assert speech[1]["seconds"] <= speech[1]["streamed"] <= speech[1]["seconds"] + 0.7, speech
    assert result["click"] == []
    # A short pause between two words does not split the utterance.
    assert [e["type"] for e in result["twoWords"]] == ["start", "end"]
    assert result["twoWords"][1]["seconds"] >= 1.1
    assert [e["type"] for e in result["tooLong"]] == ["start", "too_long"]
