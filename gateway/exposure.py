"""Safe by default: a gateway reachable from other machines must ask for API keys.

With no API keys every ``/v1`` route is open, which is right on 127.0.0.1 (one user, one
machine) and wrong on 0.0.0.0 in a container or on a LAN. Such a start is refused unless
``RAGSERVE_ALLOW_UNAUTHENTICATED=true`` says it is meant (a trusted network, a proxy that
authenticates in front).
"""

from __future__ import annotations

import ipaddress
import socket

from gateway.auth import load_keys
from gateway.settings import Settings


class UnsafeBind(RuntimeError):
    """Serving a non-loopback address with no API keys, and no opt-in."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) reaches only this machine."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    if host.lower() == "localhost":
        return True
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False  # unresolvable: the bind will fail anyway; never call it safe
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_bind(host: str, *, keys: int, allow_unauthenticated: bool) -> None:
    """Raise ``UnsafeBind`` for a non-loopback ``host`` with no keys and no opt-in."""
    if keys or allow_unauthenticated or is_loopback(host):
        return
    raise UnsafeBind(
        f"refusing to serve {host or 'every address'} with no API keys: anyone who reaches "
        "it could use the engine and read and delete the documents. Set RAGSERVE_API_KEYS "
        "(or RAGSERVE_API_KEYS_FILE; `ragserve keys hash SECRET` prints a key's sha256), "
        "bind 127.0.0.1, or set RAGSERVE_ALLOW_UNAUTHENTICATED=true if an open gateway is "
        "what you want"
    )


def check_exposure(settings: Settings) -> None:
    """``check_bind`` for the address and keys in ``settings`` (raises ``UnsafeBind``)."""
    keys = load_keys(settings.api_keys, settings.api_keys_file)
    check_bind(settings.host, keys=len(keys), allow_unauthenticated=settings.allow_unauthenticated)
