"""The one place that wires everything: every store, the wallet bridge, the dialog engine, the model
loaders and the background workers of one process, built once.

Life cycle, in the manner of wyoming-vosk's state object:
- `Services(settings)` builds objects only; it touches neither the database nor the disk beyond the
  data directory (and its generated secret key, when MINWON_SECRET_KEY is unset).
- `initialize()` is the explicit set-up step (`app.py init`, and part of `serve`): schema upgrade, the
  first signing keys, demo seeding when demo mode is on.
- `start()` starts the background workers and loads the slow components (FAQ index, speech models) once;
  /health answers 503 until every loader has finished.
- `stop()` ends every thread and subprocess that `start()` began.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import yaml

from channels.kakao.callback import CallbackWorker
from channels.pushes import PushConfig, PushDelivery
from domain.attempts import RateLimit, RequestLimits
from domain.certificates import CertificateRecords, StateReport, report_state
from domain.citizen_tokens import CitizenTokens
from domain.citizens import Accounts
from domain.clock import korean_today, utc_now
from domain.consent_ledger import ConsentLedger
from domain.demo import seed_demo
from domain.devices import DeviceTokens
from domain.mydata import AgencyKeys, CitizenData
from domain.notifications import SCAN_LEASE, Notifications, certificate_state_changed
from domain.push_deliveries import PushAddresses, PushQueue
from domain.wallets import WalletRegistry
from migrations import MIGRATIONS, TABLE_MODULES
from observability import Metrics, set_log_ref_key
from outbound import OutboundPolicy
from settings import PROJECT_DATA, Settings
from skills.registry import DialogStores, build_dialog_engine
from skills.sessions import SessionStore
from storage import Database, MigrationContext, StorageUnavailable, describe_url, instance_id
from understanding.service import build_router
from wallet_bridge.bridge import WalletBridge, wallet_config
from wallet_bridge.certificate_documents import CertificateDocuments
from wallet_bridge.notices import SOURCES as WALLET_NOTICE_SOURCES
from wallet_bridge.outbox import OutboxWorker

if TYPE_CHECKING:
    from retrieval.search import FaqSearcher

log = logging.getLogger(__name__)

FAQ = "faq"
# The router's lexical model (the dense one is attached by the FAQ loader, once the encoder is there).
ROUTER = "router"
ASR = "asr"
TTS = "tts"
# The database, named on /health while it cannot be reached at start; retried this often until it can.
STORAGE = "storage"
STORAGE_RETRY_S = 5.0
# Expired dialog sessions, old stored replies and full rate-limit budgets are deleted this often (also:
# `app.py purge`). A budget's row is spent after a minute (ten for link codes), so this bounds the table at the
# keys that were busy in the last ten minutes or so.
PURGE_INTERVAL_S = 600.0
DEVICE_REGISTRATIONS_PER_MINUTE = 10
# The notification scan runs this often (MINWON_NOTIFY_SCAN_S) on the one node holding its lease; a lease lives
# two intervals, so a node that died hands the job on within two intervals.
NOTIFY_SCAN_INTERVAL_S = 300.0


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings.ensure_data_dir()
        # Log references (digests of session ids and user keys) agree across the processes of one node.
        set_log_ref_key(self.settings.secret_key)
        self.clock = utc_now
        self.db = Database(self.settings.database_url)
        key = self.settings.secret_key
        self.accounts = Accounts(self.db, key)
        self.devices = DeviceTokens(self.db, key)
        # This process's one name among the nodes sharing the database: the owner of its request claims, outbox
        # claims and leases, whichever part of the service takes them.
        self.node_id = instance_id()
        self.sessions = SessionStore(self.db, self.settings.session_ttl_s, self.accounts.cipher, node_id=self.node_id)
        self.certificates = CertificateRecords(self.db)
        self.consents = ConsentLedger(self.db, key)
        self.citizen_tokens = CitizenTokens(self.db, key)
        self.agency_keys = AgencyKeys(self.db, key, self.settings.get("MINWON_AGENCY_KEYS"))
        self.citizen_data = CitizenData(self.db, self.accounts.cipher)
        self.wallets = WalletRegistry(self.db, key)
        self.notifications = Notifications(self.db, self.clock)
        self.notify_scan_interval_s = float(self.settings.get("MINWON_NOTIFY_SCAN_S", str(NOTIFY_SCAN_INTERVAL_S)))
        # Every request to a URL from outside (wallet push, Kakao callback, Alexa certificate) follows this policy.
        self.outbound = OutboundPolicy.from_settings(self.settings)
        self.wallet = WalletBridge(
            self.db, wallet_config(self.settings),
            CertificateDocuments(self.certificates, self.accounts, self.clock), self.clock,
            outbound=self.outbound, wallets=self.wallets, node_id=self.node_id,
        )
        # Notification pushes (Kakao, Alexa, the wallet): the same claimed-outbox delivery as the wallet's offers.
        self.push_addresses = PushAddresses(self.db, self.accounts.cipher, self.clock)
        self.pushes = PushDelivery(PushQueue(self.db, self.clock), self.notifications, self.accounts, self.wallets,
                                   PushConfig.from_settings(self.settings), self.clock, outbound=self.outbound,
                                   node_id=self.node_id, addresses=self.push_addresses)
        self.push_worker = OutboxWorker(self.pushes, name="notification-pushes")
        # A speaker linked by a wallet presentation starts afresh: nothing said or proven before counts.
        self.wallet.pairings.on_linked = self.sessions.end_all_for
        self.metrics = Metrics()
        # Counted in the database, so a budget is the same whichever node or worker process a request reaches.
        self.rate_limits = RequestLimits(self.db, {
            "user": RateLimit("user", self.settings.rate_limit_per_minute, 60, key),
            "device": RateLimit("device", self.settings.rate_limit_per_minute, 60, key),
            "ip": RateLimit("ip", self.settings.ip_rate_limit_per_minute, 60, key),
            # New devices per address: a registration is cheap to ask for and each one is a stored row.
            "register": RateLimit("register", DEVICE_REGISTRATIONS_PER_MINUTE, 60, key),
        })
        self.kakao_callbacks = CallbackWorker(
            workers=int(self.settings.get("MINWON_KAKAO_WORKERS", "4")), outbound=self.outbound
        )
        # Routes from the first turn (its lexical model is trained or loaded on first use, or by the loader below).
        self.router = build_router(self.settings)
        self.dialog = build_dialog_engine(
            DialogStores(self.db, self.accounts, self.sessions, self.certificates, self.consents, self.wallet,
                         self.clock, self.notifications),
            router=self.router, faq_searcher=self.faq_searcher, observe_turn=self.metrics.observe_turn,
        )
        self.components: dict[str, Any] = {}
        self._loaders: list[tuple[str, Callable[[Services], Any]]] = []
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.load_error: str | None = None
        self.initialized = False
        self.add_loader(ROUTER, _load_router)
        self.add_loader(FAQ, _load_faq)
        self.add_loader(ASR, _load_asr)
        self.add_loader(TTS, _load_tts)

    def faq_searcher(self) -> FaqSearcher | None:
        return self.components.get(FAQ)

    # -- set-up ---------------------------------------------------------------------------------------

    def initialize(self) -> None:
        """Schema upgrade, first signing keys (made by the first node of a cluster, read by the others) and (in
        demo mode) demo data; safe on every start."""
        self.db.upgrade(TABLE_MODULES, MIGRATIONS, MigrationContext(self.settings.secret_key, self.settings.data_dir))
        self.wallet.keyring.keys()
        self.consents.keyring.keys()
        if self.settings.demo and seed_demo(
            accounts=self.accounts, certificates=self.certificates, consents=self.consents, wallets=self.wallets,
            citizen_tokens=self.citizen_tokens, citizen_data=self.citizen_data, agency_keys=self.agency_keys,
            devices=self.devices,
            demo_file=PROJECT_DATA / "demo.yaml",
        ):
            log.info("demo data seeded")
            self._offer_demo_mobile_ids()
            # The demo's income certificate ends in ten days: its reminder is due from the first minute.
            self.notify_scan()
        self.initialized = True

    def _offer_demo_mobile_ids(self) -> None:
        """Puts a mobile ID offer into each demo wallet, with the tx_code published in data/demo.yaml."""
        spec = yaml.safe_load((PROJECT_DATA / "demo.yaml").read_text(encoding="utf-8"))
        for citizen in spec["citizens"]:
            wallet = citizen.get("wallet") or {}
            if wallet.get("mobile_id_tx_code"):
                self.wallet.offer_mobile_id(citizen["id"], f"demo:mobile-id:{wallet['id']}",
                                            tx_code=str(wallet["mobile_id_tx_code"]))

    def initialize_or_wait(self) -> bool:
        """`initialize()`, but a database that cannot be reached is not fatal for the service: /health names the
        storage (503) and `start()` keeps retrying. Returns whether the storage is ready."""
        try:
            self.initialize()
        except StorageUnavailable as exc:
            self.load_error = f"{STORAGE}: unavailable"
            log.error("storage unavailable at start; /health answers 503 until it can be reached",
                      extra={"database": describe_url(self.settings.database_url), "detail": exc.detail})
            return False
        return True

    def add_loader(self, name: str, loader: Callable[[Services], Any]) -> None:
        """`loader(services)` builds a component once; its result is `services.components[name]`."""
        self._loaders.append((name, loader))

    # -- running --------------------------------------------------------------------------------------

    def start(self, background: bool = True) -> None:
        if not self.initialized:
            self._spawn("storage-wait", self._initialize_then_start)
            return
        self._start_initialized(background)

    def _initialize_then_start(self) -> None:
        while not self._stopping.wait(STORAGE_RETRY_S):
            try:
                self.initialize()
            except StorageUnavailable as exc:
                log.warning("storage still unavailable", extra={"detail": exc.detail})
                continue
            self.load_error = None
            log.info("storage available")
            self._start_initialized(background=False)
            return

    def _start_initialized(self, background: bool) -> None:
        self.wallet.outbox_worker.start()
        self.push_worker.start()
        self._spawn("session-purge", self._purge_periodically)
        self._spawn("notify-scan", self._scan_periodically)
        if not self.settings.load_models:
            self._ready.set()
            return
        if background:
            self._spawn("component-loader", self._load_all)
        else:
            self._load_all()

    def stop(self) -> None:
        """Ends every worker thread and subprocess this object started; safe to call twice."""
        self._stopping.set()
        self.wallet.outbox_worker.stop()
        self.push_worker.stop()
        for thread in self._threads:
            if thread.name == "notify-scan":
                thread.join(timeout=30)
        with contextlib.suppress(StorageUnavailable):
            # Handed on at once rather than when the lease lapses.
            self.notifications.release_lease(SCAN_LEASE, self.node_id)
        self.kakao_callbacks.shutdown()
        for thread in self._threads:
            thread.join(timeout=30)
        tts = self.components.get(TTS)
        if tts is not None:
            tts.close()
        self.db.dispose()

    def purge(self) -> int:
        """Deletes expired dialog sessions, old stored replies, the rows of full rate-limit budgets and wallet
        pairings a day past their end; returns the rows removed."""
        return self.sessions.purge_expired() + self.rate_limits.purge() + self.wallet.pairings.purge()

    def notify_scan(self) -> int:
        """One pass of the notification scan (also `app.py notify-scan`); returns the notifications it raised. Safe
        beside the periodic job: a notification that is already there is not raised again."""
        return self.notifications.scan(WALLET_NOTICE_SOURCES)

    def report_certificate_state(self, agency_id: str, certificate_id: str, request_id: str, state: str,
                                 valid_until: date | None) -> StateReport:
        """An issuing agency's report on its application (the HTTP endpoint and `app.py certificate-state`): the
        certificate and the citizen's notification change in one transaction; a retry changes nothing."""
        return report_state(self.db, agency_id, certificate_id, request_id, state, valid_until,
                            korean_today(self.clock), self.clock(), certificate_state_changed)

    def scan_if_leader(self) -> int | None:
        """A scan pass when this node holds (or takes) the scan lease; None when another node holds it."""
        hold = timedelta(seconds=2 * self.notify_scan_interval_s)
        if not self.notifications.claim_lease(SCAN_LEASE, self.node_id, hold):
            return None
        return self.notify_scan()

    def _scan_periodically(self) -> None:
        # The first pass at once: what fell due while no node ran is raised at start.
        wait = 0.0
        while not self._stopping.wait(wait):
            wait = self.notify_scan_interval_s
            try:
                raised = self.scan_if_leader()
                if raised:
                    log.info("notifications raised", extra={"count": raised})
            except StorageUnavailable:
                log.warning("notification scan skipped: storage busy")
            except Exception:  # noqa: BLE001 - one failed pass must not end the job; the next pass finds the same
                log.exception("notification scan failed")

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _purge_periodically(self) -> None:
        while not self._stopping.wait(PURGE_INTERVAL_S):
            try:
                removed = self.purge()
                if removed:
                    log.info("expired sessions and rate-limit rows purged", extra={"rows": removed})
            except StorageUnavailable:
                log.warning("session purge skipped: storage busy")

    def _load_all(self) -> None:
        for name, loader in self._loaders:
            if self._stopping.is_set():
                return
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


# -- the loaders of the slow components (imported lazily: the CLI tools that never load them stay fast) --

def _load_router(services: Services) -> Any:
    return services.router.lexical_model()


def _load_faq(services: Services) -> Any:
    """The FAQ searcher, and the router's dense model on the searcher's normaliser and encoder."""
    from retrieval.service_loader import load_faq_searcher
    from understanding.service import attach_dense_model

    searcher = load_faq_searcher(services.settings)
    attach_dense_model(services.router, services.settings, searcher)
    return searcher


def _load_asr(services: Services) -> Any:
    from voice.asr import AsrConfig, SpeechRecognizer

    return SpeechRecognizer.load(AsrConfig.from_settings(services.settings))


def _load_tts(services: Services) -> Any:
    from voice.tts import SpeechSynthesizer, TtsConfig

    synthesizer = SpeechSynthesizer(TtsConfig.from_settings(services.settings))
    synthesizer.start()
    return synthesizer
