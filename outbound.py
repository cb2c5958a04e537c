"""Outbound HTTP: the one way this service calls a URL that somebody else gave it.

Three places do: a wallet's push URL (``wallet_bridge/outbox.py``, ``channels/pushes.py``), a Kakao callback URL
(``channels/kakao/callback.py``) and an Alexa certificate URL (``channels/alexa/verification.py``); the notification
pushes' platform endpoints (Kakao Event API, Alexa's token and Proactive Events URLs, ``channels/pushes.py``) are
configuration, and go through the same checks. Each
URL comes from outside, so each call could be aimed at the service's own network (SSRF). The rules, once:

- **One parser.** The URL is parsed with urllib3's ``parse_url`` (what requests uses) and the request is
  made to a URL rebuilt from those parts, so a backslash, ``@``, control character, percent-encoding or
  Unicode dot cannot make the check see one host and the client another. Non-ASCII, whitespace, control
  characters and backslashes anywhere in the URL, user info, a percent-encoded host and fragments are
  refused outright.
- **https only**, to a host that is an ASCII DNS name, a dotted-decimal IPv4 address or a bracketed IPv6
  address. Other IPv4 spellings (``0x7f000001``, ``2130706433``, ``0177.0.0.1``, ``127.1``) are refused:
  resolvers and parsers disagree about them. Optionally the host must be one of a list (or a subdomain).
- **Public addresses only**, checked when the request is sent: the name is resolved then and every
  address it has must be public — not loopback, private, shared (CGNAT), link-local, multicast, reserved,
  unspecified or documentation; an IPv4 address inside IPv6 (mapped, NAT64, 6to4) is checked too. An
  address literal is also checked when the URL is registered; a name is not, since DNS can change.
- **Pinned.** The connection goes to the address that was checked: a transport adapter hands urllib3
  that address as the pool's host (so urllib3 never resolves the name itself and a second, rebound DNS
  answer never comes into play) and the name as the TLS ``server_hostname`` (SNI, and the certificate is
  verified against the name) and as the ``Host`` header.
- **No redirects**, no environment proxy or ``.netrc`` (a proxy would resolve the name itself), connect
  and read timeouts, and response bodies read only up to a limit (a POST's body is not read at all).

``MINWON_OUTBOUND_ALLOW_LOOPBACK_HTTP=1`` is for tests only (off by default; a warning at every start when
on): it lets plain http through to a loopback IP literal and lets loopback addresses pass, so that tests can
deliver to a receiver on 127.0.0.1. Private, link-local and every other non-public address stay refused.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from settings import Settings

log = logging.getLogger(__name__)

ALLOW_LOOPBACK_HTTP = "MINWON_OUTBOUND_ALLOW_LOOPBACK_HTTP"
MAX_URL_CHARS = 2048
DEFAULT_PORTS = {"https": 443, "http": 80}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Anything but printable ASCII, and the backslash (browsers read it as "/", urllib3 as part of the path).
_UNSAFE_CHARS = re.compile(r"[^\x21-\x7e]|\\")
_AUTHORITY = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
# WHATWG URL: a host whose last label is a number is an IPv4 address, in whatever base that number is.
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class OutboundRefused(requests.RequestException):
    """A URL or an address this service will not call; raised before any connection is made.

    A ``RequestException``, so that what a caller already does with a failed request (the outbox's retry,
    the Kakao worker's log line, the Alexa fetcher's ``cert_unavailable``) covers a refusal as well.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ResponseTooLarge(requests.RequestException):
    """The response body is larger than the caller's limit."""


@dataclass(frozen=True)
class ParsedTarget:
    """A checked URL, taken apart. ``url`` is what is requested: rebuilt from these parts, not the input."""

    scheme: str  # "https" ("http" only to a loopback literal under the test switch)
    host: str  # lower-case ASCII name without a trailing dot, or an IP address without brackets
    port: int
    path: str  # path and query, starting with "/"
    address: IPAddress | None = None  # when the host is an address literal

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"


