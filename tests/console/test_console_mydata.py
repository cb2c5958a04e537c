"""A typed consent toggle, with its confirmation and PIN, flips the consent row in the My data panel
without a reload. Needs the consent skill (branch `skills`, issue 5) on top of main.

It uses the Korean demo citizen's own consent (the panel shows demo citizens only) and puts it back
on at the end, so the demo data is as it was (two more events in that consent's history).
"""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.console.conftest import open_console, wait_for

PIN = "1357"  # citizen-0001's demo PIN (data/demo.yaml)
NHIS_INCOME = "#consents .consent[data-recipient='nhis'][data-data-item='income']"


def turns(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#log .turn")


def say(driver, text: str):
    count = len(turns(driver))
    box = driver.find_element(By.ID, "text-input")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)
    wait_for(lambda: len(turns(driver)) > count and turns(driver)[-1].get_attribute("data-state") != "waiting",
             message=f"the reply to {text!r}")
    turn = turns(driver)[-1]
    assert turn.get_attribute("data-state") == "answered", turn.text
    return turn


def expects(driver) -> str | None:
    return driver.execute_script("return window.minwonConsole.state.expects")


def change_consent(driver, request: str) -> list[str]:
    """Says `request`, then answers the PIN and confirmation questions the way a citizen would; returns
    the intents of the turns."""
    intents = [say(driver, request).get_attribute("data-intent")]
    for _ in range(4):
        if expects(driver) == "pin":
            intents.append(say(driver, PIN).get_attribute("data-intent"))
        elif expects(driver) == "confirmation":
            intents.append(say(driver, "네").get_attribute("data-intent"))
        else:
            break
    return intents


def row(driver) -> dict | None:
    """The nhis/income consent row, read in one go (the panel is re-rendered whenever it is refreshed)."""
    return driver.execute_script("""
        const row = document.querySelector(arguments[0]);
        if (!row) return null;
        return {active: row.dataset.active, changed: row.dataset.changed, text: row.textContent,
                events: [...row.querySelectorAll('.history li')].map((li) => li.textContent)};
    """, NHIS_INCOME)


def row_state(driver) -> str | None:
    current = row(driver)
    return current["active"] if current else None


def test_consent_toggle_by_typed_turns_flips_the_row_live(browser, live_server):
    open_console(browser, live_server)
    wait_for(lambda: row_state(browser) is not None, message="the consent rows")
    assert row_state(browser) == "true", "the demo consent nhis/income starts on"
    history_before = len(row(browser)["events"])
    # A value kept on the page's window object would be lost by a reload.
    browser.execute_script("window.__noReload = true")

    intents = change_consent(browser, "국민건강보험공단에 소득 정보 공유 꺼줘")
    assert intents[0] == "consent_off" and set(intents) == {"consent_off"}, intents
    last = turns(browser)[-1]
    assert "껐" in last.find_element(By.CSS_SELECTOR, "[data-role=reply]").text
    wait_for(lambda: row_state(browser) == "false", message="the consent row to flip off")
    flipped = row(browser)
    assert flipped["changed"] == "true"
    assert "공유 안 함" in flipped["text"]
    assert browser.execute_script("return window.__noReload === true"), "the page reloaded"
    # The change is announced to screen readers, and the history has the withdrawal.
    assert "국민건강보험공단에 소득 정보 공유가 꺼졌어요" in browser.find_element(By.ID, "mydata-changes").get_attribute(
        "textContent")
    events = flipped["events"]
    assert len(events) == history_before + 1
    assert events[-1].startswith("철회") and events[-1].endswith("· console")
    # The typed PIN never appears on the page.
    assert PIN not in browser.find_element(By.ID, "log").text
    assert browser.find_elements(By.CSS_SELECTOR, "#log .turn[data-pin-hidden='true']")

    intents = change_consent(browser, "국민건강보험공단에 소득 정보 공유 켜줘")
    assert set(intents) == {"consent_on"}, intents
    wait_for(lambda: row_state(browser) == "true", message="the consent row to flip back on")
    assert browser.execute_script("return window.__noReload === true")
