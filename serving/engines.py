"""vLLM engine replicas placed by Ray, and the registry through which gateways find them.

Each ``engine`` replica starts one vLLM OpenAI server (``llm.launcher.LocalEngine``) as a
child process on the resources Ray reserved for it: GPUs arrive as the replica's
``CUDA_VISIBLE_DEVICES``, which the server inherits. Ray's CPUs are only counted, not pinned:
vLLM's CPU build binds its threads itself (``VLLM_CPU_OMP_THREADS_BIND``, settable in the
YAML's ``env_vars``), so reserve a node's worth of CPUs for a CPU engine. Tokens never
cross Ray: gateways stream from the server's own HTTP port (ray-project/ray#39705: streaming
through an intermediate deployment ran at a third of direct).

Replicas report their URL to ``engine_registry`` every ``HEARTBEAT_S``; the registry forgets a
URL when its replica says its server died or stops reporting for ``ttl_s``. A replica whose
server died fails Ray Serve's health check, and Ray replaces it (a new server, a new URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import psutil
import ray
from ray import serve
from ray.serve.handle import DeploymentHandle

from llm.launcher import EngineConfig, LocalEngine, parse_extra_args
from llm.model_prep import prepare_model

log = logging.getLogger("ray.serve")
HEARTBEAT_S = 1.0


@serve.deployment(name="engine_registry", num_replicas=1, ray_actor_options={"num_cpus": 0})
class EngineRegistry:
    """The URLs of the engine replicas alive now."""

    def __init__(self, ttl_s: float = 5.0) -> None:
        self._ttl_s = ttl_s
        self._seen: dict[str, tuple[str, float]] = {}  # replica id -> (url, last report)

    def report(self, replica_id: str, url: str | None) -> None:
        """A replica's heartbeat; ``url=None``: its server is gone, forget it now."""
        if url is None:
            self._seen.pop(replica_id, None)
        else:
            self._seen[replica_id] = (url, time.monotonic())

    def urls(self) -> list[str]:
        now = time.monotonic()
        for replica_id, (_, seen) in list(self._seen.items()):
            if now - seen > self._ttl_s:
                del self._seen[replica_id]  # stopped reporting: dead, or cut off
        return sorted(url for url, _ in self._seen.values())


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


@serve.deployment(name="engine", health_check_period_s=2, health_check_timeout_s=10)
class EngineReplica:
    """One vLLM OpenAI server, started with the replica and stopped with it."""

    async def __init__(  # type: ignore[misc]
        self,
        registry: DeploymentHandle[Any],
        *,
        model_dir: str,
        served_model_name: str,
        host: str = "127.0.0.1",
        dtype: str = "float32",
        max_model_len: int = 2048,
        kv_cache_bytes: int = 1 << 30,
        extra_args: str = "",
        start_timeout_s: float = 600.0,
        log_dir: str | None = None,
    ) -> None:
        self._registry = registry
        self._id = serve.get_replica_context().replica_id.unique_id
        # "node": this node's address, so gateways on other nodes reach the server
        bind = ray.util.get_node_ip_address() if host == "node" else host
        model = await asyncio.to_thread(prepare_model, Path(model_dir))
        config = EngineConfig(
            model_dir=model, served_model_name=served_model_name, host=bind,
            port=_free_port(bind), dtype=dtype, max_model_len=max_model_len,
            kv_cache_bytes=kv_cache_bytes, extra_args=parse_extra_args(extra_args),
        )  # fmt: skip
        log_path = Path(log_dir) / f"vllm-{self._id}.log" if log_dir else None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
        self._engine = LocalEngine(config, log_path=log_path)
        # Started on the replica's own long-lived thread: the server dies with whoever forked
        # it (PR_SET_PDEATHSIG), and a pool thread may end before the replica does.
        self._engine.start()
        self._pid = self._engine.pid
        # Ray runs its workers niced (raylet's worker_niceness) and the server inherits
        # that; it is the stack's main work, so back to normal priority where allowed.
        if self._pid is not None:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, self._pid, 0)
        self.url = config.url
        await asyncio.to_thread(self._engine.wait_ready, start_timeout_s)
        log.info("engine replica %s serves %s (pid %s)", self._id, self.url, self._pid)
        self._beat = asyncio.create_task(self._heartbeat())

    async def _heartbeat(self) -> None:
        while True:
            alive = _alive(self._pid)
            with contextlib.suppress(Exception):  # the registry restarts: report again later
                await self._registry.report.remote(self._id, self.url if alive else None)
            if not alive:
                return
            await asyncio.sleep(HEARTBEAT_S)

    def check_health(self) -> None:
        """Ray Serve's health check: a replica whose server died is replaced."""
        if not _alive(self._pid):
            raise RuntimeError(f"the vLLM server (pid {self._pid}) exited")

    def info(self) -> dict[str, object]:
        """This replica's server: its URL and process id (tests kill it)."""
        return {"url": self.url, "pid": self._pid, "replica": self._id}

    async def __del__(self) -> None:
        beat = getattr(self, "_beat", None)
        if beat is not None:
            beat.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._registry.report.remote(self._id, None), 2.0)
        engine = getattr(self, "_engine", None)  # None: the constructor failed before it
        if engine is not None:
            await asyncio.to_thread(engine.stop)
