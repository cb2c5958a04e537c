"""A browser with no microphone at all: the page says so in words. Own module because the fake
microphone is fixed when the browser starts. Needs only main."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.console.conftest import open_console, wait_for


@pytest.fixture(scope="module")
def microphone():
    return {"fake_device": False, "grant_microphone": False}


def test_no_microphone_is_said_in_words(browser, live_server):
    open_console(browser, live_server)
    browser.execute_cdp_cmd("Browser.setPermission", {
        "permission": {"name": "microphone"}, "setting": "granted", "origin": live_server})
    browser.find_element(By.TAG_NAME, "body").click()
    ActionChains(browser).key_down(Keys.SPACE).perform()
    error = browser.find_element(By.ID, "error")
    try:
        wait_for(lambda: error.is_displayed(), message="an error message")
    finally:
        ActionChains(browser).key_up(Keys.SPACE).perform()
    assert error.get_attribute("data-code") == "err_no_mic"
    assert "마이크를 찾을 수 없어요" in error.text
    assert browser.find_elements(By.CSS_SELECTOR, "#log .turn") == []
