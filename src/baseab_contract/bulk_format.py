"""The bulk record a pipeline sends to `POST /{entity}/bulk`: Base A's key and version, the row's
timestamps, then the entity's data fields; a delete record carries the key and the version only."""

from __future__ import annotations

from baseab_contract.entities import Entity

SOURCE_ID = "source_id"  # Base A's key
SOURCE_ID_RANGE = (1, 2**63 - 1)  # the keys Base B can hold (a positive BIGINT)
# A rejection reason's `code` when another row holds the record's unique value (an email): the
# pipelines send such a record again once a delete may have freed the value.
UNIQUE_TAKEN = "unique_taken"
# A rejection reason's `code` when Base A holds the record's key in more than one row (a mapped key
# that is not unique): not synced, as the rows would overwrite each other (base_sync.shared_keys).
SHARED_KEY = "shared_key"
VERSION = "source_updated_at"  # Base A's updated_at: the version guard compares it
TIMESTAMPS = ("created_at", "updated_at")
# Optional: the version of Base B's row an older record replaces (Base A's stamp went back); the API
# applies it only while the row holds exactly that version.
REPLACES_VERSION = "replaces_version"
DELETE_RECORD_FIELDS = (SOURCE_ID, VERSION)


def record_fields(entity: Entity) -> tuple[str, ...]:
    """The keys of one bulk record of this entity, in the order the pipelines write them."""
    return (SOURCE_ID, VERSION, *TIMESTAMPS, *entity.field_names)
