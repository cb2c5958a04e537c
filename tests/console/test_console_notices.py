"""The My data panel lists the demo citizen's notifications with each push's delivery state per channel (issue 18,
item 5), in headless Chromium against the live server.

The Korean demo citizen opts into Kakao and Alexa pushes and gets a new notice; its Kakao push reaches the fake
Kakao server (tests/fake_platforms.py), and its Alexa push either reaches the fake Alexa or has nobody to go to
(when no Alexa account of the demo citizen was linked by an earlier test). The panel shows both states. At the end the notice is marked read and the settings put back, so the demo's headlines stay as the
other tests expect them.
"""

from __future__ import annotations

import secrets

from selenium.webdriver.common.by import By

from domain.notifications import CONSENT_ENDING, NotificationSettings, raise_notification
from tests.console.conftest import open_console, wait_for
from tests.fake_platforms import pushes_to_fakes

CITIZEN = "citizen-0001"  # the Korean demo citizen, whom the console speaks as first (data/demo.yaml)


def notice_card(driver, notification_id: str) -> dict | None:
    return driver.execute_script("""
        const card = document.querySelector(`#notifications .notice[data-notification-id="${arguments[0]}"]`);
        if (!card) return null;
        return {read: card.dataset.read, text: card.textContent,
                pushes: Object.fromEntries([...card.querySelectorAll('.push[data-channel]')]
                                           .map((p) => [p.dataset.channel, p.dataset.state]))};
    """, notification_id)


def test_my_data_lists_notices_with_their_delivery_state_per_channel(browser, live_server, services):
    store = services.notifications
    subject = "console-test-" + secrets.token_hex(4)
    with pushes_to_fakes(services) as platforms:
        services.accounts.link_user(f"kakao:console-{secrets.token_hex(4)}", CITIZEN)
        store.save_settings(CITIZEN, NotificationSettings(spoken_headlines=False, channels=("kakao", "alexa"),
                                                          quiet_start="00:00", quiet_end="00:00"))
        try:
            with services.db.transaction() as conn:
                raise_notification(conn, CITIZEN, CONSENT_ENDING, subject, "2099-01-01",
                                   {"recipient": "nhis", "data_item": "income", "date": "2099-01-01"}, services.clock())
            (notice,) = [n for n in store.for_citizen(CITIZEN) if n.subject == subject]
            services.pushes.dispatch_due()
            wait_for(lambda: len(platforms.accepted("kakao")) == 1, message="the Kakao push")

            open_console(browser, live_server)
            card = wait_for(lambda: notice_card(browser, notice.id), message="the notice in My data")
            assert card["read"] == "false"
            recorded = {p.channel: p.state for p in services.pushes.queue.states_for(CITIZEN)[notice.id]}
            # Whether the demo citizen has an Alexa account to be told on depends on the tests run before this one
            # (the Alexa webhook's link the demo citizen): either way, the panel shows what was recorded.
            assert recorded["kakao"] == "sent" and recorded["alexa"] in ("sent", "no_recipient")
            assert card["pushes"] == recorded
            assert "동의 곧 끝남 · 국민건강보험공단 · 소득 정보" in card["text"] and "카카오톡: 보냄" in card["text"]
            alexa_label = {"sent": "알렉사: 보냄", "no_recipient": "알렉사: 받을 계정 없음"}[recorded["alexa"]]
            assert alexa_label in card["text"]
            # The seeded reminders are listed too, without pushes (nobody had opted in when they were raised).
            kinds = [c.get_attribute("data-kind") for c in browser.find_elements(By.CSS_SELECTOR,
                                                                                  "#notifications .notice")]
            assert "certificate_expiring" in kinds and "consent_ending" in kinds
        finally:
            store.mark_read(CITIZEN, [n.id for n in store.for_citizen(CITIZEN) if n.subject == subject], via="app")
            store.save_settings(CITIZEN, NotificationSettings(spoken_headlines=False))
