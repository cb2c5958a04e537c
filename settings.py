"""Configuration from one place: environment variables prefixed MINWON_, read once per process."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

log = logging.getLogger(__name__)

# The project's reviewed text data (FAQ corpus, intents, slots, demo citizens, consent terms): the one place
# its path is defined. Not to be confused with the data directory (MINWON_DATA_DIR) a node writes to.
PROJECT_DATA = Path(__file__).resolve().parent / "data"

SUPPORTED_LOCALES = ("ko-KR", "en-US")
DEFAULT_LOCALE = "ko-KR"


_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"0", "false", "no", "off"})


def parse_flag(value: str | None, default: bool) -> bool:
    """The one reading of a yes/no setting or query flag: an unknown or empty value keeps the default, so a
    typo in a safety switch (MINWON_ALEXA_VERIFY=flase) never turns the safety off."""
    word = (value or "").strip().lower()
    if word in _ON:
        return True
    if word in _OFF:
        return False
    return default


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    # Demo citizens with published PINs and tokens: off unless asked for (`make run` asks, on loopback).
    demo: bool = False
    secret_key: bytes = b""
    admin_api_key: str = ""
    session_ttl_s: int = 900
    max_text_chars: int = 1000
    max_json_bytes: int = 64 * 1024
    rate_limit_per_minute: int = 120
    # One platform (Alexa, Kakao) calls from few addresses for many users, so the per-IP budget is larger.
    ip_rate_limit_per_minute: int = 6000
    log_level: str = "INFO"
    # "json" (one object a line, for collectors) or "text" (one readable line, for a person at a terminal);
    # any other MINWON_LOG_FORMAT is read as "json", so a typo never breaks a log collector.
    log_format: str = "json"
    # The FAQ index and the speech models (slow to load, over 1 GB) can be switched off: for tools, and for a
    # node that only runs dialogs (MINWON_LOAD_MODELS=0; FAQ questions then get the not-understood answer).
    load_models: bool = True
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("MINWON_DATA_DIR") or "./var").resolve()
        database_url = env.get("MINWON_DATABASE_URL") or f"sqlite:///{data_dir / 'minwon.sqlite3'}"
        settings = cls(
            data_dir=data_dir,
            database_url=database_url,
            demo=parse_flag(env.get("MINWON_DEMO"), False),
            admin_api_key=env.get("MINWON_ADMIN_API_KEY", ""),
            session_ttl_s=int(env.get("MINWON_SESSION_TTL_S", "900")),
            rate_limit_per_minute=int(env.get("MINWON_RATE_LIMIT_PER_MINUTE", "120")),
            ip_rate_limit_per_minute=int(env.get("MINWON_IP_RATE_LIMIT_PER_MINUTE", "6000")),
            log_level=env.get("MINWON_LOG_LEVEL", "INFO"),
            log_format="text" if env.get("MINWON_LOG_FORMAT", "").strip().lower() == "text" else "json",
            load_models=parse_flag(env.get("MINWON_LOAD_MODELS"), True),
            extra={k: v for k, v in env.items() if k.startswith("MINWON_")},
        )
        secret = env.get("MINWON_SECRET_KEY", "")
        settings = replace(settings, secret_key=secret.encode() if secret else b"")
        return replace(settings, **overrides) if overrides else settings

    def get(self, name: str, default: str = "") -> str:
        """A MINWON_* setting that has no field of its own (per-platform tokens, model paths)."""
        return self.extra.get(name, default)

    def flag(self, name: str, default: bool) -> bool:
        """A MINWON_* yes/no setting that has no field of its own."""
        return parse_flag(self.extra.get(name), default)

    def ensure_data_dir(self) -> Settings:
        """Create the data directory (0700) and, when MINWON_SECRET_KEY is unset, a generated key file in it."""
        # The umask, not a chmod afterwards: there is no moment at which another user could open the files.
        previous = os.umask(0o077)
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        finally:
            os.umask(previous)
        settings = self
        if not self.secret_key:
            key_file = self.data_dir / "secret.key"
            if write_secret_file(key_file, secrets.token_hex(32)):
                log.warning("MINWON_SECRET_KEY is unset: generated a key in the data directory")
            settings = replace(settings, secret_key=key_file.read_text().strip().encode())
        if not self.admin_api_key:
            key_file = self.data_dir / "admin_api.key"
            write_secret_file(key_file, secrets.token_urlsafe(24))
            settings = replace(settings, admin_api_key=key_file.read_text().strip())
        return settings


def write_secret_file(path: Path, content: str) -> bool:
    """Creates `path` readable by this user only (0600 from the moment it exists), unless it exists already.
    Returns whether it was created; a concurrent creator wins and its content is kept."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    return True
