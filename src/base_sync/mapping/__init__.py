"""Source mappings: how Base A's own tables and columns become Base B's entities.

`SourceMapping.from_settings()` reads the file `BASE_A_MAPPING_FILE` names (docs/mapping.md); without
one, the identity mapping of the Base A this platform creates itself (`base-a init`: tables named
after the entities, key `id`, cursor `updated_at` as a UTC TIMESTAMP). Every reader of Base A (the
batch extract, verification, the key comparison, the events path, the check command) goes through
one `SourceView` per entity.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from base_sync.mapping.spec import (
    EntityMapping,
    FieldMapping,
    MappingError,
    MappingFile,
    Marks,
    SourceSection,
    StampColumn,
    load_mapping,
    parse_mapping,
    read_mapping,
)
from base_sync.mapping.view import SourceView
from baseab_contract.entities import ENTITIES, Entity
from env_settings import EnvSettings

__all__ = [
    "MappingError",
    "MappingSettings",
    "Marks",
    "SourceMapping",
    "SourceView",
    "load_mapping",
    "parse_mapping",
    "read_mapping",
]

# Entity options that change no record Base B holds: never part of the mapping's digest.
NOT_IN_DIGEST = {"key_unique"}


class MappingSettings(EnvSettings):
    """Where the mapping file is (BASE_A_MAPPING_FILE): shared by the batch DAG, the events DAG and the relay."""

    model_config = SettingsConfigDict(env_prefix="BASE_A_", extra="ignore")
    read_elsewhere = (
        "BASE_A_URL",  # the base-a CLI's (base_sync.demo.cli) and scripts/up.sh's
        "BASE_A_SEED_EMPLOYEES",  # scripts/up.sh's
        "BASE_A_SEED_ARTICLES",
        "BASE_A_CHURN_EVERY",
        "BASE_A_PASSWORD",  # docker-compose.yaml's, and deploy/mysql-init's
        "BASE_A_SYNC_PASSWORD",
        "BASE_A_RELAY_PASSWORD",
    )

    mapping_file: Path | None = Field(
        None,
        description="YAML mapping of Base A's tables to Base B's entities; unset or empty: the platform's own tables",
    )

    @field_validator("mapping_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value):
        return None if isinstance(value, str) and not value.strip() else value  # not Path(""), the folder "."


def identity_entity(entity: Entity) -> EntityMapping:
    """The mapping of a table `base-a init` made: same names, UTC TIMESTAMP stamps."""
    return EntityMapping(
        table=entity.name,
        key="id",
        cursor=[StampColumn(column="updated_at", type="timestamp")],
        created=StampColumn(column="created_at", type="timestamp"),
        fields={name: FieldMapping(column=name) for name in entity.field_names},
    )


IDENTITY = MappingFile(
    source=SourceSection(time_zone="UTC"), entities={name: identity_entity(e) for name, e in ENTITIES.items()}
)


class SourceMapping:
    """The whole mapping: which entities come from Base A, and each one's view for a kind of database."""

    def __init__(self, spec: MappingFile = IDENTITY, origin: str = "identity", marks: Marks | None = None):
        self.spec = spec
        self.origin = origin
        self.marks = marks or Marks(origin)

    @classmethod
    def from_file(cls, path: str | Path) -> SourceMapping:
        spec, marks = read_mapping(path)
        return cls(spec, str(path), marks)

    def where(self, *loc: str | int) -> str:
        """`file:LINE:COLUMN` of the key at `loc` in the file (`entities`, `employees`, `fields`, ...); the
        origin alone without a file."""
        return self.marks.where(*loc)

    @classmethod
    def from_settings(cls, settings: MappingSettings | None = None) -> SourceMapping:
        path = (settings or MappingSettings()).mapping_file
        return _cached_file(str(path)) if path else IDENTITY_MAPPING

    @property
    def is_identity(self) -> bool:
        return self.spec is IDENTITY

    @property
    def entities(self) -> tuple[str, ...]:
        """The mapped entities, in Base B's declaration order."""
        return tuple(name for name in ENTITIES if name in self.spec.entities)

    def table_of(self, entity: str) -> str:
        return self.spec.entities[entity].table

    def digest(self, entity: str) -> str:
        """What decides the entity's records in Base B (its mapping and the source's time zone), as
        a hash: the batch path re-reads every row when it changes (`sync.refresh_wanted`). Options that
        change no record (`key_unique`: only which questions a task asks) are left out, set or not: a
        mapping gaining one keeps its digest, and no entity is read again for it."""
        spec = {
            "source": self.spec.source.model_dump(mode="json"),
            "entity": self.spec.entities[entity].model_dump(mode="json", exclude=NOT_IN_DIGEST),
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    def view(self, entity: str, backend) -> SourceView:
        if entity not in self.spec.entities:
            mapped = list(self.entities)
            raise MappingError(f"{self.where('entities')}: entity {entity!r} is not mapped (mapped: {mapped})")
        return _view(self, entity, backend)


@cache
def _view(mapping: SourceMapping, entity: str, backend) -> SourceView:
    return SourceView(ENTITIES[entity], mapping.spec.entities[entity], mapping.spec.source.time_zone, backend)


@cache
def _cached_file(path: str) -> SourceMapping:
    return SourceMapping.from_file(path)


IDENTITY_MAPPING = SourceMapping()
