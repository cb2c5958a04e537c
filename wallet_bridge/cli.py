"""Command-line tools of the wallet bridge, added to `python app.py`: key rotation, revocation, verification."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wallet_bridge.bridge import WalletBridge
from wallet_bridge.revocation import CredentialAlreadyRevoked, UnknownCredential


def _print(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _rotate(args: argparse.Namespace) -> int:
    keyring = args.bridge().keyring
    key = keyring.rotate()
    _print({"active_kid": key.kid, "published_keys": len(keyring.jwks()["keys"])})
    return 0


def _change_status(action: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        control = args.bridge().status_control
        try:
            state = getattr(control, action)(args.credential_id)
        except UnknownCredential:
            print(f"no credential {args.credential_id} was issued here", file=sys.stderr)
            return 1
        except CredentialAlreadyRevoked:
            print(f"credential {args.credential_id} is revoked; revocation is final", file=sys.stderr)
            return 1
        _print(state.to_json())
        return 0

    return run


def _list(args: argparse.Namespace) -> int:
    _print([state.to_json() for state in args.bridge().status_control.for_citizen(args.citizen_id)])
    return 0


def _verify(args: argparse.Namespace) -> int:
    try:
        token = sys.stdin.read() if args.source == "-" else Path(args.source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"cannot read {args.source}: {type(exc).__name__}", file=sys.stderr)
        return 2
    result = args.bridge().verify(token.strip())
    _print(result.to_json())
    return 0 if result.valid else 1


def add_commands(sub: Any, bridge: Callable[[], WalletBridge]) -> None:
    """Adds the wallet commands; `bridge()` opens the service's wallet bridge when a command runs."""
    # app.py hands in how to reach the service's bridge, so this package does not depend on the wiring.
    rotate = sub.add_parser("rotate-issuer-key", help="make a new credential signing key; old keys stay published")
    rotate.set_defaults(func=_rotate, bridge=bridge)
    for action, text in (("revoke", "revoke an issued credential (final)"),
                         ("suspend", "suspend an issued credential"),
                         ("resume", "lift the suspension of an issued credential")):
        command = sub.add_parser(action, help=text)
        command.add_argument("credential_id", help="the credential's id, urn:uuid:…")
        command.set_defaults(func=_change_status(action), bridge=bridge)
    listing = sub.add_parser("list-credentials", help="the credentials issued to a citizen, with their status")
    listing.add_argument("citizen_id")
    listing.set_defaults(func=_list, bridge=bridge)
    verify = sub.add_parser("verify-credential",
                            help="verify a vc+jwt of this issuer (file, or - for stdin); exit 0 valid, 1 invalid")
    verify.add_argument("source", metavar="FILE_OR_-")
    verify.set_defaults(func=_verify, bridge=bridge)
