"""Security checks that cross areas: lockout across processes, one wallet's token against another's
mailbox, an agency without consent, a forged speaker token."""

from __future__ import annotations

import secrets

from app import create_app
from settings import Settings


def test_pin_lockout_holds_across_processes(services, new_citizen, tmp_path):
    """A second app on the same database (as a second gunicorn worker would be) sees the lock at once."""
    citizen_id, _ = new_citizen(pin="8080")
    other = create_app(Settings.from_env({"MINWON_DEMO": "1", "MINWON_DATA_DIR": str(services.settings.data_dir)},
                                         load_models=False), start=False).extensions["minwon"]
    for _ in range(3):
        assert not services.accounts.verify_pin(citizen_id, "0000").ok
    for _ in range(2):
        assert not other.accounts.verify_pin(citizen_id, "0000").ok
    assert services.accounts.lock_state(citizen_id) is not None
    # Even the right PIN is refused in either process while the lock holds.
    assert other.accounts.verify_pin(citizen_id, "8080").locked
    assert services.accounts.verify_pin(citizen_id, "8080").locked


def test_a_wallet_token_cannot_read_another_wallets_mailbox(client, services, new_citizen):
    citizen_id, _ = new_citizen()
    mine = "wallet-t-" + secrets.token_hex(4)
    services.wallet.wallets.register(mine, citizen_id, "token-" + mine)
    own = client.get(f"/v1/wallets/{mine}/offers", headers={"Authorization": f"Bearer token-{mine}"})
    assert own.status_code == 200
    theirs = client.get("/v1/wallets/wallet-0001/offers", headers={"Authorization": f"Bearer token-{mine}"})
    assert theirs.status_code == 401 and "offers" not in theirs.get_json()


def test_forged_speaker_tokens_are_refused(tmp_path):
    env = {"MINWON_DEMO": "1", "MINWON_DATA_DIR": str(tmp_path), "MINWON_KAKAO_TOKEN": "kakao-" + secrets.token_hex(8),
           "MINWON_NUGU_TOKEN": "nugu-" + secrets.token_hex(8)}
    client = create_app(Settings.from_env(env, load_models=False), start=False).test_client()
    kakao = client.post("/kakao", json={"userRequest": {"utterance": "도움말", "user": {"id": "x"}}},
                        headers={"X-Skill-Token": "forged"})
    nugu = client.post("/nugu/answer", json={"version": "2.0", "action": {"actionName": "answer"}},
                       headers={"Authorization": "token forged"})
    assert kakao.status_code == 401 and nugu.status_code == 401
    assert "도움말" not in kakao.get_data(as_text=True)
