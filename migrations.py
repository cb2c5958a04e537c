"""The database's tables and numbered migrations, handed to `storage.Database.upgrade` by services.py.

`TABLE_MODULES` declare every table on `storage.metadata`. A fresh database is created from those at the
newest version; an existing one runs `MIGRATIONS[i]` to go from version i+1 to i+2, in order, in one
transaction. Tables that are new in a version need no migration (create_all adds them); changes to
existing tables and to stored values do.
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect, text

from domain import consent_ledger, field_migration
from domain.citizen_tokens import citizen_app_tokens
from domain.citizens import citizens, link_codes
from domain.crypto import rekey_digest
from domain.mydata import agency_keys
from domain.signing_keys import ISSUER_KEY_FILES, ISSUER_KEYS, import_key_files
from domain.wallets import wallets
from skills.sessions import dialog_sessions, turn_replies
from storage import Migration, MigrationContext
from wallet_bridge import migrations as wallet_migrations

TABLE_MODULES = (
    "domain.attempts",
    "domain.citizens",
    "domain.devices",
    "skills.sessions",
    "domain.certificates",
    "domain.consent_ledger",
    "domain.citizen_tokens",
    "domain.mydata",
    "domain.notifications",
    "domain.push_deliveries",
    "domain.wallets",
    "wallet_bridge.tables",
)


def _v2_security_audit(conn: Connection, context: MigrationContext) -> None:
    """Version 2, the security audit: stored bearer-secret digests become keyed; PIN lockouts escalate;
    sessions and stored replies are bound to their principal and encrypted; field ciphertexts carry their
    (table, column, row) as associated data; the consent chain's digests cover the citizen and its head is
    signed (the chain is re-sealed once, by this trusted step, after it verified under the old rules).

    The unkeyed SHA-256 digests are re-keyed in place (the keyed digest is an HMAC of the SHA-256), so app
    tokens, agency keys and wallet tokens keep working. Link codes are invalidated instead: codes are now
    eight digits, and an old code's ten minutes are soon over anyway. Sessions and stored replies are
    dropped: their stored form changed, and a session only lives minutes."""
    for table, column in ((citizen_app_tokens, "token_hash"), (agency_keys, "key_hash"), (wallets, "token_hash")):
        key_column = table.c[column]
        primary = next(iter(table.primary_key.columns))
        for row in conn.execute(table.select()).mappings().all():
            conn.execute(table.update().where(primary == row[primary.name]).values(
                {key_column: rekey_digest(row[column], context.secret_key)}))
    conn.execute(link_codes.delete())
    conn.execute(text("ALTER TABLE citizens ADD COLUMN lockouts INTEGER NOT NULL DEFAULT 0"))
    conn.execute(turn_replies.delete())
    conn.execute(dialog_sessions.delete())
    conn.execute(text("ALTER TABLE turn_replies ADD COLUMN session_id VARCHAR(64)"))
    conn.execute(text("ALTER TABLE dialog_sessions ADD COLUMN platform_session VARCHAR(64)"))
    field_migration.bind_fields_v2(conn, context)
    wallet_migrations.bind_sealed_v2(conn, context)
    consent_ledger.migrate_v2(conn, context)


def _v3_several_nodes(conn: Connection, context: MigrationContext) -> None:
    """Version 3, several nodes on one database (issue 15): nothing that must be shared stays on a node's disk.

    The issuer and consent receipt keys move from the data directory into `signing_keys` (sealed with the service
    key), in their order, so the newest key still signs and every credential and receipt signed before still
    verifies; the key files are not read again and may be deleted once the upgrade has committed. Rate limits
    and attempt budgets are counted in the new `rate_limits` table (made by create_all); the fixed-window
    counters of `wallet_rate_limits` are dropped: they only ever covered the last ten minutes, so the cost is
    that those budgets start full once, at the upgrade. The wallet push outbox records which node claimed a row
    and until when."""
    import_key_files(conn, context.data_dir / ISSUER_KEY_FILES, ISSUER_KEYS, context.secret_key)
    consent_ledger.import_receipt_key_files(conn, context)
    conn.execute(text("DROP TABLE IF EXISTS wallet_rate_limits"))
    wallet_migrations.add_outbox_claims_v3(conn, context)


def _v4_mobile_id(conn: Connection, _context: MigrationContext) -> None:
    """Version 4, linking a speaker by presenting the mobile ID (issue 16): a citizen's birth date (encrypted, what
    the mobile ID credential states). The pairing and citizen-reference tables are new (made by create_all)."""
    # A database upgraded from an older version had its newer tables made by create_all from today's metadata
    # only where the table was missing; `citizens` existed, so the column is added here, unless it is there.
    if "birth_date_enc" in {c["name"] for c in inspect(conn).get_columns("citizens")}:
        return
    column_type = citizens.c.birth_date_enc.type.compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE citizens ADD COLUMN birth_date_enc {column_type}"))


def _v5_notifications(_conn: Connection, _context: MigrationContext) -> None:
    """Version 5, proactive notifications (issue 18): the `notifications`, `notification_settings`,
    `scheduler_leases` and `certificate_state_reports` tables are new (made by create_all before this runs), and a
    certificate may now be in the state "refused" (a value of an existing column, no change to its type). Nothing
    existing changes; the first scan after the upgrade raises what is already due."""


def _v6_notification_pushes(_conn: Connection, _context: MigrationContext) -> None:
    """Version 6, notification pushes (issue 18, item 3): the `notification_pushes` outbox and `push_addresses` (the
    sealed platform ids of linked users whose user id is a digest) are new (made by create_all before this runs).
    Notifications raised before the upgrade were raised when nothing was pushed, and stay unpushed: nobody opted
    into a push channel before there were pushes."""


def _v7_suspension_time(conn: Connection, context: MigrationContext) -> None:
    """Version 7: when a wallet credential's current suspension began, so that each suspension is told (a credential
    suspended again after it was reinstated is news again). Credentials suspended before the upgrade keep no time,
    and their notification keeps the event it was raised with."""
    wallet_migrations.add_suspension_time_v7(conn, context)


MIGRATIONS: list[Migration] = [_v2_security_audit, _v3_several_nodes, _v4_mobile_id, _v5_notifications,
                               _v6_notification_pushes, _v7_suspension_time]
SCHEMA_VERSION = 1 + len(MIGRATIONS)
