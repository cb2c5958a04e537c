"""Linking a speaker by presenting the mobile ID: an OpenID4VP 1.0 verifier for the cross-device flow.

1. An unlinked speaker user asks to be linked: `start` makes a pairing with a six-digit number that the speaker
   reads out (valid five minutes, single use, stored only as a keyed digest).
2. The wallet sends the number (`resolve`): it is spent at once, and the answer is an authorization request by
   reference — a `client_id` and a `request_uri`. Wrong, used and expired numbers are counted per calling
   address and across the service (database budgets), as link codes are.
3. The wallet fetches the request object (`request_object`): signed with the cluster's issuer key (the verifier
   is pre-registered with the wallets under `client_id`, its keys are the published JWKS), with
   `response_type=vp_token`, `response_mode=direct_post`, a fresh `nonce`, a `state`, and a DCQL query for the
   mobile ID's `citizen_ref` and `name` only.
4. The wallet posts the `vp_token` to the response URI (`respond`). The presentation must verify — the issuer's
   signature with this cluster's keys, the status lists (revoked or suspended refuses), the key-binding JWT
   (nonce, aud, iat window, sd_hash) and the disclosures — and name a citizen that exists. Then, in one
   transaction, the speaker user is linked and the pairing closed; any failure closes it as refused. Either
   way the outcome waits for the speaker's next turn (`take_outcome`), which says who it is linked to now, or
   that it could not link.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, select, update

from domain.attempts import RateLimit
from domain.citizens import citizen_exists_in, link_user_in
from domain.clock import Clock, aware
from domain.crypto import keyed_hash, sign_compact
from domain.signing_keys import IssuerKeyring
from storage import Database
from wallet_bridge.config import WalletConfig
from wallet_bridge.mobile_id import LINK_CLAIMS, MOBILE_ID_FORMAT, citizen_for_ref, mobile_id_vct
from wallet_bridge.oauth_errors import OAuthError
from wallet_bridge.tables import pairings
from wallet_bridge.verification import KeyBindingRequirement, VerificationResult

log = logging.getLogger(__name__)

PAIRING_PATH = "/oid4vp/pairings"
REQUEST_PATH = "/oid4vp/requests"
RESPONSE_PATH = "/oid4vp/response"
REQUEST_OBJECT_TYP = "oauth-authz-req+jwt"
# OpenID4VP 1.0 §5.8: the audience of a request object when the wallet's metadata is not known (static discovery).
STATIC_AUDIENCE = "https://self-issued.me/v2"
DCQL_CREDENTIAL_ID = "mobile_id"
MAX_FIELD_CHARS = 64 * 1024 + 1024  # a vp_token: one SD-JWT (at most 64 KB) in its JSON wrapping

PAIRING_KEPT = timedelta(days=1)

WAITING, REQUESTED, LINKED, REFUSED, REPLACED = "waiting", "requested", "linked", "refused", "replaced"

# Verifies a presentation against the cluster's keys and status lists, with the key binding this request expects.
PresentationCheck = Callable[[str, KeyBindingRequirement], VerificationResult]


@dataclass(frozen=True)
class StartedPairing:
    number: str  # for the speaker to read out; never logged
    expires_at: datetime


@dataclass(frozen=True)
class LinkOutcome:
    linked: bool
    citizen_id: str | None


class SpeakerPairings:
    def __init__(self, db: Database, config: WalletConfig, keyring: IssuerKeyring, check: PresentationCheck,
                 clock: Clock) -> None:
        self.db = db
        self.config = config
        self.keyring = keyring
        self.check = check
        self.clock = clock
        window = config.pairing_failures_window_s
        self._budgets = (
            RateLimit("pairing:addr", config.pairing_failures_per_address, window, config.secret_key, clock=clock),
            RateLimit("pairing:total", config.pairing_failures_total, window, config.secret_key, clock=clock),
        )
        # Called with the speaker user after a link committed (services.py ends the user's dialog sessions).
        self.on_linked: Callable[[str], object] | None = None

    def _hash(self, purpose: str, value: str) -> str:
        return keyed_hash(self.config.secret_key, purpose, value)

    # --- 1. the speaker asks -------------------------------------------------------------------------------

    def start(self, user_id: str) -> StartedPairing:
        """A new pairing number for the speaker user; an earlier one of theirs stops working."""
        now = self.clock()
        expires_at = now + timedelta(seconds=self.config.pairing_ttl_s)
        digits = self.config.pairing_digits
        with self.db.transaction() as conn:
            # Numbers of expired pairings are free again; the user's earlier, unresolved number is withdrawn.
            conn.execute(update(pairings).where(pairings.c.expires_at <= now, pairings.c.number_hash.is_not(None))
                         .values(number_hash=None))
            conn.execute(update(pairings).where(pairings.c.user_id == user_id, pairings.c.status == WAITING)
                         .values(number_hash=None, status=REPLACED, finished_at=now))
            for _ in range(20):
                number = f"{secrets.randbelow(10**digits):0{digits}d}"
                number_hash = self._hash("pairing-number", number)
                taken = conn.execute(select(pairings.c.id).where(pairings.c.number_hash == number_hash)).first()
                if taken is None:
                    break
            else:  # pragma: no cover - a million numbers would have to be live at once
                raise RuntimeError("no free pairing number")
            conn.execute(pairings.insert().values(
                id=secrets.token_urlsafe(24), user_id=user_id, number_hash=number_hash, status=WAITING,
                created_at=now, expires_at=expires_at))
        return StartedPairing(number, expires_at)

    # --- 2. the wallet sends the number ---------------------------------------------------------------------

    def resolve(self, number: Any, origin: str) -> dict[str, Any]:
        """The authorization request by reference for a live pairing number, which is spent; else OAuthError.
        Counters must survive the error answer, so the transaction commits and the error is raised after."""
        budgets = tuple(zip(self._budgets, (origin, "all"), strict=True))
        with self.db.transaction() as conn:
            outcome = self._resolve(conn, number, budgets)
        if isinstance(outcome, OAuthError):
            raise outcome
        return outcome

    def _resolve(self, conn: Connection, number: Any,
                 budgets: tuple[tuple[RateLimit, str], ...]) -> dict[str, Any] | OAuthError:
        if any(budget.exhausted(conn, key) for budget, key in budgets):
            return OAuthError("slow_down", "too many wrong pairing numbers: wait before trying again", 429,
                              {"Retry-After": str(self.config.pairing_failures_window_s)})
        now = self.clock()
        row = None
        if isinstance(number, str) and len(number) == self.config.pairing_digits and number.isascii() \
                and number.isdigit():
            row = conn.execute(select(pairings).where(
                pairings.c.number_hash == self._hash("pairing-number", number)).with_for_update()).mappings().first()
        if row is None or row["status"] != WAITING or aware(row["expires_at"]) <= now:
            for budget, key in budgets:
                budget.count(conn, key)
            return OAuthError("invalid_request", "the pairing number is wrong, used or expired")
        # The nonce and state are per-request values, not secrets that link anyone: a response also needs a
        # presentation signed by the key the mobile ID is bound to, for this nonce.
        conn.execute(update(pairings).where(pairings.c.id == row["id"]).values(
            number_hash=None, status=REQUESTED, nonce=secrets.token_urlsafe(24), state=secrets.token_urlsafe(24)))
        return {
            "client_id": self.config.verifier_client_id,
            "request_uri": self.config.url(f"{REQUEST_PATH}/{row['id']}"),
            "request_uri_method": "get",
            "expires_in": max(1, int((aware(row["expires_at"]) - now).total_seconds())),
        }

    # --- 3. the wallet fetches the request ------------------------------------------------------------------

    def request_object(self, pairing_id: str) -> str | None:
        """The signed authorization request of a resolved, unexpired pairing; None for anything else."""
        if not pairing_id or len(pairing_id) > 64:
            return None
        with self.db.read() as conn:
            row = conn.execute(select(pairings).where(pairings.c.id == pairing_id)).mappings().first()
        if row is None or row["status"] != REQUESTED or aware(row["expires_at"]) <= self.clock():
            return None
        nonce, state = row["nonce"], row["state"]
        now = self.clock()
        claims = {
            "iss": self.config.verifier_client_id,
            "aud": STATIC_AUDIENCE,
            "client_id": self.config.verifier_client_id,
            "response_type": "vp_token",
            "response_mode": "direct_post",
            "response_uri": self.config.url(RESPONSE_PATH),
            "nonce": nonce,
            "state": state,
            "dcql_query": self.dcql_query(),
            "client_metadata": {"vp_formats_supported": {MOBILE_ID_FORMAT: {
                "sd-jwt_alg_values": ["ES256"], "kb-jwt_alg_values": ["ES256"]}}},
            "iat": int(now.timestamp()),
            "exp": int(aware(row["expires_at"]).timestamp()),
        }
        key = self.keyring.active_key()
        return sign_compact({"typ": REQUEST_OBJECT_TYP, "kid": key.kid}, claims, key.private_key)

    def dcql_query(self) -> dict[str, Any]:
        """DCQL: one mobile ID of this issuer, and of it only the claims that linking needs."""
        return {"credentials": [{
            "id": DCQL_CREDENTIAL_ID,
            "format": MOBILE_ID_FORMAT,
            "meta": {"vct_values": [mobile_id_vct(self.config.issuer)]},
            "claims": [{"path": [claim]} for claim in LINK_CLAIMS],
        }]}

    # --- 4. the wallet answers ------------------------------------------------------------------------------

    def respond(self, form: Mapping[str, Any]) -> dict[str, Any]:
        """Checks the Authorization Response (direct_post) and links the speaker; OAuthError when refused."""
        state = form.get("state")
        if not isinstance(state, str) or not state or len(state) > 128:
            raise OAuthError("invalid_request", "state is required")
        with self.db.read() as conn:
            row = conn.execute(select(pairings).where(pairings.c.state == state)).mappings().first()
        if row is not None and row["status"] == LINKED and self._is_accepted(row, form.get("vp_token")):
            return {}  # the accepted response again (the wallet did not get our answer): the same answer
        if row is None or row["status"] != REQUESTED:
            raise OAuthError("invalid_request", "no open request has this state: it was answered, or never made")
        if aware(row["expires_at"]) <= self.clock():
            self._refuse(row["id"], "expired")
            raise OAuthError("invalid_request", "the request has expired")
        if "error" in form:
            # The wallet (or the citizen in it) declined: the pairing ends, and the speaker says so.
            self._refuse(row["id"], "declined")
            return {}
        failed, detail, citizen_ref = self._check_presentation(form.get("vp_token"), row["nonce"])
        if failed is not None:
            self._refuse(row["id"], failed)
            raise OAuthError("invalid_request" if failed == "format" else "access_denied",
                             f"{failed}: {detail}")
        with self.db.transaction() as conn:
            locked = conn.execute(select(pairings).where(pairings.c.id == row["id"]).with_for_update()) \
                .mappings().one()
            if locked["status"] != REQUESTED:
                # A copy of this response raced this one and was answered first.
                raise OAuthError("invalid_request", "the request was already answered")
            citizen_id = citizen_for_ref(conn, citizen_ref)
            now = self.clock()
            if citizen_id is None or not citizen_exists_in(conn, citizen_id):
                conn.execute(update(pairings).where(pairings.c.id == row["id"]).values(
                    status=REFUSED, failed_check="citizen", finished_at=now, nonce=None, state=None))
                outcome: str | None = "citizen"
            else:
                link_user_in(conn, locked["user_id"], citizen_id)
                conn.execute(update(pairings).where(pairings.c.id == row["id"]).values(
                    status=LINKED, citizen_id=citizen_id, finished_at=now, nonce=None,
                    response_hash=self._hash("pairing-response", form["vp_token"])))
                outcome = None
        if outcome is not None:
            raise OAuthError("access_denied", "citizen: the mobile ID names no citizen of this service")
        log.info("speaker linked by a wallet presentation")
        if self.on_linked is not None:
            self.on_linked(locked["user_id"])
        return {}

    def _is_accepted(self, row: Mapping[str, Any], vp_token: Any) -> bool:
        return isinstance(vp_token, str) and row["response_hash"] is not None and secrets.compare_digest(
            row["response_hash"], self._hash("pairing-response", vp_token))

    def _check_presentation(self, vp_token: Any, nonce: str) -> tuple[str | None, str, str | None]:
        """(the failed check or None, what was wrong, the disclosed citizen reference)."""
        if not isinstance(vp_token, str) or not vp_token or len(vp_token) > MAX_FIELD_CHARS:
            return "format", "vp_token is required", None
        try:
            token = json.loads(vp_token)
        except (ValueError, RecursionError):
            return "format", "vp_token must be a JSON object (OpenID4VP 1.0 §8.1)", None
        presentations = token.get(DCQL_CREDENTIAL_ID) if isinstance(token, dict) else None
        if not isinstance(token, dict) or set(token) != {DCQL_CREDENTIAL_ID} or not isinstance(presentations, list) \
                or len(presentations) != 1 or not isinstance(presentations[0], str):
            return "format", f"vp_token must hold exactly one presentation for {DCQL_CREDENTIAL_ID!r}", None
        requirement = KeyBindingRequirement(
            nonce=nonce, audience=self.config.verifier_client_id,
            max_age=timedelta(seconds=self.config.presentation_max_age_s),
            max_skew=timedelta(seconds=self.config.presentation_max_skew_s))
        result = self.check(presentations[0], requirement)
        failed = result.failed
        if failed is not None:
            return failed.name, failed.detail, None
        if not result.valid or result.credential is None:
            return "signature", "the presentation did not verify", None
        if result.credential.get("vct") != mobile_id_vct(self.config.issuer):
            return "claims", "the presentation is not this issuer's mobile ID", None
        missing = [claim for claim in LINK_CLAIMS if claim not in result.disclosed]
        if missing:
            return "claims", f"the presentation does not disclose {', '.join(missing)}", None
        return None, "", result.disclosed["citizen_ref"]

    def _refuse(self, pairing_id: str, failed_check: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(update(pairings).where(pairings.c.id == pairing_id, pairings.c.status == REQUESTED).values(
                status=REFUSED, failed_check=failed_check, finished_at=self.clock(), nonce=None, state=None))
        log.info("wallet presentation refused", extra={"failed_check": failed_check})

    def purge(self) -> int:
        """Deletes pairings that ended (or expired) over a day ago: an outcome not told by then is not news."""
        cutoff = self.clock() - PAIRING_KEPT
        with self.db.transaction() as conn:
            return conn.execute(delete(pairings).where(pairings.c.expires_at < cutoff)).rowcount or 0

    # --- 5. the speaker's next turn -------------------------------------------------------------------------

    def take_outcome(self, user_id: str) -> LinkOutcome | None:
        """The newest outcome not yet told to the speaker user (marked told), or None."""
        with self.db.read() as conn:
            row = conn.execute(select(pairings.c.id, pairings.c.status, pairings.c.citizen_id).where(
                pairings.c.user_id == user_id, pairings.c.status.in_((LINKED, REFUSED)),
                pairings.c.announced_at.is_(None)).order_by(pairings.c.finished_at.desc())).first()
        if row is None:
            return None
        with self.db.transaction() as conn:
            told = conn.execute(update(pairings).where(
                pairings.c.user_id == user_id, pairings.c.status.in_((LINKED, REFUSED)),
                pairings.c.announced_at.is_(None)).values(announced_at=self.clock())).rowcount
        if not told:
            return None  # another turn of the same user told it a moment ago
        return LinkOutcome(row.status == LINKED, row.citizen_id)

