"""How the CLI reaches the store: directly, or through the gateway that holds it.

The embedded engines admit one process per folder. While ``ragserve serve`` runs it holds
the store, and it leaves its address in ``<store>/gateway.json``; the CLI then sends its
work to that gateway's HTTP API instead of failing on a lock.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from gateway.settings import Settings

GATEWAY_FILE = "gateway.json"


def advertise(settings: Settings) -> Path | None:
    """Record where this gateway listens, for CLI calls on the same store (embedded only)."""
    if settings.store_backend == "server":
        return None
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    path = Path(settings.qdrant_path) / GATEWAY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": f"http://{host}:{settings.port}", "pid": os.getpid()}))
    tmp.replace(path)
    return path


def withdraw(path: Path | None) -> None:
    if path is not None:
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass


def gateway_url(settings: Settings) -> str:
    """The gateway holding the embedded store (its advertised address, else the settings')."""
    try:
        return str(json.loads((Path(settings.qdrant_path) / GATEWAY_FILE).read_text())["url"])
    except (OSError, ValueError, KeyError):
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
        return f"http://{host}:{settings.port}"


class GatewayClient:
    """The few gateway calls the CLI makes when the gateway holds the store."""

    def __init__(self, url: str, api_key: str | None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url
        self._http = httpx.Client(base_url=url, headers=headers, timeout=600)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise SystemExit(
                f"the store is held by a gateway at {self.url}, which did not answer: {exc}"
            ) from exc
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:300]
            raise SystemExit(f"gateway error ({response.status_code}): {message}")
        return response.json()

    def search(self, body: dict[str, Any]) -> Any:
        return self._call("POST", "/v1/search", json=body)

    def collections(self) -> Any:
        return self._call("GET", "/v1/collections")

    def delete_collection(self, name: str) -> Any:
        return self._call("DELETE", f"/v1/collections/{name}")

    def create_versioned(self, alias: str) -> str:
        return str(self._call("POST", f"/v1/collections/{alias}/versions")["id"])

    def switch_alias(self, alias: str, collection: str) -> None:
        self._call("POST", f"/v1/collections/{alias}/switch", json={"collection": collection})

    def upload(self, path: Path, form: dict[str, str]) -> Any:
        with path.open("rb") as handle:
            return self._call(
                "POST", "/v1/documents", data=form, files={"file": (path.name, handle)}
            )

    def documents(self, collection: str) -> Any:
        return self._call("GET", "/v1/documents", params={"collection": collection})

    def delete_document(self, collection: str, doc_id: str) -> Any:
        return self._call(
            "DELETE", "/v1/documents", params={"collection": collection, "doc_id": doc_id}
        )
