"""The wallet flow's logs hold no tx_code, pre-authorized code, access token, nonce, wallet token or PIN —
checked on the raw log records, before the formatter's redaction gets a chance to hide a mistake."""

from __future__ import annotations

import logging
import re
import secrets
from datetime import date, timedelta

from domain.certificates import Certificate
from tests.wallet_bridge.conftest import Holder

GRANT = "urn:ietf:params:oauth:grant-type:pre-authorized_code"


class RawRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # String fields only: timestamps and thread ids are long digit runs that a 6-digit code could match.
        fields = [str(v) for v in vars(record).values() if isinstance(v, str | dict | list | tuple)]
        self.text.append(" ".join([record.getMessage(), *fields]))


def test_wallet_flow_logs_hold_no_secrets(client, services, new_citizen, conversation):
    citizen_id, user_id = new_citizen(pin="6482")
    services.certificates.add(Certificate(
        id=f"{citizen_id}-rrc", citizen_id=citizen_id, doc_type="resident-registration-copy", state="issued",
        applied_on=None, issued_on=date.today() - timedelta(days=3), valid_until=date.today() + timedelta(days=87)))
    wallet_id, wallet_token = "wallet-t-" + secrets.token_hex(4), "wt-" + secrets.token_urlsafe(16)
    services.wallet.wallets.register(wallet_id, citizen_id, wallet_token)
    handler = RawRecords()
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.DEBUG)
    try:
        talk = conversation(user_id)
        talk.say("등본 지갑으로 보내줘")
        talk.say("네")
        reply = talk.say("육 사 팔 이")
        tx_code = re.findall(r'interpret-as="digits">(\d+)<', reply["ssml"])[0]
        offers = client.get(f"/v1/wallets/{wallet_id}/offers", headers={"Authorization": f"Bearer {wallet_token}"})
        code = offers.get_json()["offers"][0]["credential_offer"]["grants"][GRANT]["pre-authorized_code"]
        client.post("/oid4vci/token", data={"grant_type": GRANT, "pre-authorized_code": code, "tx_code": "000000"},
                    environ_base={"REMOTE_ADDR": "192.0.2.77"})
        access = client.post("/oid4vci/token", data={"grant_type": GRANT, "pre-authorized_code": code,
                                                     "tx_code": tx_code},
                             environ_base={"REMOTE_ADDR": "192.0.2.77"}).get_json()["access_token"]
        nonce = client.post("/oid4vci/nonce").get_json()["c_nonce"]
        issued = client.post("/oid4vci/credential", headers={"Authorization": f"Bearer {access}"}, json={
            "credential_configuration_id": "ResidentRegistrationCopyCredential",
            "proofs": {"jwt": [Holder().proof(services.wallet.config.issuer, nonce, services.wallet.clock())]}})
        assert issued.status_code == 200
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    logs = "\n".join(handler.text)
    assert "/oid4vci/credential" in logs  # the requests were logged …
    for secret in (tx_code, code, access, nonce, wallet_token, "6482", issued.get_json()["credentials"][0]["credential"]):
        assert secret not in logs  # … without any of their secrets
