"""The terms a My Data consent is given under: controller, purposes, legal basis, notice, validity.

Read once from data/consent_terms.yaml; recipients and data items are named from the slot
vocabularies (data/slots/recipient.yaml, data_item.yaml) so that the speaker, the receipts and the
API use the same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path

import yaml

from settings import PROJECT_DATA

DEFAULT_PURPOSE = "public-service"


@dataclass(frozen=True)
class Purpose:
    id: str
    names: dict[str, str]
    legal_basis: str
    notice_url: str
    validity: timedelta


@dataclass(frozen=True)
class ConsentTerms:
    controller: dict[str, str]
    jurisdiction: str
    purposes: dict[str, Purpose]
    withdrawal_method: dict[str, str]
    recipients: dict[str, dict[str, str]]  # id → {"ko": …, "en": …}
    data_items: dict[str, dict[str, str]]

    def purpose(self, purpose_id: str) -> Purpose:
        return self.purposes[purpose_id]

    @staticmethod
    def name(names: dict[str, str], locale: str) -> str:
        return names.get(locale[:2], names.get("ko", ""))

    def recipient_name(self, recipient: str, locale: str) -> str:
        return self.name(self.recipients.get(recipient, {"ko": recipient}), locale)

    def data_item_name(self, data_item: str, locale: str) -> str:
        return self.name(self.data_items.get(data_item, {"ko": data_item}), locale)


def _names(path: Path) -> dict[str, dict[str, str]]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {key: {k: v for k, v in spec.items() if k in ("ko", "en")} for key, spec in raw.items()}


@cache
def load_terms(data_dir: Path = PROJECT_DATA) -> ConsentTerms:
    raw = yaml.safe_load((data_dir / "consent_terms.yaml").read_text(encoding="utf-8"))
    purposes = {
        pid: Purpose(id=pid, names={k: spec[k] for k in ("ko", "en")}, legal_basis=spec["legal_basis"],
                     notice_url=spec["notice_url"], validity=timedelta(days=int(spec["validity_days"])))
        for pid, spec in raw["purposes"].items()
    }
    return ConsentTerms(
        controller=dict(raw["controller"]), jurisdiction=raw["jurisdiction"], purposes=purposes,
        withdrawal_method=dict(raw["withdrawal_method"]), recipients=_names(data_dir / "slots" / "recipient.yaml"),
        data_items=_names(data_dir / "slots" / "data_item.yaml"),
    )
