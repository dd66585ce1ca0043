"""The OpenAPI document as an outside linter reads it: Redocly's recommended rules (`tests/tools`,
installed by `make install` with the machine's Node.js), in each configuration the API serves."""

from __future__ import annotations

import json
import subprocess

import pytest

from api_service.openapi import build_document
from testbed.servers import REPO, missing, require_program
from tests.api.conftest import make_settings

REDOCLY = REPO / "tests" / "tools" / "node_modules" / ".bin" / "redocly"
# The project carries no license, so the document names none.
ALLOWED = {"info-license"}


@pytest.mark.parametrize("read_requires_token", [False, True])
def test_the_document_passes_redoclys_recommended_rules(tmp_path, read_requires_token):
    require_program("node", "Node.js; `make install` installs Redocly's CLI with npm where it is")
    if not REDOCLY.exists():
        missing(f"{REDOCLY} is not installed: run `make install` (npm ci in tests/tools)")
    document = tmp_path / "openapi.json"
    settings = make_settings("sqlite://", read_requires_token=read_requires_token)
    document.write_text(json.dumps(build_document(settings)))
    run = subprocess.run(
        [str(REDOCLY), "lint", str(document), "--format=json"], capture_output=True, text=True, timeout=120, check=False
    )
    report = json.loads(run.stdout)
    problems = [p for p in report["problems"] if p["ruleId"] not in ALLOWED]
    assert problems == [], json.dumps(problems, indent=1)[:3000]
    assert report["totals"]["errors"] == 0
