"""A process killed in the middle of consent changes and wallet offers: after a restart every change is
either done once or not at all, the consent hash chain is intact, and retrying the same requests
completes what was missing without doubling anything.

The writer is a real process on a real SQLite file, killed with SIGKILL at a random moment while it
writes (no clean shutdown, no atexit).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap

from sqlalchemy import func, select

from domain.consent_ledger import consent_events
from services import Services
from settings import Settings
from tests.conftest import ROOT
from wallet_bridge.tables import offers, outbox

WRITER = textwrap.dedent("""
    import sys
    from services import Services
    from settings import Settings
    from domain.consent_ledger import DEFAULT_PURPOSE

    services = Services(Settings.from_env(load_models=False))
    services.initialize()
    ledger = services.consents
    start, end = int(sys.argv[1]), int(sys.argv[2])
    for i in range(start, end):
        ledger.set_consent("citizen-0001", "nhis", "income", DEFAULT_PURPOSE, active=i % 2 == 1,
                           channel="test", actor="crash", idempotency_key=f"crash-consent-{i}")
        services.wallet.offers.create_offer("citizen-0001", "wallet-0001", "cert-0001-rrc",
                                            "resident-registration-copy", idempotency_key=f"crash-offer-{i}",
                                            push_url="http://127.0.0.1:9/unreachable")
        print(i, flush=True)
""")


def run_writer(env: dict[str, str], start: int, end: int, kill_after: int | None) -> int:
    """Runs the writer; with `kill_after`, SIGKILLs it once that many steps were reported. Returns the
    number of steps reported as done."""
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(start), str(end)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    done = 0
    assert process.stdout is not None
    for _line in process.stdout:
        done += 1
        if kill_after is not None and done >= kill_after:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    return done


def counts(services: Services) -> tuple[int, int, int]:
    with services.db.read() as conn:
        events = conn.execute(select(func.count()).select_from(consent_events).where(
            consent_events.c.idempotency_key.like("crash-consent-%"))).scalar()
        offer_rows = conn.execute(select(func.count()).select_from(offers).where(
            offers.c.idempotency_key.like("crash-offer-%"))).scalar()
        deliveries = conn.execute(select(func.count()).select_from(outbox)).scalar()
    return events, offer_rows, deliveries


def test_kill_during_writes_leaves_each_change_once_or_not_at_all(tmp_path):
    env = {**os.environ, "MINWON_DEMO": "1", "MINWON_DATA_DIR": str(tmp_path), "MINWON_LOG_LEVEL": "ERROR"}
    Services(Settings.from_env(env, load_models=False)).initialize()  # seed once
    steps = 40
    reported = run_writer(env, 0, steps, kill_after=random.randint(5, 30))

    services = Services(Settings.from_env(env, load_models=False))
    events, offer_rows, deliveries = counts(services)
    # Everything reported is there; at most the one step in flight was partly done.
    assert reported <= events <= reported + 1
    assert reported <= offer_rows <= reported + 1
    assert deliveries == offer_rows  # an offer and its push delivery are one transaction
    ledger = services.consents
    report = ledger.verify_chain()
    assert report.ok, report.describe()
    record = next(r for r in ledger.records("citizen-0001") if (r.recipient, r.data_item) == ("nhis", "income"))
    last_event = ledger.events(record.id)[-1].event
    assert record.status == {"given": "active", "renewed": "active", "withdrawn": "withdrawn"}[last_event]

    # The platform retries every request from the start: nothing is doubled, the rest is completed.
    assert run_writer(env, 0, steps, kill_after=None) == steps
    services = Services(Settings.from_env(env, load_models=False))
    # Each step flips the consent, so each writes exactly one event; each step makes one offer.
    assert counts(services) == (steps, steps, steps)
    assert services.consents.verify_chain().ok
