"""A new entity is one declaration (plus its migration): REST, GraphQL, its cost limit, the demo
generator and the batch sync all serve it with no other edit. Proven with a throwaway entity
declared in a fresh interpreter (tests/layout/throwaway_entity.py)."""

from __future__ import annotations

from testbed.fresh_python import answer_of
from testbed.servers import REPO


def test_a_throwaway_entity_is_served_by_every_layer(tmp_path):
    answers = answer_of(str(REPO / "tests/layout/throwaway_entity.py"), str(tmp_path), timeout=180)

    assert answers["cost_map"], "getGadgets(Page) has no cost: the query-cost limit would not apply to it"
    assert answers["rest_create"] == 201
    assert [(item["label"], item["price"]) for item in answers["rest_list"]] == [("Lamp", "19.90")]
    assert "errors" not in answers["graphql_create"], answers["graphql_create"]
    assert answers["graphql_page"]["data"]["getGadgetsPage"]["items"] == [
        {"label": "Kettle", "price": "42.00", "releasedOn": "2024-01-31"}
    ]
    assert answers["graphql_flat_update"]["data"]["updateGadget"] == {"label": "Kettle", "price": "45.00"}
    assert answers["sync_load"]["inserted"] == 49  # 50 seeded, 2 inserted, 3 deleted
    assert answers["sync_verify"]["rows"] == 49 and answers["sync_verify"]["repaired"] == 0
