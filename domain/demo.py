"""Seeds the demo citizens, certificates, consents and wallet from data/demo.yaml into an empty database."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import yaml
from sqlalchemy import func, select

from domain.certificates import Certificate, CertificateRecords
from domain.citizen_tokens import CitizenTokens
from domain.citizens import Accounts, citizens
from domain.clock import korean_today
from domain.consent_ledger import ConsentLedger
from domain.devices import DeviceTokens
from domain.mydata import AgencyKeys, CitizenData
from domain.wallets import WalletRegistry


def seed_demo(
    *, accounts: Accounts, certificates: CertificateRecords, consents: ConsentLedger, wallets: WalletRegistry,
    citizen_tokens: CitizenTokens, citizen_data: CitizenData, agency_keys: AgencyKeys, devices: DeviceTokens,
    demo_file: Path, today: date | None = None,
) -> bool:
    """Returns True when it seeded; an existing database (any citizen) is left alone."""
    with accounts.db.read() as conn:
        if conn.execute(select(func.count()).select_from(citizens)).scalar():
            return False
    today = today or korean_today()
    spec = yaml.safe_load(demo_file.read_text(encoding="utf-8"))
    records, tokens, ledger = certificates, citizen_tokens, consents

    def day(offset: int | None) -> date | None:
        return None if offset is None else today + timedelta(days=offset)

    for citizen in spec["citizens"]:
        accounts.create_citizen(citizen["id"], citizen["name"], citizen["locale"], citizen["pin"],
                                birth_date=citizen.get("birth_date"))
        accounts.link_user(citizen["speaker_user"], citizen["id"])
        if token := citizen.get("device_token"):
            devices.add(citizen["speaker_user"], token)
        if wallet := citizen.get("wallet"):
            wallets.register(wallet["id"], citizen["id"], wallet["token"])
        if token := citizen.get("app_token"):
            tokens.add(citizen["id"], token)
        for data_item, value in citizen.get("mydata", {}).items():
            citizen_data.put(citizen["id"], data_item, value)
        for cert in citizen.get("certificates", []):
            issued = day(cert.get("issued_days"))
            valid = cert.get("valid_days")
            records.add(Certificate(
                id=cert["id"], citizen_id=citizen["id"], doc_type=cert["doc_type"], state=cert["state"],
                applied_on=day(cert.get("applied_days")), issued_on=issued,
                valid_until=None if valid is None else today + timedelta(days=valid),
            ))
        for consent in citizen.get("consents", []):
            # An "off" consent still has a record: it was given once and withdrawn.
            ledger.set_consent(citizen["id"], consent["recipient"], consent["data_item"], consent["purpose"], True,
                               channel="seed", actor="seed", language=citizen["locale"])
            if not consent["active"]:
                ledger.set_consent(citizen["id"], consent["recipient"], consent["data_item"], consent["purpose"],
                                   False, channel="seed", actor="seed")
    for agency in spec.get("agencies", []):
        agency_keys.add(agency["id"], agency["key"])
    return True
