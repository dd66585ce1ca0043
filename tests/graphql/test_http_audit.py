"""The GraphQL over HTTP spec, checked by a client nobody here wrote: graphql-http's server audit
(`tests/tools`, installed by `make install` with the machine's Node.js) against the
service under gunicorn, in front of the real REST API."""

from __future__ import annotations

import json
import subprocess

from testbed.servers import REPO, graphql_server, missing, require_program

TOOLS = REPO / "tests" / "tools"


def test_the_service_passes_the_graphql_over_http_audit(rest_api, tmp_path):
    node = require_program("node", "Node.js; `make install` installs the audit with npm where it is")
    if not (TOOLS / "node_modules" / "graphql-http").is_dir():
        missing(f"graphql-http is not installed in {TOOLS}: run `make install` (npm ci there)")
    with graphql_server(rest_api, tmp_path / "graphql.log") as base:
        run = subprocess.run(
            [node, str(TOOLS / "graphql_http_audit.mjs"), f"{base}/graphql"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(results) > 50, run.stdout  # the audit ran all its checks
    failed = [r for r in results if r["status"] != "ok"]  # warnings and notices (MAY) included
    assert failed == [], "\n".join(f"{r['status']} {r['id']} {r['name']}: {r['reason']}" for r in failed)
