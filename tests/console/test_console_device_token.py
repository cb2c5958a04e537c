"""The console outside demo mode: it has no demo speakers, asks once for a device token, keeps it in the page
only, and speaks as that device. Own module: a server of its own without demo data (and without models,
which typed help turns do not need)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from app import create_app, dev_server
from tests.conftest import make_settings
from tests.console.conftest import open_console, wait_for
from tests.loopback import LoopbackServer


@pytest.fixture(scope="module")
def microphone():
    return {"fake_device": False, "grant_microphone": False}


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    settings = make_settings(tmp_path_factory.mktemp("no-demo"), demo=False, load_models=False)
    app = create_app(settings)
    with LoopbackServer(dev_server(app, "127.0.0.1", 0)) as server:
        yield server.url, app.extensions["minwon"]
    app.extensions["minwon"].stop()


def test_outside_demo_mode_the_page_asks_for_a_token_and_speaks_as_that_device(browser, plain_server):
    url, services = plain_server
    user_id, token = services.devices.register()
    open_console(browser, url)
    form = browser.find_element(By.ID, "token-form")
    assert form.is_displayed()
    speaker = Select(browser.find_element(By.ID, "speaker"))
    assert [o.get_attribute("value") for o in speaker.options] == ["guest"]
    field = browser.find_element(By.ID, "device-token")
    field.send_keys(token)
    field.send_keys(Keys.ENTER)
    wait_for(lambda: speaker.first_selected_option.get_attribute("value") == "this-device", message="this device")
    assert field.get_attribute("value") == ""  # not left in the field
    box = browser.find_element(By.ID, "text-input")
    box.send_keys("도움말")
    box.send_keys(Keys.ENTER)
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#log .turn[data-state='answered']"),
             message="the reply")
    # The turn was the device's: its session belongs to the token's user, not to an anonymous caller.
    session_id = browser.execute_script("return window.minwonConsole.state.sessionId")
    assert services.sessions.owner(session_id) == user_id
    # Kept in the page only: nothing in local or session storage, nothing in a cookie.
    assert browser.execute_script("return localStorage.length + sessionStorage.length") == 0
    assert token not in (browser.execute_script("return document.cookie") or "")
