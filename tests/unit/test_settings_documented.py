"""Every setting is documented where operators look: the README table and deploy/env.example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.config import Settings

ROOT = Path(__file__).resolve().parents[2]
VARIABLES = [name.upper() for name in Settings.__struct_fields__]


@pytest.mark.parametrize("variable", VARIABLES)
def test_readme_documents_setting(variable: str) -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"^\|[^|]*`{variable}`[^|]*\|", readme, re.MULTILINE), variable


@pytest.mark.parametrize("variable", VARIABLES)
def test_env_example_lists_setting(variable: str) -> None:
    example = (ROOT / "deploy" / "env.example").read_text()
    assert re.search(rf"^#? ?{variable}=", example, re.MULTILINE), variable
