"""The database locked for a moment: the request fails with 503 and writes nothing; a retry succeeds."""

from __future__ import annotations

import sqlite3

from sqlalchemy import func, select

from skills.sessions import dialog_sessions


def test_locked_database_gives_503_then_retry_succeeds(client, services):
    path = services.settings.database_url.split("///", 1)[1]
    with services.db.read() as conn:
        before = conn.execute(select(func.count()).select_from(dialog_sessions)).scalar()
    blocker = sqlite3.connect(path, timeout=1, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        response = client.post("/v1/converse", json={"user_id": "fault-user", "text": "도움말",
                                                     "request_id": "fault-1"})
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "storage_unavailable"
        assert response.headers["Retry-After"] == "1"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    with services.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(dialog_sessions)).scalar() == before
    retry = client.post("/v1/converse", json={"user_id": "fault-user", "text": "도움말", "request_id": "fault-1"})
    assert retry.status_code == 200 and retry.get_json()["intent"] == "help"
