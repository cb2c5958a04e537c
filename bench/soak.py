"""Soak: mixed traffic against gunicorn for 10 minutes (`make soak`), then the books are checked.

Traffic: FAQ questions in both languages, help, certificate status with the PIN step-up, consent
toggles (PIN + confirmation) and wallet sends, each conversation in its own session. Checks: no 5xx,
worker memory and file descriptors flat, every confirmed consent toggle recorded exactly once, every
confirmed wallet send made exactly one offer, and the consent hash chain intact.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from collections import Counter
from pathlib import Path

import requests
from sqlalchemy import func, select

from bench.load import ROOT, GunicornServer
from domain.consent_ledger import consent_events
from services import Services
from settings import Settings
from wallet_bridge.tables import offers

FAQ = ["등본 떼려면 어떻게 해?", "전입신고 기한이 언제야", "여권 재발급 온라인으로 돼?", "실업급여 신청 어디서 해",
       "how do I renew my passport", "what is the government call centre number", "오늘 날씨 어때"]


class Books:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.toggles = 0
        self.sends = 0

    def record(self, status: int) -> None:
        with self.lock:
            self.statuses[status] += 1


def turn(session: requests.Session, url: str, books: Books, user: str, text: str, sid: str | None,
         locale: str | None = None) -> dict:
    # The demo speakers' published device tokens; anyone else speaks anonymously.
    token = {"demo-user-ko": "demo-device-token-ko", "demo-user-en": "demo-device-token-en"}.get(user)
    body = {"text": text, "request_id": f"soak-{random.getrandbits(64):x}"}
    if sid:
        body["session_id"] = sid
    if locale:
        body["locale"] = locale
    response = session.post(url + "/v1/converse", json=body, timeout=60,
                            headers={"Authorization": f"Bearer {token}"} if token else {})
    books.record(response.status_code)
    return response.json() if response.status_code == 200 else {}


def conversation(session: requests.Session, url: str, books: Books, kind: str) -> None:
    if kind == "faq":
        text = random.choice(FAQ)
        turn(session, url, books, f"soak-anon-{random.randint(0, 50)}", text, None,
             "en-US" if text.isascii() else "ko-KR")
    elif kind == "help":
        turn(session, url, books, "demo-user-en", "help", None, "en-US")
    elif kind == "certificates":
        first = turn(session, url, books, "demo-user-ko", "내 증명서 상태 알려줘", None)
        turn(session, url, books, "demo-user-ko", "1357", first.get("session_id"))
    elif kind == "consent":
        wanted = random.choice(["꺼줘", "켜줘"])
        first = turn(session, url, books, "demo-user-ko", f"국민건강보험공단에 소득 정보 공유 {wanted}", None)
        sid = first.get("session_id")
        if first.get("expects") == "pin":
            first = turn(session, url, books, "demo-user-ko", "1357", sid)
        if first.get("expects") == "confirmation":
            done = turn(session, url, books, "demo-user-ko", "네", sid)
            if "공유를 껐어요" in done.get("speech", "") or "공유를 켰어요" in done.get("speech", ""):
                with books.lock:
                    books.toggles += 1
    elif kind == "wallet":
        first = turn(session, url, books, "demo-user-ko", "주민등록표 등본 지갑으로 보내줘", None)
        sid = first.get("session_id")
        if first.get("expects") == "confirmation":
            first = turn(session, url, books, "demo-user-ko", "네", sid)
        if first.get("expects") == "pin":
            done = turn(session, url, books, "demo-user-ko", "1357", sid)
            if "보냈어요" in done.get("speech", ""):
                with books.lock:
                    books.sends += 1


MIX = ["faq"] * 10 + ["help"] * 2 + ["certificates"] * 3 + ["consent"] * 2 + ["wallet"]


def soak(duration_s: float, clients: int, pause_s: float) -> dict:
    books = Books()
    with GunicornServer() as server:
        settings = Settings.from_env({"MINWON_DEMO": "1", "MINWON_DATA_DIR": str(server.data_dir)}, load_models=False)
        start_rss, start_fds = server.worker_rss_mb(), server.worker_fds()
        deadline = time.monotonic() + duration_s

        def client() -> None:
            session = requests.Session()
            while time.monotonic() < deadline:
                try:
                    conversation(session, server.url, books, random.choice(MIX))
                except requests.RequestException:
                    books.record(599)
                time.sleep(pause_s)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        samples = []
        while any(t.is_alive() for t in threads):
            time.sleep(10)
            samples.append({"t": round(duration_s - (deadline - time.monotonic())),
                             "rss_mb": server.worker_rss_mb(), "fds": server.worker_fds()})
        end_rss, end_fds = server.worker_rss_mb(), server.worker_fds()
        # Memory is compared from the end of the warm-up (the first fifth: caches and pools fill up) to the end.
        warm = samples[max(0, len(samples) // 5 - 1)] if samples else {"rss_mb": start_rss, "fds": start_fds}
        services = Services(settings)
        ledger = services.consents
        with services.db.read() as conn:
            toggle_events = conn.execute(select(func.count()).select_from(consent_events).where(
                consent_events.c.channel != "seed")).scalar()
            offer_rows = conn.execute(select(func.count()).select_from(offers)).scalar()
        chain = ledger.verify_chain()
    total = sum(books.statuses.values())
    result = {
        "duration_s": duration_s, "clients": clients, "requests": total,
        "statuses": dict(books.statuses), "server_errors": sum(n for s, n in books.statuses.items() if s >= 500),
        "rss_mb": {"start": start_rss, "after_warm_up": warm["rss_mb"], "end": end_rss,
                   "growth_pct": round(100 * (sum(end_rss) - sum(warm["rss_mb"])) / sum(warm["rss_mb"]), 2)},
        "fds": {"start": start_fds, "after_warm_up": warm["fds"], "end": end_fds},
        "consent_toggles_confirmed": books.toggles, "consent_events_recorded": toggle_events,
        "wallet_sends_confirmed": books.sends, "offers_recorded": offer_rows,
        "chain_ok": chain.ok, "samples": samples,
    }
    result["passed"] = (result["server_errors"] == 0 and books.toggles == toggle_events
                        and books.sends == offer_rows and chain.ok and result["rss_mb"]["growth_pct"] < 5
                        and sum(end_fds) <= sum(warm["fds"]) + 4)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between a client's conversations")
    args = parser.parse_args()
    result = soak(args.minutes * 60, args.clients, args.pause)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    Path(out / "soak.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2, ensure_ascii=False))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
