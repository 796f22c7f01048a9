"""The running gateway as a target: the CLI's calls when a gateway holds the store.

It is an ingest target and a re-index target (``ingest.targets``, ``ingest.reindex``), so
``ragserve ingest`` runs the same ingest whether it writes here or into a store it opened:
only where a file's bytes are loaded differs (here: in the gateway, by the same code).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from ingest.targets import FileDone, FileOutcome, SourceFile


class GatewayError(SystemExit):
    """The gateway refused a call or did not answer; the message says which (exit 1)."""


class GatewayClient:
    def __init__(self, url: str, api_key: str | None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url
        self._http = httpx.Client(base_url=url, headers=headers, timeout=600)

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise GatewayError(f"the gateway at {self.url} did not answer: {exc}") from exc

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        if response.status_code >= 400:
            raise GatewayError(f"gateway error ({response.status_code}): {_message(response)}")
        return response.json()

    # -- search and collections ------------------------------------------------------------

    def search(self, body: dict[str, Any]) -> Any:
        return self._call("POST", "/v1/search", json=body)

    def collections(self) -> Any:
        return self._call("GET", "/v1/collections")

    def delete_collection(self, name: str) -> None:
        self._call("DELETE", f"/v1/collections/{name}")

    # -- ReindexTarget ---------------------------------------------------------------------

    def create_versioned(self, alias: str) -> str:
        return str(self._call("POST", f"/v1/collections/{alias}/versions")["id"])

    def switch_alias(self, alias: str, collection: str) -> None:
        self._call("POST", f"/v1/collections/{alias}/switch", json={"collection": collection})

    # -- IngestTarget ----------------------------------------------------------------------

    def submit(self, collection: str, file: SourceFile, done: FileDone) -> None:
        form = {
            "collection": collection,
            "doc_id": file.doc_id,
            "source": file.source,
            "tags": json.dumps(file.tags),
            "origin": "file",  # a later --prune may delete it, as after a local ingest
        }
        try:
            with file.path.open("rb") as handle:
                files = {"file": (file.path.name, handle)}
                response = self._send("POST", "/v1/documents", data=form, files=files)
        except OSError as exc:
            done(file, FileOutcome("failed", error=f"could not be read: {exc}"))
            return
        if response.status_code >= 500:  # the gateway or its store: nothing else would work
            raise GatewayError(f"gateway error ({response.status_code}): {_message(response)}")
        if response.status_code >= 400:  # this file: unreadable, too large, refused
            done(file, FileOutcome("failed", error=_message(response)))
            return
        result = response.json()
        chunks = result["chunks"] if result["status"] != "unchanged" else 0
        done(file, FileOutcome(result["status"], chunks, list(result.get("warnings", []))))

    def flush(self, collection: str) -> None:
        """Each upload is stored before ``submit`` returns."""

    def documents(self, collection: str) -> set[str]:
        response = self._send("GET", "/v1/documents", params={"collection": collection})
        if response.status_code == 404:
            return set()
        if response.status_code >= 400:
            raise GatewayError(f"gateway error ({response.status_code}): {_message(response)}")
        return {doc["id"] for doc in response.json()["data"]}

    def delete_file_document(self, collection: str, doc_id: str) -> int:
        params = {"collection": collection, "doc_id": doc_id, "origin": "file"}
        response = self._send("DELETE", "/v1/documents", params=params)
        if response.status_code == 404:  # an upload, or gone already
            return 0
        if response.status_code >= 400:
            raise GatewayError(f"gateway error ({response.status_code}): {_message(response)}")
        return int(response.json()["chunks"])

    def finish(self, collection: str) -> None:
        """The gateway's store indexes its own segments."""


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:300]
