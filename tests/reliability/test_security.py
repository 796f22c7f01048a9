"""Security battery: tenants, keys, uploads, logs and error bodies, broken on purpose.

Everything runs against real gateway processes (real store, real engine for chats). The
tenant tests attack every read and write path a key has: chat RAG, /v1/search, the documents
and collections routes, with filters, collection names and document ids chosen to escape.
"""

from __future__ import annotations

import hmac
import io
import json
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import gateway.auth
from gateway.auth import ApiKey, KeyRing, digest
from tests.conftest import MODEL_NAME
from tests.support.processes import free_port, gateway_process

pytestmark = pytest.mark.engine

ADMIN, TENANT_A, TENANT_B = "sk-admin-0c1d2e", "sk-tenant-a-4f5a6b", "sk-tenant-b-7c8d9e"
TENANT_C = "sk-tenant-c-1a2b3c"  # a filter and no collection list: every collection, own chunks
ENGINE_SECRET = "sk-engine-upstream-31a7"
KEYS = [
    {"name": "admin", "sha256": digest(ADMIN)},
    {"name": "tenant-a", "sha256": digest(TENANT_A), "collections": ["shared", "docs"],
     "filter": {"tags": ["tenant=a"]}},
    {"name": "tenant-b", "sha256": digest(TENANT_B), "collections": ["shared"],
     "filter": {"tags": ["tenant=b"]}},
    {"name": "tenant-c", "sha256": digest(TENANT_C), "filter": {"tags": ["tenant=c"]}},
]  # fmt: skip
B_SECRET, A_FACT = "ORCHID-5513", "LUPIN-2208"
MAX_UPLOAD = 2 * 1024 * 1024
START_TIMEOUT = 300  # a gateway start on a busy 2-core machine
WAIT_S = 300  # any one request: a chat waits behind other work on the shared engine


@pytest.fixture(scope="module")
def gateway_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("security-log") / "gateway.log"


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("security-store")


@pytest.fixture(scope="module")
def secured(engine_url: str, gateway_log: Path, store_path: Path) -> Iterator[str]:
    env = {
        "RAGSERVE_ENGINE_URLS": engine_url,
        "RAGSERVE_QDRANT_PATH": str(store_path),
        # A model alias is another way to name a collection.
        "RAGSERVE_MODEL_ALIASES": json.dumps({"vault": {"collection": "private"}}),
        "RAGSERVE_ENGINE_API_KEY": ENGINE_SECRET,
        "RAGSERVE_API_KEYS": json.dumps(KEYS),
        "RAGSERVE_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "RAGSERVE_LOG_LEVEL": "debug",  # the most the gateway ever logs
    }
    with gateway_process(env, gateway_log, timeout=START_TIMEOUT) as url:
        _seed(url)
        yield url


def auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def upload(url: str, key: str, name: str, text: bytes | str, **form: str) -> httpx.Response:
    data = text.encode() if isinstance(text, str) else text
    return httpx.post(f"{url}/v1/documents", headers=auth(key), timeout=WAIT_S,
                      files={"file": (name, data)}, data=form)  # fmt: skip


