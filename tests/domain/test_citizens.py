from __future__ import annotations

import sqlite3

from domain.citizens import hash_pin


def test_pin_is_stored_as_scrypt_hash_and_name_encrypted(services, new_citizen):
    citizen_id, _ = new_citizen(pin="8642", name="비밀스러운이름")
    database = services.settings.database_url.split("///", 1)[1]
    with sqlite3.connect(database) as conn:
        pin_hash, name_enc = conn.execute("select pin_hash, name_enc from citizens where id = ?",
                                          (citizen_id,)).fetchone()
    assert pin_hash.startswith("scrypt$") and "8642" not in pin_hash
    assert "비밀스러운이름" not in name_enc
    assert services.accounts.citizen(citizen_id).name == "비밀스러운이름"
    assert hash_pin("8642") != hash_pin("8642")  # salted


def test_demo_data_is_seeded(services):
    ko = services.accounts.citizen_for_user("demo-user-ko")
    en = services.accounts.citizen_for_user("demo-user-en")
    assert (ko.id, ko.name, ko.locale) == ("citizen-0001", "홍길동 (demo)", "ko-KR")
    assert (en.id, en.name, en.locale) == ("citizen-0002", "Jane Doe (demo)", "en-US")
    assert services.accounts.citizen_for_user("someone-else") is None


def test_wrong_pins_count_and_a_right_one_resets(services, new_citizen):
    citizen_id, _ = new_citizen(pin="1212")
    assert services.accounts.verify_pin(citizen_id, "0000").remaining == 4
    assert services.accounts.verify_pin(citizen_id, "1212").ok
    assert services.accounts.verify_pin(citizen_id, "0000").remaining == 4
