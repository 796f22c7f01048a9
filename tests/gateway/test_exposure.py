"""Safe by default: no API keys on an address other machines reach is refused at start."""

from __future__ import annotations

import pytest

from gateway.app import create_app
from gateway.auth import ApiKey, digest
from gateway.exposure import UnsafeBind, check_bind, is_loopback
from gateway.settings import Settings


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_addresses_serve_without_keys(host: str) -> None:
    assert is_loopback(host)
    check_bind(host, keys=0, allow_unauthenticated=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.0.2.10", "no-such-host.invalid"])
def test_other_addresses_need_a_key_or_the_explicit_opt_in(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(UnsafeBind, match="RAGSERVE_ALLOW_UNAUTHENTICATED"):
        check_bind(host, keys=0, allow_unauthenticated=False)
    check_bind(host, keys=1, allow_unauthenticated=False)
    check_bind(host, keys=0, allow_unauthenticated=True)


def test_the_app_refuses_to_be_built_open_on_every_address() -> None:
    with pytest.raises(UnsafeBind):
        create_app(Settings(host="0.0.0.0", engine_urls=["http://127.0.0.1:9"]))
    key = ApiKey(name="ops", sha256=digest("secret"))
    create_app(Settings(host="0.0.0.0", api_keys=[key], engine_urls=["http://127.0.0.1:9"]))
    create_app(Settings(host="0.0.0.0", allow_unauthenticated=True,
                        engine_urls=["http://127.0.0.1:9"]))  # fmt: skip
