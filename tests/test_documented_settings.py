"""Every setting is documented: the README's settings table names each one."""

from __future__ import annotations

from gateway.settings import Settings
from tests.support.processes import REPO


def test_the_readme_documents_every_setting() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [
        f"RAGSERVE_{name.upper()}"
        for name in Settings.model_fields
        if f"`RAGSERVE_{name.upper()}`" not in readme
    ]
    assert not missing, f"undocumented settings: {missing}"