def is_public_address(address: IPAddress) -> bool:
    """True for an address on the public internet; False for every special-purpose range."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and address in _NAT64:
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        # Python 3.11 calls ::ffff:127.0.0.1 neither loopback nor private: the IPv4 inside is what counts.
        if inner is not None and not is_public_address(inner):
            return False
        if address.is_site_local:
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _is_loopback(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _host_allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    for allowed in allowed_hosts:
        allowed = allowed.strip().lower().strip(".")
        if allowed and (host == allowed or host.endswith("." + allowed)):
            return True
    return False


def check_public_https_url(
    url: object, allowed_hosts: Iterable[str] | None = None, *, allow_loopback_http: bool = False
) -> ParsedTarget:
    """Parse and check a URL this service is asked to call; raises OutboundRefused with the reason.

    ``allowed_hosts`` (when given) lists the hosts that may be called, each with its subdomains; an empty
    list allows none. Names are not resolved here: that happens, and is checked, when the request is sent.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        raise OutboundRefused("not a URL")
    if _UNSAFE_CHARS.search(url):
        raise OutboundRefused("the URL holds a character that is not printable ASCII, or a backslash")
    authority = _AUTHORITY.match(url)
    if authority is None:
        raise OutboundRefused("not an absolute URL")
    if "@" in authority.group(1):
        raise OutboundRefused("the URL carries user info")
    if "%" in authority.group(1):
        # A host is never percent-encoded; decoding it is one more place where two parsers could differ.
        raise OutboundRefused("the host is percent-encoded")
    try:
        parts = parse_url(url)
    except LocationParseError as exc:
        raise OutboundRefused("the URL does not parse") from exc
    if parts.fragment is not None:
        raise OutboundRefused("the URL carries a fragment")
    host = (parts.host or "").lower()
    if not host:
        raise OutboundRefused("the URL has no host")
    address: IPAddress | None = None
    if host.startswith("["):
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError as exc:
            raise OutboundRefused("the IPv6 address does not parse") from exc
        host = str(address)
    else:
        host = host[:-1] if host.endswith(".") else host
        if _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
            try:
                address = ipaddress.IPv4Address(host)  # dotted decimal only: no hex, octal or short forms
            except ValueError as exc:
                raise OutboundRefused("an IPv4 address must be four decimal numbers") from exc
        elif len(host) > 253 or not _HOSTNAME.match(host):
            raise OutboundRefused("the host is not a valid DNS name")
    loopback_test_target = allow_loopback_http and address is not None and _is_loopback(address)
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback_test_target):
        raise OutboundRefused("the URL must use https")
    if address is not None and not (is_public_address(address) or loopback_test_target):
        raise OutboundRefused("the address is not a public address")
    if allowed_hosts is not None and not _host_allowed(host, allowed_hosts):
        raise OutboundRefused("the host is not an allowed host")
    port = parts.port if parts.port is not None else DEFAULT_PORTS[parts.scheme]
    if not 0 < port < 65536:
        raise OutboundRefused("the port is out of range")
    path = parts.path or "/"
    if parts.query is not None:
        path += "?" + parts.query
    return ParsedTarget(parts.scheme, host, port, path, address)


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` has now (the system resolver, TCP)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        # A lookup failure is a failed request like a refused connection: the caller may retry later.
        raise requests.ConnectionError(f"{host} does not resolve") from exc
    return [str(info[4][0]) for info in infos]


class _PinnedAdapter(HTTPAdapter):
    """Connects to one checked address, whatever the URL's name resolves to by now.

    urllib3 gets the address as the connection pool's host, so it never looks the name up; the name goes
    to TLS as ``server_hostname`` (SNI, and the certificate is verified against the name, not the address).
    The caller sets the ``Host`` header to the name.
    """

    def __init__(self, hostname: str, address: str) -> None:
        self._hostname = hostname
        self._address = address
        super().__init__(max_retries=0)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params.get("host") != self._hostname:
            # Only the checked URL is ever sent through this adapter; anything else is a bug, not a request.
            raise OutboundRefused("the request is not for the checked host")
        host_params = {**host_params, "host": self._address}
        if host_params.get("scheme") == "https":
            pool_kwargs = {**pool_kwargs, "server_hostname": self._hostname}
        return host_params, pool_kwargs


@dataclass(frozen=True)
class OutboundPolicy:
    """Checks and sends outbound requests (see the module docstring). One per process, from the settings."""

    allow_loopback_http: bool = False  # tests only: MINWON_OUTBOUND_ALLOW_LOOPBACK_HTTP
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 10.0
    ca_bundle: str | None = None  # a PEM bundle to trust instead of the default (tests use their own CA)
    resolver: Callable[[str, int], list[str]] = resolve_host

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        allow = settings.flag(ALLOW_LOOPBACK_HTTP, False)
        if allow:
            log.warning(
                "outbound requests may go to loopback over plain http (%s=1): for tests only, never in production",
                ALLOW_LOOPBACK_HTTP,
            )
        return cls(allow_loopback_http=allow)

    def check_url(self, url: object, allowed_hosts: Iterable[str] | None = None) -> ParsedTarget:
        """``check_public_https_url`` under this policy (no network access)."""
        return check_public_https_url(url, allowed_hosts, allow_loopback_http=self.allow_loopback_http)

    def pinned_address(self, target: ParsedTarget) -> str:
        """The address to connect to: the target's addresses now, every one of them allowed, the first."""
        if target.address is not None:
            addresses = [target.address]
        else:
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in self.resolver(target.host, target.port)]
        if not addresses:
            raise requests.ConnectionError(f"{target.host} has no address")
        for address in addresses:
            if not (is_public_address(address) or (self.allow_loopback_http and _is_loopback(address))):
                # One private answer is enough to refuse: an attacker's name may mix public and private ones.
                log.warning("outbound request refused: the host has a non-public address",
                            extra={"host": target.host})
                raise OutboundRefused("the host resolves to a non-public address")
        return str(addresses[0])

    def post_json(
        self,
        url: str | ParsedTarget,
        payload: Any,
        *,
        headers: Mapping[str, str] | None = None,
        allowed_hosts: Iterable[str] | None = None,
        timeout_s: float | None = None,
    ) -> int:
        """POSTs ``payload`` as JSON; returns the status code (a redirect is returned, not followed)."""
        with self._send("POST", url, allowed_hosts, timeout_s, headers=headers, json=payload) as response:
            return response.status_code

    def post_form_for_json(
        self,
        url: str | ParsedTarget,
        fields: Mapping[str, str],
        *,
        max_bytes: int,
        allowed_hosts: Iterable[str] | None = None,
        timeout_s: float | None = None,
    ) -> tuple[int, Any]:
        """POSTs ``fields`` form-encoded (an OAuth token request); returns the status and the JSON body (None when
        the body is not JSON), the body read up to ``max_bytes``."""
        with self._send("POST", url, allowed_hosts, timeout_s, data=dict(fields)) as response:
            body = b""
            for chunk in response.iter_content(8192):
                body += chunk
                if len(body) > max_bytes:
                    raise ResponseTooLarge(f"the response is larger than {max_bytes} bytes")
            try:
                return response.status_code, json.loads(body)
            except ValueError:
                return response.status_code, None

    def get(
        self,
        url: str | ParsedTarget,
        *,
        max_bytes: int,
        allowed_hosts: Iterable[str] | None = None,
        timeout_s: float | None = None,
    ) -> bytes:
        """The body behind ``url``; anything but a 2xx (a redirect too) raises ``requests.HTTPError``."""
        with self._send("GET", url, allowed_hosts, timeout_s) as response:
            if not 200 <= response.status_code < 300:
                raise requests.HTTPError(f"HTTP {response.status_code}", response=response)
            body = b""
            for chunk in response.iter_content(8192):
                body += chunk
                if len(body) > max_bytes:
                    raise ResponseTooLarge(f"the response is larger than {max_bytes} bytes")
            return body

    @contextmanager
    def _send(
        self,
        method: str,
        url: str | ParsedTarget,
        allowed_hosts: Iterable[str] | None,
        timeout_s: float | None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Iterator[requests.Response]:
        # A target checked earlier (with its host list) is checked again under this policy before it is sent.
        target = self.check_url(url.url if isinstance(url, ParsedTarget) else url, allowed_hosts)
        address = self.pinned_address(target)
        read_s = timeout_s if timeout_s is not None else self.read_timeout_s
        # One session per request: its only adapter is pinned to this target's checked address.
        with requests.Session() as session:
            session.trust_env = False  # no proxy from the environment (it would resolve the name) and no .netrc
            adapter = _PinnedAdapter(target.host, address)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            with session.request(
                method,
                target.url,
                headers={**(headers or {}), "Host": target.authority},
                timeout=(min(self.connect_timeout_s, read_s), read_s),
                allow_redirects=False,
                stream=True,  # the body is read by the caller up to its limit, or not at all
                verify=self.ca_bundle or True,
                **kwargs,
            ) as response:
                yield response