def search(url: str, key: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/search", headers=auth(key), json=body, timeout=WAIT_S)


def chat(url: str, key: str | None, **body: Any) -> httpx.Response:
    question = [{"role": "user", "content": "What is the vault code?"}]
    payload = {"model": MODEL_NAME, "max_tokens": 1, "temperature": 0, "messages": question,
               **body}  # fmt: skip
    return httpx.post(f"{url}/v1/chat/completions", json=payload, headers=auth(key), timeout=WAIT_S)


def documents(url: str, key: str, collection: str) -> httpx.Response:
    return httpx.get(f"{url}/v1/documents", params={"collection": collection},
                     headers=auth(key), timeout=WAIT_S)  # fmt: skip


def _seed(url: str) -> None:
    for key, name, text, collection in [
        (TENANT_B, "b-vault.txt", f"Tenant B's vault code is {B_SECRET}.", "shared"),
        (TENANT_A, "a-vault.txt", f"Tenant A's vault code is {A_FACT}.", "shared"),
        (ADMIN, "private.txt", "The private vault code is MAGNOLIA-9090.", "private"),
    ]:
        response = upload(url, key, name, text, collection=collection)
        assert response.status_code == 200, response.text


def assert_error(response: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == type_
    return dict(error)


# Filters a tenant might send to widen its view: another tenant's tag, Qdrant's boolean
# clauses, nested/dotted keys, case variants, lists mixing tenants, ranges, doc ids.
ESCAPE_FILTERS: list[dict[str, Any] | None] = [
    None,
    {"tags": ["tenant=b"]},
    {"tags": "tenant=b"},
    {"tags": ["tenant=a", "tenant=b"]},
    {"Tags": ["tenant=b"]},
    {"meta.tenant": "b"},
    {"meta": {"tenant": "b"}},
    {"doc_id": "b-vault.txt"},
    {"should": [{"key": "tags", "match": {"any": ["tenant=b"]}}]},
    {"must_not": [{"key": "tags", "match": {"any": ["tenant=a"]}}]},
    {"should": {"tags": ["tenant=b"]}},
    {"tags": {"gte": 0}},
    {"chunk_index": {"gte": 0}},
]


def test_a_tenant_never_retrieves_another_tenants_chunks_whatever_filter_it_sends(
    secured: str,
) -> None:
    outcomes: dict[str, int] = {}
    for flt in ESCAPE_FILTERS:
        body: dict[str, Any] = {"query": f"{B_SECRET} vault code", "collection": "shared",
                                "top_k": 50, "mode": "sparse"}  # fmt: skip
        if flt is not None:
            body["filter"] = flt
        found = search(secured, TENANT_A, **body)
        outcomes[json.dumps(flt)] = found.status_code
        assert found.status_code in (200, 400), found.text
        if found.status_code == 200:
            assert all(B_SECRET not in r["text"] for r in found.json()["results"]), flt
        else:
            assert_error(found, 400, "invalid_request_error")
        rag = {"collection": "shared", "top_k": 50, "mode": "hybrid", "filter": flt}
        answered = chat(secured, TENANT_A, rag=rag)
        assert answered.status_code == found.status_code, answered.text
        if answered.status_code == 200:
            assert all(B_SECRET not in s["text"] for s in answered.json()["sources"]), flt
    # The controls: the tenant does find its own chunk, and an unfiltered key finds B's.
    own = search(secured, TENANT_A, query=f"{A_FACT} vault code", collection="shared")
    assert any(A_FACT in r["text"] for r in own.json()["results"])
    admin = search(secured, ADMIN, query=f"{B_SECRET} vault code", collection="shared")
    assert any(B_SECRET in r["text"] for r in admin.json()["results"])
    assert 200 in outcomes.values()


@pytest.mark.parametrize(
    "collection", ["private", "PRIVATE", "Shared", "SHARED", "shared ", "nowhere", "docs_x"]
)
def test_a_foreign_or_unknown_collection_is_403_and_says_nothing_of_its_existence(
    secured: str, collection: str
) -> None:
    attempts = [
        search(secured, TENANT_A, query="vault code", collection=collection),
        chat(secured, TENANT_A, rag={"collection": collection}),
        documents(secured, TENANT_A, collection),
        httpx.delete(f"{secured}/v1/documents", headers=auth(TENANT_A), timeout=WAIT_S,
                     params={"collection": collection, "doc_id": "private.txt"}),
        upload(secured, TENANT_A, "x.txt", "text", collection=collection),
    ]  # fmt: skip
    for response in attempts:
        error = assert_error(response, 403, "permission_error")
        assert error["code"] == "collection_forbidden"
        # "private" exists and "nowhere" does not: the same answer, only the name differs.
        assert error["message"] == f"this API key may not use the collection '{collection}'"
    if collection.strip():
        deleted = httpx.delete(f"{secured}/v1/collections/{collection}", headers=auth(TENANT_A),
                               timeout=WAIT_S)  # fmt: skip
        assert assert_error(deleted, 403, "permission_error")["code"] == "collection_forbidden"
    # The physical collection behind the "shared" alias is not "shared" either.
    listed = httpx.get(f"{secured}/v1/collections", headers=auth(ADMIN), timeout=WAIT_S).json()
    assert "private" in {c["name"] for c in listed["data"]}


def test_aliases_do_not_open_a_foreign_collection(secured: str, store_path: Path) -> None:
    # The edge store keeps "private" as an alias of a physical collection with its own name.
    catalog = json.loads((store_path / "catalog.json").read_text())
    physical = catalog["aliases"]["private"]
    assert physical != "private"
    for name in (physical, catalog["aliases"]["shared"]):
        found = search(secured, TENANT_A, query="vault code", collection=name)
        assert assert_error(found, 403, "permission_error")["code"] == "collection_forbidden"
    by_model = chat(secured, TENANT_A, model="vault")
    assert assert_error(by_model, 403, "permission_error")["param"] == "rag.collection"
    assert chat(secured, ADMIN, model="vault").status_code == 200


def test_documents_list_and_delete_see_only_the_tenants_own_documents(secured: str) -> None:
    listed = documents(secured, TENANT_A, "shared")
    assert listed.status_code == 200, listed.text
    a_view = {d["id"] for d in listed.json()["data"]}
    assert "a-vault.txt" in a_view and "b-vault.txt" not in a_view
    assert {d["id"] for d in documents(secured, ADMIN, "shared").json()["data"]} >= {
        "a-vault.txt",
        "b-vault.txt",
    }
    # Deleting B's document answers exactly like deleting one that does not exist.
    foreign = httpx.delete(f"{secured}/v1/documents", headers=auth(TENANT_A), timeout=WAIT_S,
                           params={"collection": "shared", "doc_id": "b-vault.txt"})  # fmt: skip
    missing = httpx.delete(f"{secured}/v1/documents", headers=auth(TENANT_A), timeout=WAIT_S,
                           params={"collection": "shared", "doc_id": "no-such.txt"})  # fmt: skip
    assert assert_error(foreign, 404, "not_found_error")["code"] == "document_not_found"
    assert assert_error(missing, 404, "not_found_error")["code"] == "document_not_found"
    b_view = {d["id"] for d in documents(secured, TENANT_B, "shared").json()["data"]}
    assert "b-vault.txt" in b_view and not b_view & a_view


def test_collections_listing_counts_only_the_tenants_points_and_it_cannot_drop_one(
    secured: str,
) -> None:
    mine = httpx.get(f"{secured}/v1/collections", headers=auth(TENANT_A), timeout=WAIT_S).json()
    everything = httpx.get(f"{secured}/v1/collections", headers=auth(ADMIN), timeout=WAIT_S).json()
    assert {c["name"] for c in mine["data"]} == {"shared"}  # "docs" does not exist here
    a_points = {c["name"]: c["points"] for c in mine["data"]}["shared"]
    all_points = {c["name"]: c["points"] for c in everything["data"]}["shared"]
    a_chunks = sum(d["chunks"] for d in documents(secured, TENANT_A, "shared").json()["data"])
    assert a_points == a_chunks and all_points > a_points
    dropped = httpx.delete(
        f"{secured}/v1/collections/shared", headers=auth(TENANT_A), timeout=WAIT_S
    )
    assert assert_error(dropped, 403, "permission_error")["code"] == "collection_forbidden"
    assert search(secured, TENANT_B, query="vault code", collection="shared").json()["results"]


def test_a_tenant_with_every_collection_still_cannot_drop_or_reindex_one(secured: str) -> None:
    headers = auth(TENANT_C)
    attempts = [
        httpx.delete(f"{secured}/v1/collections/shared", headers=headers, timeout=WAIT_S),
        httpx.post(f"{secured}/v1/collections/shared/versions", headers=headers, timeout=WAIT_S),
        httpx.post(f"{secured}/v1/collections/shared/switch", headers=headers, timeout=WAIT_S,
                   json={"collection": "shared_20260101T000000_00000000"}),
    ]  # fmt: skip
    for response in attempts:
        assert assert_error(response, 403, "permission_error")["code"] == "collection_forbidden"
    assert (
        search(secured, TENANT_C, query="vault code", collection="shared").json()["results"] == []
    )
    assert search(secured, TENANT_B, query="vault code", collection="shared").json()["results"]


def test_a_tenant_cannot_write_into_another_tenants_view(secured: str) -> None:
    # Tagging an upload as another tenant's is refused ...
    forged = upload(secured, TENANT_A, "forged.txt", "Planted: the vault code is FAKE-0000.",
                    collection="shared", tags=json.dumps({"tenant": "b"}))  # fmt: skip
    assert assert_error(forged, 403, "permission_error")["param"] == "tags"
    # ... and so is reusing another tenant's document id, which would replace its chunks.
    overwrite = upload(secured, TENANT_A, "b-vault.txt", "Overwritten by A.",
                       collection="shared", doc_id="b-vault.txt")  # fmt: skip
    assert assert_error(overwrite, 409, "invalid_request_error")["param"] == "doc_id"
    b_sees = search(secured, TENANT_B, query="vault code", collection="shared", mode="sparse")
    texts = [r["text"] for r in b_sees.json()["results"]]
    assert any(B_SECRET in t for t in texts) and not any("FAKE-0000" in t for t in texts)
    # The tenant's own uploads carry its tag, so its own filter finds them (and B's does not).
    extra = upload(secured, TENANT_A, "a-notes.txt", "Tenant A keeps spare keys in locker 12.",
                   collection="shared", tags=json.dumps({"team": "ops"}))  # fmt: skip
    assert extra.status_code == 200, extra.text
    found = search(secured, TENANT_A, query="spare keys locker", collection="shared")
    assert any("locker 12" in r["text"] for r in found.json()["results"])
    hidden = search(secured, TENANT_B, query="spare keys locker", collection="shared")
    assert all("locker 12" not in r["text"] for r in hidden.json()["results"])


ROUTES = [
    ("GET", "/v1/models", None),
    ("POST", "/v1/chat/completions", {"model": MODEL_NAME, "messages": [{"role": "user",
                                                                          "content": "hi"}]}),
    ("POST", "/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": "hi"}),
    ("POST", "/v1/search", {"query": "hi"}),
    ("GET", "/v1/documents?collection=shared", None),
    ("DELETE", "/v1/documents?collection=shared&doc_id=a-vault.txt", None),
    ("GET", "/v1/collections", None),
    ("DELETE", "/v1/collections/shared", None),
]  # fmt: skip
BAD_AUTH: list[dict[str, str]] = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer null"},
    {"Authorization": f"Basic {ADMIN}"},
    {"Authorization": ADMIN},
    {"Authorization": f"Bearer {ADMIN[:-1]}"},  # one character short
    {"Authorization": f"Bearer {ADMIN}x"},  # one character long
    {"Authorization": f"Bearer {ADMIN.upper()}"},
    {"Authorization": f"Bearer {digest(ADMIN)}"},  # the stored digest is not a key
    {"Authorization": "Bearer " + "k" * 8000},
    {"X-Api-Key": ADMIN},
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_v1_route_answers_a_missing_or_bad_key_with_an_openai_401(
    secured: str, method: str, path: str, body: dict[str, Any] | None
) -> None:
    for headers in BAD_AUTH:
        response = httpx.request(
            method, f"{secured}{path}", json=body, headers=headers, timeout=WAIT_S
        )
        error = assert_error(response, 401, "authentication_error")
        assert error["code"] == "invalid_api_key", headers
        assert ADMIN not in response.text and "k" * 100 not in response.text
    # Nothing was deleted by any of those.
    assert {d["id"] for d in documents(secured, ADMIN, "shared").json()["data"]} >= {"a-vault.txt"}


def test_the_key_is_checked_before_any_body_is_read(secured: str) -> None:
    """Without a key, an oversize upload or a non-JSON body is a 401, not a 413 or 415."""

    def body() -> Iterator[bytes]:
        for _ in range(MAX_UPLOAD // 65536 + 2):
            yield b"0" * 65536

    for headers in ({}, {"Authorization": "Bearer sk-wrong"}):
        upload_headers = {**headers, "content-type": "multipart/form-data; boundary=xyz"}
        oversize = httpx.post(f"{secured}/v1/documents", content=body(), headers=upload_headers,
                              timeout=WAIT_S)  # fmt: skip
        assert assert_error(oversize, 401, "authentication_error")["code"] == "invalid_api_key"
        declared = httpx.post(f"{secured}/v1/documents", content=b"0" * (MAX_UPLOAD + 1),
                              headers=upload_headers, timeout=WAIT_S)  # fmt: skip
        assert_error(declared, 401, "authentication_error")
        text = httpx.post(f"{secured}/v1/search", content=b"hello", timeout=WAIT_S,
                          headers={**headers, "content-type": "text/plain"})  # fmt: skip
        assert_error(text, 401, "authentication_error")
    # With a key the limits apply as before.
    multipart = {**auth(ADMIN), "content-type": "multipart/form-data; boundary=xyz"}
    admitted = httpx.post(f"{secured}/v1/documents", content=body(), headers=multipart,
                          timeout=WAIT_S)  # fmt: skip
    assert admitted.status_code == 413


def test_keys_are_checked_against_every_key_with_compare_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The comparison is constant-time per key and touches every key, match or not."""
    compared: list[tuple[str, str]] = []
    real_compare = hmac.compare_digest

    def counting(a: str, b: str) -> bool:
        compared.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(gateway.auth.hmac, "compare_digest", counting)
    secrets = [f"secret-{i}" for i in range(5)]
    ring = KeyRing([ApiKey(name=s, sha256=digest(s)) for s in secrets])

    class Presented:
        def __init__(self, token: str) -> None:
            self.headers = {"authorization": f"Bearer {token}"}

    for token, expected in [(secrets[0], "secret-0"), (secrets[4], "secret-4"), ("nope", None)]:
        compared.clear()
        try:
            found = ring.authenticate(Presented(token))  # type: ignore[arg-type]
            name: str | None = found.name if found else None
        except gateway.auth.Unauthorized:
            name = None
        assert name == expected
        assert len(compared) == len(secrets)  # no early exit on a match
        assert all(a == digest(token) for a, _ in compared)  # digests, never the raw key
        assert {b for _, b in compared} == {digest(s) for s in secrets}


def _docx_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
        with archive.open("word/media/bomb.bin", "w", force_zip64=True) as member:
            for _ in range(32):
                member.write(b"\x00" * (1 << 20))  # 32 MiB of zeros, ~32 KB deflated
    return buffer.getvalue()


def _deflated_spaces(mib: int) -> bytes:
    """``mib`` MiB of blanks (an empty PDF content stream), deflated fast."""
    deflate = zlib.compressobj(1)
    block = b" " * (1 << 20)
    return b"".join(deflate.compress(block) for _ in range(mib)) + deflate.flush()


def _pdf_with_page_stream(stream: bytes) -> bytes:
    """A one-page PDF whose content stream is ``stream`` (already Flate-compressed)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
              % (len(objects) + 1, xref))  # fmt: skip
    return out.getvalue()


def test_hostile_uploads_are_refused_cleanly_and_the_server_stays_up(secured: str) -> None:
    bomb = _docx_bomb()
    assert len(bomb) < MAX_UPLOAD
    refused = upload(secured, ADMIN, "report.docx", bomb, collection="uploads")
    assert "zip bomb" in assert_error(refused, 400, "invalid_request_error")["message"]
    # 100 MiB of page content from a ~450 KB upload: pypdf stops inflating at 75 MB.
    pdf_bomb = _pdf_with_page_stream(_deflated_spaces(100))
    assert len(pdf_bomb) < MAX_UPLOAD
    inflated = upload(secured, ADMIN, "bomb.pdf", pdf_bomb, collection="uploads")
    assert inflated.status_code in (200, 400), inflated.text
    assert "Traceback" not in inflated.text
    # Over the size limit: refused from the declared length, and from the bytes when chunked.
    huge = b"%PDF-1.4\n" + b"0" * (MAX_UPLOAD + 1)
    too_big = upload(secured, ADMIN, "huge.pdf", huge, collection="uploads")
    assert assert_error(too_big, 413, "invalid_request_error")["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:
        boundary = b"--xyz\r\n"
        yield boundary + b'Content-Disposition: form-data; name="file"; filename="huge.pdf"\r\n\r\n'
        for _ in range(MAX_UPLOAD // 65536 + 2):
            yield b"0" * 65536
        yield b"\r\n--xyz--\r\n"

    multipart = {**auth(ADMIN), "content-type": "multipart/form-data; boundary=xyz"}
    chunked = httpx.post(f"{secured}/v1/documents", content=chunks(), headers=multipart,
                         timeout=WAIT_S)  # fmt: skip
    assert chunked.status_code == 413
    assert httpx.get(f"{secured}/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize(
    "name",
    ["../../../../tmp/ragserve-escape.txt", "..\\..\\windows\\escape.md", "/etc/cron.d/evil.txt",
     "a/../../b/../../c.txt", "C:\\Users\\x\\notes.txt", "%2e%2e%2fescape.txt"],
)  # fmt: skip
def test_upload_names_are_reduced_to_a_bare_file_name(secured: str, name: str) -> None:
    response = upload(secured, ADMIN, name, "Harmless text.", collection="uploads")
    assert response.status_code == 200, response.text
    stored = response.json()["id"]
    assert "/" not in stored and "\\" not in stored and not stored.startswith("..")
    assert not Path("/tmp/ragserve-escape.txt").exists()


@pytest.mark.parametrize("name", ["..", ".", "", "   ", "../"])
def test_upload_names_with_nothing_left_are_400(secured: str, name: str) -> None:
    response = upload(secured, ADMIN, name or "x", "text", collection="uploads")
    if not name:  # multipart needs a name: "x" has no supported suffix
        assert_error(response, 415, "invalid_request_error")
        return
    assert assert_error(response, 400, "invalid_request_error")["param"] == "file"


@pytest.mark.parametrize("collection", ["../escape", "a/b", "x" * 300, "with space", "a.b"])
def test_bad_collection_names_on_upload_are_400_not_500(secured: str, collection: str) -> None:
    response = upload(secured, ADMIN, "n.txt", "text", collection=collection)
    assert assert_error(response, 400, "invalid_request_error")["param"] == "collection"


def test_logs_never_carry_keys_authorization_headers_or_prompts(
    secured: str, gateway_log: Path
) -> None:
    prompt_marker = "PROMPT-MARKER-6b1f"
    for key in (ADMIN, TENANT_A, "sk-wrong-key-9f9f", None):
        chat(secured, key, messages=[{"role": "user", "content": f"Say {prompt_marker}"}])
        search(secured, key or "", query=prompt_marker, collection="shared")
    upload(secured, ADMIN, "bad.pdf", b"not a pdf " + prompt_marker.encode(), collection="x")
    json_headers = {**auth(ADMIN), "content-type": "application/json"}
    httpx.post(f"{secured}/v1/chat/completions", content=b"{broken " + prompt_marker.encode(),
               headers=json_headers, timeout=WAIT_S)  # fmt: skip
    text = gateway_log.read_text()
    requests = [line for line in text.splitlines() if '"msg": "request"' in line]
    assert len(requests) >= 10  # the log really is this gateway's, at debug level
    for secret in (ADMIN, TENANT_A, TENANT_B, "sk-wrong-key-9f9f", ENGINE_SECRET,
                   digest(ADMIN), prompt_marker, B_SECRET):  # fmt: skip
        assert secret not in text
    assert "authorization" not in text.lower() and "bearer" not in text.lower()


# ---- error bodies under internal failures ------------------------------------------------

LEAKS = ("Traceback", 'File "', "site-packages", "/work/", "httpx.", "Errno", "Exception")


def _assert_no_internals(response: httpx.Response, *hosts: str) -> None:
    for needle in (*LEAKS, *hosts):
        assert needle not in response.text, (needle, response.text)


@pytest.fixture(scope="module")
def broken_store_gateway(engine_url: str, artifacts_dir: Path) -> Iterator[tuple[str, str]]:
    store_host = f"127.0.0.1:{free_port()}"  # a Qdrant server nobody runs
    env = {"RAGSERVE_ENGINE_URLS": engine_url, "RAGSERVE_QDRANT_URL": f"http://{store_host}"}
    with gateway_process(env, artifacts_dir / "gateway-security-store.log",
                         timeout=START_TIMEOUT) as url:  # fmt: skip
        yield url, store_host


@pytest.fixture(scope="module")
def dead_engine_gateway(artifacts_dir: Path) -> Iterator[tuple[str, str]]:
    engine_host = f"127.0.0.1:{free_port()}"
    env = {"RAGSERVE_ENGINE_URLS": f"http://{engine_host}",
           "RAGSERVE_ENGINE_API_KEY": ENGINE_SECRET}  # fmt: skip
    with gateway_process(env, artifacts_dir / "gateway-security-engine.log",
                         timeout=START_TIMEOUT) as url:  # fmt: skip
        yield url, engine_host


def test_a_dead_engine_gives_errors_without_hosts_or_traces(
    dead_engine_gateway: tuple[str, str],
) -> None:
    url, host = dead_engine_gateway
    body = {"model": "docs", "messages": [{"role": "user", "content": "hi"}]}
    for stream in (False, True):
        response = httpx.post(f"{url}/v1/chat/completions", json={**body, "stream": stream},
                              timeout=WAIT_S)  # fmt: skip
        assert assert_error(response, 503, "server_error")["code"] == "engine_unavailable"
        _assert_no_internals(response, host, ENGINE_SECRET)
    models = httpx.get(f"{url}/v1/models", timeout=WAIT_S)
    assert_error(models, 503, "server_error")
    _assert_no_internals(models, host, ENGINE_SECRET)


def test_a_dead_store_gives_errors_without_hosts_or_traces(
    broken_store_gateway: tuple[str, str],
) -> None:
    url, host = broken_store_gateway
    degraded = chat(url, None, model="docs", max_tokens=2)
    assert degraded.status_code == 200 and degraded.json()["rag"]["degraded"] is True
    _assert_no_internals(degraded, host)
    for response in (
        httpx.post(f"{url}/v1/search", json={"query": "hi"}, timeout=WAIT_S),
        httpx.get(f"{url}/v1/collections", timeout=WAIT_S),
        httpx.get(f"{url}/v1/documents", timeout=WAIT_S),
        upload(url, "", "a.txt", "text"),
    ):
        assert assert_error(response, 503, "server_error")["code"] == "store_unavailable"
        _assert_no_internals(response, host)
