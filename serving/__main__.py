"""``python -m serving``: ragserve's whole stack as a Ray Serve application.

    python -m serving                          # a local Ray instance, deploy/ray/serve.yaml
    python -m serving --address auto           # a running Ray cluster (`ray start --head`)
    python -m serving --config my.yaml --port 8080
    python -m serving --engine-url http://gpu-box:8000    # vLLM outside Ray, no engine replicas

Ctrl-C deletes the application (engine replicas stop their vLLM servers) and stops Ray.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from serving.launch import APP_NAME, CONFIG, deploy, load_config, shutdown, start_ray, wait_running


def override(
    config: dict[str, Any], host: str | None, port: int | None, engine_urls: list[str] | None
) -> dict[str, Any]:
    """The YAML with the command line's HTTP address and external engines applied."""
    http = config.setdefault("http_options", {})
    http["host"] = host or http.get("host", "127.0.0.1")
    http["port"] = port or http.get("port", 8000)
    for app in config.get("applications", []):
        app.setdefault("args", {}).update(http_host=http["host"], http_port=http["port"])
        if engine_urls:
            app["args"]["local_engines"] = False
            env = app.setdefault("runtime_env", {}).setdefault("env_vars", {})
            env["RAGSERVE_ENGINE_URLS"] = ",".join(engine_urls)
            app["deployments"] = [
                d for d in app.get("deployments", []) if not d["name"].startswith("engine")
            ]
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG, help="the Ray Serve YAML")
    parser.add_argument("--address", help="a running Ray cluster (default: start one here)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance")
    parser.add_argument("--host", help="override http_options.host")
    parser.add_argument("--port", type=int, help="override http_options.port")
    parser.add_argument(
        "--engine-url",
        action="append",
        help="a running vLLM server instead of Ray's engine replicas (repeatable)",
    )
    args = parser.parse_args(argv)
    config = override(load_config(args.config), args.host, args.port, args.engine_url)
    http = config["http_options"]
    start_ray(args.address, args.num_cpus)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        deploy(config)
        wait_running(APP_NAME)
        print(f"ragserve on Ray Serve: http://{http['host']}:{http['port']}", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
