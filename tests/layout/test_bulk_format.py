"""Both sides hold the contract's bulk record format (baseab_contract.bulk_format): what the pipelines
send is what the API's bulk models accept, key for key."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from api_service.schemas import SCHEMAS, BulkDeleteRecord
from base_sync.records import to_record
from baseab_contract.bulk_format import DELETE_RECORD_FIELDS, REPLACES_VERSION, record_fields
from baseab_contract.entities import ENTITIES, Kind

SAMPLE = {
    Kind.STRING: "x",
    Kind.TEXT: "x",
    Kind.EMAIL: "a@b.co",
    Kind.DECIMAL: Decimal("1.00"),
    Kind.DATE: date(2026, 1, 2),
}


@pytest.mark.parametrize("entity", ENTITIES.values(), ids=lambda entity: entity.name)
def test_the_api_accepts_exactly_the_record_the_pipelines_send(entity):
    stamp = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    row = {"id": 7, "created_at": stamp, "updated_at": stamp, **{f.name: SAMPLE[f.kind] for f in entity.fields}}
    sent = to_record(entity.name, row)
    assert tuple(sent) == record_fields(entity)
    assert set(SCHEMAS[entity.name].bulk_record.model_fields) == {*record_fields(entity), REPLACES_VERSION}


def test_a_delete_record_is_the_key_and_the_version():
    assert tuple(BulkDeleteRecord.model_fields) == DELETE_RECORD_FIELDS
