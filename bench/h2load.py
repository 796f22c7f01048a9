"""h2load (Debian's ``nghttp2-client``) as a bounded load generator, and its report parsed.

A C load generator, so the client is not what limits a Python proxy's figures. HTTP/1.1
(``--h1``), POST bodies from a file, bounded by request count, an inactivity timeout and
a wall-clock limit; loopback targets only.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.loadgen import require_loopback

INSTALL = "apt-get install -y nghttp2-client"

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
_DURATION = r"([\d.]+)(us|ms|s)"
_FINISHED = re.compile(r"finished in " + _DURATION)
_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
    r"(\d+) failed, (\d+) errored, (\d+) timeout"
)
_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
# The same body again and again is what the gateway's answer cache replays: measure the engine
# path, not the cache.
NO_ANSWER_CACHE = "Cache-Control: no-store"
_DATA = re.compile(r"traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers.*?\((\d+)\) data")
_ROW = re.compile(
    r"^(time for request|time for connect|time to 1st byte):\s+" + r"\s+".join([_DURATION] * 4),
    re.MULTILINE,
)


def ms(value: str, unit: str) -> float:
    """An h2load duration ("147us", "1.07ms", "1.26s") in milliseconds."""
    return float(value) * _UNITS[unit]


@dataclass(frozen=True, slots=True)
class H2loadReport:
    """What one h2load run reports (times in ms; the ``*_mean_ms`` are over connections)."""

    duration_ms: float
    requests: int
    succeeded: int
    failed: int
    errored: int
    timeout: int
    status_2xx: int
    status_other: int
    data_bytes: int
    request_mean_ms: float | None
    ttfb_min_ms: float | None
    ttfb_max_ms: float | None
    ttfb_mean_ms: float | None

    @property
    def errors(self) -> int:
        """Requests that did not end in a whole 2xx answer."""
        return self.requests - min(self.succeeded, self.status_2xx)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "errors": self.errors}


def parse(output: str) -> H2loadReport:
    """h2load's text report; ``ValueError`` if it did not finish one."""
    finished, requests = _FINISHED.search(output), _REQUESTS.search(output)
    if finished is None or requests is None:
        raise ValueError(f"no h2load report in:\n{output[-2000:]}")
    total, _, _, succeeded, failed, errored, timeout = (int(n) for n in requests.groups())
    status = _STATUS.search(output)
    codes = [int(n) for n in status.groups()] if status else [0, 0, 0, 0]
    data = _DATA.search(output)
    rows = {m.group(1): m.groups()[1:] for m in _ROW.finditer(output)}

    def row(name: str, column: int) -> float | None:
        values = rows.get(name)
        if values is None:
            return None
        return ms(values[2 * column], values[2 * column + 1])

    return H2loadReport(
        duration_ms=ms(*finished.groups()),
        requests=total,
        succeeded=succeeded,
        failed=failed,
        errored=errored,
        timeout=timeout,
        status_2xx=codes[0],
        status_other=sum(codes[1:]),
        data_bytes=int(data.group(3)) if data else 0,
        request_mean_ms=row("time for request", 2),
        ttfb_min_ms=row("time to 1st byte", 0),
        ttfb_max_ms=row("time to 1st byte", 1),
        ttfb_mean_ms=row("time to 1st byte", 2),
    )


def command(
    url: str, body: Path, *, requests: int, clients: int, inactivity_s: float, active_s: float
) -> list[str]:
    """The h2load command line for ``requests`` POSTs of ``body`` over ``clients`` connections.

    ``-T`` closes every connection after ``active_s``: h2load still prints its report, with
    the requests cut counted as failed, so a slow target yields figures, not nothing.
    """
    executable = shutil.which("h2load")
    if executable is None:
        raise SystemExit(f"h2load is missing: {INSTALL} (as root)")
    return [
        executable,
        "--h1",
        "-n",
        str(requests),
        "-c",
        str(clients),
        "-t",
        "1",
        "-m",
        "1",
        "-d",
        str(body),
        "-H",
        "Content-Type: application/json",
        "-H",
        NO_ANSWER_CACHE,
        "-N",
        f"{inactivity_s:g}s",
        "-T",
        f"{active_s:g}s",
        require_loopback(url),
    ]


def run(url: str, body: Path, *, requests: int, clients: int, time_limit_s: float) -> H2loadReport:
    """One bounded run; a run cut by ``time_limit_s`` counts every request as an error."""
    argv = command(
        url,
        body,
        requests=requests,
        clients=min(clients, requests),
        inactivity_s=min(60.0, time_limit_s),
        active_s=time_limit_s,
    )
    try:  # a last guard, should h2load itself hang
        done = subprocess.run(argv, capture_output=True, text=True, timeout=time_limit_s + 30)
    except subprocess.TimeoutExpired:
        return H2loadReport(
            time_limit_s * 1000, requests, 0, requests, 0, 0, 0, 0, 0, None, None, None, None
        )
    return parse(done.stdout)
