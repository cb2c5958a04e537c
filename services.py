"""The one per-process state object: settings, storage, accounts, the dialog engine and the loaded models.

Storage and the dialog engine are ready when `Services` is built; slow components (retrieval index,
speech models) register a loader that runs once, in the background, at start-up. /health answers 503
until every loader has finished.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from observability import Metrics
from settings import Settings
from skills.accounts import Accounts
from skills.sessions import SessionStore
from storage import Database
from wallet_bridge.bridge import WalletBridge

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data"


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings.ensure_data_dir()
        self.db = Database(self.settings.database_url)
        self.db.upgrade()
        self.accounts = Accounts(self.db, self.settings.secret_key)
        self.sessions = SessionStore(self.db, self.settings.session_ttl_s)
        self.wallet = WalletBridge.for_service(self.settings, self.db, self.accounts)
        self.metrics = Metrics()
        self.components: dict[str, Any] = {}
        self._loaders: list[tuple[str, Callable[[Services], Any]]] = []
        self._ready = threading.Event()
        self.load_error: str | None = None
        if self.settings.demo:
            from skills.consent_ledger import consent_ledger
            from skills.demo import seed_demo

            if seed_demo(self.db, self.accounts, DATA / "demo.yaml", consent_ledger(self)):
                log.info("demo data seeded")
        from skills.registry import build_dialog_engine

        self.dialog = build_dialog_engine(self)
        from retrieval.service_loader import COMPONENT, load_faq_searcher

        self.add_loader(COMPONENT, load_faq_searcher)

    def add_loader(self, name: str, loader: Callable[[Services], Any]) -> None:
        """`loader(services)` builds a component once; its result is `services.components[name]`."""
        self._loaders.append((name, loader))

    def start(self, background: bool = True) -> None:
        self.wallet.outbox_worker.start()
        if not self.settings.load_models:
            self._ready.set()
            return
        if background:
            threading.Thread(target=self._load_all, name="component-loader", daemon=True).start()
        else:
            self._load_all()

    def _load_all(self) -> None:
        for name, loader in self._loaders:
            try:
                self.components[name] = loader(self)
                log.info("component loaded", extra={"component": name})
            except Exception as exc:  # noqa: BLE001 - a failed component keeps /health at 503 with its name
                self.load_error = f"{name}: {type(exc).__name__}"
                log.exception("component failed to load", extra={"component": name})
                return
        self._ready.set()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)
