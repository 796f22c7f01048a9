"""``python -m serving``: ragserve's whole stack as a Ray Serve application.

    python -m serving                          # a local Ray instance, deploy/ray/serve.yaml
    python -m serving --address auto           # a running Ray cluster (`ray start --head`)
    python -m serving --config my.yaml --port 8080

Ctrl-C deletes the application (engine replicas stop their vLLM servers) and stops Ray.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from serving.launch import APP_NAME, CONFIG, deploy, load_config, shutdown, start_ray, wait_running


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG, help="the Ray Serve YAML")
    parser.add_argument("--address", help="a running Ray cluster (default: start one here)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance")
    parser.add_argument("--host", help="override http_options.host")
    parser.add_argument("--port", type=int, help="override http_options.port")
    args = parser.parse_args(argv)

    config = load_config(args.config)
    http = config.setdefault("http_options", {})
    if args.host:
        http["host"] = args.host
    if args.port:
        http["port"] = args.port
        for app in config.get("applications", []):
            app.setdefault("args", {})["http_port"] = args.port
    start_ray(args.address, args.num_cpus)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        deploy(config)
        wait_running(APP_NAME)
        host, port = http.get("host", "127.0.0.1"), http.get("port", 8000)
        print(f"ragserve on Ray Serve: http://{host}:{port}", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
