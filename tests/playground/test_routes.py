"""The playground's routes: the page, its files, and nothing outside gateway/static/."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway import playground
from gateway.auth import ApiKey, KeyRing, digest
from gateway.errors import install_error_handlers
from gateway.settings import Settings

SECRET = "playground-route-secret"


def playground_app(keys: list[ApiKey]) -> FastAPI:
    """The real playground router with the app state it reads (no engine, no store)."""
    app = FastAPI()
    app.state.keys = KeyRing(keys)
    app.state.settings = Settings(embedding_model=None)
    install_error_handlers(app)
    app.include_router(playground.router)
    return app


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(playground_app([]))


def referenced_files(client: TestClient) -> set[str]:
    """Every playground file the page loads: from index.html, then the modules' imports."""
    html = client.get("/").text
    names = set(re.findall(r'(?:src|href)="/playground/([^"]+)"', html))
    pending = [n for n in names if n.endswith(".js")]
    while pending:
        script = client.get(f"/playground/{pending.pop()}").text
        for name in re.findall(r'from "\./([^"]+)"', script):
            if name not in names:
                names.add(name)
                pending.append(name)
    return names


def test_the_page_is_served_at_the_root_with_a_strict_policy(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert '<script type="module" src="/playground/app.js">' in response.text


def test_every_file_the_page_loads_is_served_with_its_content_type(client: TestClient) -> None:
    names = referenced_files(client)
    assert {"app.js", "api.js", "turn.js", "documents.js", "style.css"} <= names
    for name in names:
        response = client.get(f"/playground/{name}")
        assert response.status_code == 200, name
        suffix = name[name.rindex(".") :]
        assert response.headers["content-type"] == playground.CONTENT_TYPES[suffix]
        assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/playground/nope.js",
        "/playground/index.htm",
        "/playground/.hidden.css",
        "/playground/playground.py",  # a file next to static/, not in it
        "/playground/..%2Fplayground.py",
        "/playground/%2e%2e%2fplayground.py",
        "/playground/..%2F..%2Fpyproject.toml",
        "/playground/%2e%2e",
        "/playground/app.js%00.css",
        "/playground/static%2Fapp.js",
        "/playground/" + "a" * 120 + ".js",
    ],
)
def test_unknown_or_unsafe_names_are_404_in_openai_shape(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["type"] == "not_found_error"
    assert set(error) == {"message", "type", "param", "code"}


def test_config_tells_the_page_whether_it_needs_a_key_without_one(client: TestClient) -> None:
    assert client.get("/playground/config.json").json() == {
        "auth_required": False,
        "embedding_model": "all-MiniLM-L6-v2",
        "default_model": "docs",
        "default_collection": "docs",
    }
    secured = TestClient(playground_app([ApiKey(name="k", sha256=digest(SECRET))]))
    response = secured.get("/playground/config.json")  # no Authorization header
    assert response.status_code == 200
    assert response.json()["auth_required"] is True
    assert digest(SECRET) not in response.text
    assert secured.get("/").status_code == 200  # the page loads before a key is entered


@pytest.mark.parametrize(
    ("settings", "model", "collection"),
    [
        ({}, "docs", "docs"),  # the shipped default: the docs alias
        ({"collection": "manuals", "model_aliases": {"a": {"collection": "x"},
          "handbook": {"collection": "manuals"}}}, "handbook", "manuals"),
        ({"collection": "manuals", "model_aliases": {}}, None, "manuals"),
    ],
)  # fmt: skip
def test_config_names_the_default_target_not_the_first_in_order(
    settings: dict[str, object], model: str | None, collection: str
) -> None:
    app = playground_app([])
    app.state.settings = Settings(embedding_model=None, **settings)
    body = TestClient(app).get("/playground/config.json").json()
    assert (body["default_model"], body["default_collection"]) == (model, collection)


def test_the_page_prefers_the_server_default_over_the_first_collection(
    client: TestClient,
) -> None:
    """The picker's choice is made in app.js: it reads the defaults from config.json."""
    script = client.get("/playground/app.js").text
    assert "config.default_model" in script and "config.default_collection" in script
    turn = client.get("/playground/turn.js").text
    assert '"no such source"' in turn  # invented markers are struck through
