"""Start, health-wait and stop a local vLLM OpenAI-compatible server (CPU machines).

The engine runs in its own process group so that stopping it also ends the engine-core
workers it forks; on Linux it also dies with its parent (PR_SET_PDEATHSIG), so a killed
gateway leaves no orphan holding 5 GB of RAM.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# Measured on this project's 2-core AVX2 machines: bf16 produces garbage, compiled mode
# takes 2.5-3.5 min to start (eager ~40 s), and reserving no CPU lets vLLM use both cores.
CPU_ENV = {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "HF_HUB_OFFLINE": "1"}


@dataclass
class EngineConfig:
    model_dir: Path
    served_model_name: str
    host: str = "127.0.0.1"
    port: int = 8100
    dtype: str = "float32"
    max_model_len: int = 2048
    # An explicit KV-cache size: vLLM's CPU default reserves 92 % of the NUMA node's
    # memory and refuses to start when other processes hold some of it.
    kv_cache_bytes: int = 1 << 30
    enforce_eager: bool = True
    # Tool calling on: "auto" tool choice needs a parser for the model's tool-call format
    # (SmolLM2 writes Hermes-style <tool_call> tags); None leaves it off.
    tool_call_parser: str | None = "hermes"
    # Keep Responses API answers so previous_response_id and GET /v1/responses/{id} work
    # (vLLM holds them in memory until it stops).
    store_responses: bool = True
    # Report prefix-cache hits as usage.prompt_tokens_details.cached_tokens (vLLM leaves
    # prompt_tokens_details out unless asked, even with prefix caching on).
    prompt_tokens_details: bool = True
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir),
            "--served-model-name", self.served_model_name,
            "--host", self.host,
            "--port", str(self.port),
            "--dtype", self.dtype,
            "--max-model-len", str(self.max_model_len),
            "--kv-cache-memory-bytes", str(self.kv_cache_bytes),
            "--disable-uvicorn-access-log",
        ]  # fmt: skip
        if self.enforce_eager:
            cmd.append("--enforce-eager")
        if self.tool_call_parser:
            cmd += ["--enable-auto-tool-choice", "--tool-call-parser", self.tool_call_parser]
        if self.prompt_tokens_details:
            cmd.append("--enable-prompt-tokens-details")
        return cmd + self.extra_args

    def env(self) -> dict[str, str]:
        store = {"VLLM_ENABLE_RESPONSES_API_STORE": "1"} if self.store_responses else {}
        return {**CPU_ENV, **store}


class EngineStartError(RuntimeError):
    pass


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalEngine:
    """A vLLM server child process."""

    def __init__(self, config: EngineConfig, log_path: Path | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        env = {**os.environ, **self.config.env()}
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self._process = subprocess.Popen(
                self.config.command(),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        finally:
            if not isinstance(log, int):
                log.close()  # the child has its own copy of the descriptor

    def wait_ready(self, timeout: float, on_tick: Callable[[float], None] | None = None) -> float:
        """Block until ``/health`` answers 200; return the seconds it took."""
        assert self._process is not None, "start() first"
        began = time.monotonic()
        while True:
            elapsed = time.monotonic() - began
            if self._process.poll() is not None:
                raise EngineStartError(
                    f"vLLM exited with status {self._process.returncode} while starting"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            try:
                if httpx.get(f"{self.config.url}/health", timeout=1.0).status_code == 200:
                    return elapsed
            except httpx.HTTPError:
                pass
            if elapsed > timeout:
                self.stop()
                raise EngineStartError(f"vLLM was not ready after {timeout:g} s")
            if on_tick:
                on_tick(elapsed)
            time.sleep(0.5)

    def stop(self, grace: float = 15.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the server and its workers at once: a crash, for failover tests."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def __enter__(self) -> LocalEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def parse_extra_args(raw: str) -> list[str]:
    return shlex.split(raw)
