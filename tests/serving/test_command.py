"""``python -m serving``: what its options change in deploy/ray/serve.yaml (no Ray needed)."""

from __future__ import annotations

from ray.serve.schema import ServeDeploySchema

from serving.__main__ import override
from serving.launch import load_config


def test_the_repo_yaml_is_a_valid_serve_config_with_every_deployment() -> None:
    config = load_config()
    schema = ServeDeploySchema.model_validate(config)
    (app,) = schema.applications
    assert app.import_path == "serving.app:build_app"
    names = {d.name for d in app.deployments}
    assert names == {"gateway", "retrieval", "engine_registry", "engine"}
    assert config["http_options"]["host"] == "127.0.0.1"  # loopback unless told otherwise


def test_host_and_port_reach_both_serve_and_the_gateway() -> None:
    config = override(load_config(), "0.0.0.0", 8080, None)
    assert (config["http_options"]["host"], config["http_options"]["port"]) == ("0.0.0.0", 8080)
    args = config["applications"][0]["args"]
    assert (args["http_host"], args["http_port"]) == ("0.0.0.0", 8080)
    assert args["local_engines"] is True


def test_engine_urls_replace_the_ray_engine_replicas() -> None:
    config = override(load_config(), None, None, ["http://a:8000", "http://b:8000"])
    app = config["applications"][0]
    assert app["args"]["local_engines"] is False
    assert app["runtime_env"]["env_vars"]["RAGSERVE_ENGINE_URLS"] == "http://a:8000,http://b:8000"
    assert {d["name"] for d in app["deployments"]} == {"gateway", "retrieval"}
    ServeDeploySchema.model_validate(config)
