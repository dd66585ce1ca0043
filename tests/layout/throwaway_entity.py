"""Declares one more entity, then uses every layer on it; run by test_one_declaration.py in its own
interpreter (the declaration must come before anything derived from `ENTITIES` is imported).

Prints one JSON object: what each layer answered.
"""

from __future__ import annotations

import json
import sys
import threading
from decimal import Decimal
from pathlib import Path

from baseab_contract.entities import ENTITIES, Entity, Field, Kind

ENTITIES["gadgets"] = Entity(
    name="gadgets",
    singular="gadget",
    title="Gadget",
    fields=(
        Field("label", Kind.STRING, required=True, max_length=80, filterable=True),
        Field("price", Kind.DECIMAL, precision=8, scale=2, minimum=Decimal(0)),
        Field("released_on", Kind.DATE),
    ),
)

# Everything below derives from the declarations; nothing here names a gadget's fields but the checks.
from sqlalchemy import create_engine  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from api_service import create_app  # noqa: E402
from api_service.models import metadata  # noqa: E402
from api_service.settings import ApiSettings  # noqa: E402
from base_sync import sync  # noqa: E402
from base_sync.api_client import BaseBApi  # noqa: E402
from base_sync.demo import generate  # noqa: E402
from base_sync.settings import SyncSettings  # noqa: E402
from base_sync.source import BaseA, source_engine  # noqa: E402
from base_sync.state import MemoryStateStore  # noqa: E402
from graphql_service import create_app as create_graphql_app  # noqa: E402
from graphql_service.limits import COST_MAP  # noqa: E402
from graphql_service.settings import GraphQLSettings  # noqa: E402

TOKEN = "throwaway-token"


def main(workdir: Path) -> dict:
    base_b_url = f"sqlite:///{workdir / 'base_b.sqlite'}"
    engine = create_engine(base_b_url)
    metadata.create_all(engine)  # what the entity's Alembic revision does for a real one
    engine.dispose()
    api = make_server("127.0.0.1", 0, create_app(ApiSettings(database_url=base_b_url, tokens=(TOKEN,))), threaded=True)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    rest_url = f"http://127.0.0.1:{api.server_port}"
    try:
        return _use_every_layer(workdir, rest_url)
    finally:
        api.shutdown()


def _use_every_layer(workdir: Path, rest_url: str) -> dict:
    answers: dict = {"cost_map": {"getGadgets", "getGadgetsPage"} <= set(COST_MAP["Query"])}
    rest = BaseBApi(rest_url, TOKEN)
    created = rest.session.post(f"{rest_url}/gadgets", json={"label": "Lamp", "price": "19.90"})
    answers["rest_create"] = created.status_code
    answers["rest_list"] = rest.session.get(f"{rest_url}/gadgets", params={"label": "Lamp"}).json()["items"]

    graphql = create_graphql_app(GraphQLSettings(rest_api_url=rest_url)).test_client()
    mutation = 'mutation { createGadget(input: {label: "Kettle", price: "42.00", releasedOn: "2024-01-31"}) { id } }'
    answers["graphql_create"] = graphql.post(
        "/graphql", json={"query": mutation}, headers={"Authorization": f"Bearer {TOKEN}"}
    ).get_json()
    page = '{ getGadgetsPage(filter: {label: "Kettle"}) { items { label price releasedOn } nextAfter } }'
    answers["graphql_page"] = graphql.post("/graphql", json={"query": page}).get_json()
    flat = 'mutation { updateGadget(id: "2", price: "45.00") { label price } }'  # the seed system's flat form
    answers["graphql_flat_update"] = graphql.post(
        "/graphql", json={"query": flat}, headers={"Authorization": f"Bearer {TOKEN}"}
    ).get_json()

    # The pipelines: a Base A made by the demo generator, synced and verified through the API.
    base_a_engine = source_engine(f"sqlite:///{workdir / 'base_a.sqlite'}")
    generate.seed(base_a_engine, "gadgets", 50, seed_value=1)
    generate.churn(base_a_engine, "gadgets", updates=5, inserts=2, deletes=3, seed_value=2)
    base_a, settings = BaseA(base_a_engine), SyncSettings(lookback_seconds=0, chunk_size=20)
    report = sync.load("gadgets", base_a, rest, MemoryStateStore(), settings)
    answers["sync_load"] = dict(report.counts)
    answers["sync_verify"] = sync.verify("gadgets", base_a, rest, report, settings).to_json()
    rest.close()
    base_a_engine.dispose()
    return answers


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1])), default=str))
