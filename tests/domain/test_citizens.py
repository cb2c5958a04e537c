"""Citizens, PINs and demo data, on SQLite and on PostgreSQL (`stores`)."""

from __future__ import annotations

from sqlalchemy import select

from domain.citizens import citizens, hash_pin


def test_pin_is_stored_as_scrypt_hash_and_name_encrypted(stores, stores_citizen):
    citizen_id, _ = stores_citizen(pin="8642", name="비밀스러운이름")
    with stores.db.read() as conn:
        pin_hash, name_enc = conn.execute(select(citizens.c.pin_hash, citizens.c.name_enc).where(
            citizens.c.id == citizen_id)).one()
    assert pin_hash.startswith("scrypt$") and "8642" not in pin_hash
    assert "비밀스러운이름" not in name_enc
    assert stores.accounts.citizen(citizen_id).name == "비밀스러운이름"
    assert hash_pin("8642") != hash_pin("8642")  # salted


def test_demo_data_is_seeded(stores):
    ko = stores.accounts.citizen_for_user("demo-user-ko")
    en = stores.accounts.citizen_for_user("demo-user-en")
    assert (ko.id, ko.name, ko.locale) == ("citizen-0001", "홍길동 (demo)", "ko-KR")
    assert (en.id, en.name, en.locale) == ("citizen-0002", "Jane Doe (demo)", "en-US")
    assert stores.accounts.citizen_for_user("someone-else") is None


def test_wrong_pins_count_and_a_right_one_resets(stores, stores_citizen):
    citizen_id, _ = stores_citizen(pin="1212")
    assert stores.accounts.verify_pin(citizen_id, "0000").remaining == 4
    assert stores.accounts.verify_pin(citizen_id, "1212").ok
    assert stores.accounts.verify_pin(citizen_id, "0000").remaining == 4
