"""A run as saved to JSON: what was asked, on what machine, and every stream measured."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.loadgen import Batch
from bench.summary import figures, overheads


@dataclass(slots=True)
class RunRecord:
    name: str
    started_at: str  # ISO 8601, UTC
    config: dict[str, Any]
    machine: dict[str, Any]
    versions: dict[str, Any]
    targets: list[str]
    batches: list[Batch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "started_at": self.started_at,
            "config": self.config,
            "machine": self.machine,
            "versions": self.versions,
            "targets": self.targets,
            "notes": self.notes,
            # Derived, for readers of the JSON; load() recomputes them from the batches.
            "figures": [f.as_dict() for f in figures(self.batches, self.targets)],
            "overheads": [o.as_dict() for o in overheads(self.batches, self.targets)],
            "batches": [batch.as_dict() for batch in self.batches],
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_finite(self.as_dict()), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        data = json.loads(path.read_text())
        return cls(
            name=data["name"],
            started_at=data["started_at"],
            config=data["config"],
            machine=data["machine"],
            versions=data["versions"],
            targets=data["targets"],
            batches=[Batch.from_dict(batch) for batch in data["batches"]],
            notes=data.get("notes", []),
        )


def _finite(value: Any) -> Any:
    """NaN (no samples) as JSON null: strict JSON has no NaN; the figures are derived anyway."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
