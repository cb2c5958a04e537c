"""A browser whose microphone permission is refused: the page says so in words and offers typing.
Own module because the permission prompt can only be left to the test when the browser starts without
the auto-accepting fake UI. Needs only main."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.console.conftest import open_console, wait_for


@pytest.fixture(scope="module")
def microphone():
    return {"fake_device": True, "grant_microphone": False}


def set_permission(driver, origin: str, setting: str) -> None:
    driver.execute_cdp_cmd("Browser.setPermission",
                           {"permission": {"name": "microphone"}, "setting": setting, "origin": origin})


def test_denied_permission_is_said_in_words(browser, live_server):
    open_console(browser, live_server)
    set_permission(browser, live_server, "denied")
    browser.find_element(By.ID, "ptt").send_keys(Keys.ENTER)
    error = browser.find_element(By.ID, "error")
    wait_for(lambda: error.is_displayed() and error.get_attribute("data-code"), message="an error message")
    assert error.get_attribute("data-code") == "err_mic_denied"
    assert "마이크 사용 권한이 거부되었어요" in error.text and "글로 요청할 수도 있어요" in error.text
    assert browser.find_element(By.ID, "ptt").get_attribute("data-state") == "idle"
    # Hands-free says the same and switches itself back off.
    browser.find_element(By.ID, "hands-free").click()
    wait_for(lambda: not browser.find_element(By.ID, "hands-free").is_selected(), message="hands-free off")
    assert error.get_attribute("data-code") == "err_mic_denied"


def test_once_allowed_the_same_button_records(browser, live_server):
    open_console(browser, live_server)
    set_permission(browser, live_server, "granted")
    ptt = browser.find_element(By.ID, "ptt")
    ptt.send_keys(Keys.ENTER)
    wait_for(lambda: ptt.get_attribute("data-state") == "recording", message="recording")
    assert ptt.get_attribute("aria-pressed") == "true"
    assert not browser.find_element(By.ID, "error").is_displayed()
