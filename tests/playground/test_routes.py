"""The playground's routes: the page, its files, and nothing outside gateway/static/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient

from gateway import playground
from gateway.app import create_app
from gateway.auth import ApiKey, digest
from gateway.retrieval_setup import open_retrieval
from gateway.settings import Settings
from tests.support.replay_engine import ReplayEngine

SECRET = "playground-route-secret"


def settings_for(store: Path, **extra: Any) -> Settings:
    return Settings(embedding_model=None, qdrant_path=store, engine_health_interval_s=0, **extra)


class Apps:
    """Builds the whole app as the server does, over a replaying engine that is never called
    and one retrieval stack (an empty store of this module's own) shared by every app."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.retrieval = anyio.run(open_retrieval, settings_for(store))

    @contextmanager
    def client(self, **settings: Any) -> Iterator[TestClient]:
        app = create_app(
            settings_for(self.store, **settings), engine=ReplayEngine(), retrieval=self.retrieval
        )
        with TestClient(app) as client:  # `with`: the lifespan builds the app's services
            yield client


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Apps]:
    apps = Apps(tmp_path_factory.mktemp("playground-store"))
    yield apps
    anyio.run(apps.retrieval.aclose)


@pytest.fixture(scope="module")
def client(apps: Apps) -> Iterator[TestClient]:
    with apps.client() as client:
        yield client


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


def test_the_page_and_its_config_load_before_a_key_is_entered(apps: Apps) -> None:
    key = ApiKey(name="k", sha256=digest(SECRET))
    with apps.client(api_keys=[key]) as secured:
        response = secured.get("/playground/config.json")  # no Authorization header
        assert response.status_code == 200
        assert response.json()["auth_required"] is True
        assert digest(SECRET) not in response.text
        assert secured.get("/").status_code == 200
        assert secured.get("/v1/models").status_code == 401  # the API itself needs the key


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
    apps: Apps, settings: dict[str, Any], model: str | None, collection: str
) -> None:
    with apps.client(**settings) as client:
        body = client.get("/playground/config.json").json()
    assert (body["default_model"], body["default_collection"]) == (model, collection)


def test_the_page_prefers_the_server_default_over_the_first_collection(
    client: TestClient,
) -> None:
    """The picker's choice is made in app.js: it reads the defaults from config.json."""
    script = client.get("/playground/app.js").text
    assert "config.default_model" in script and "config.default_collection" in script
    turn = client.get("/playground/turn.js").text
    assert '"no such source"' in turn  # invented markers are struck through
