"""The GraphQL types, inputs and operations of each entity, written from its declaration.

`schema/*.graphql` holds what no entity declares (the root types, the scalars); every entity adds
`<Type>`, `<Type>Page`, `<Type>Input`, `<Type>Filter`, `get<Types>` (the seed system's list),
`get<Types>Page`, `get<Type>` and `create`/`update`/`delete<Type>` (with `input` or the seed
system's flat arguments), so a new entity in `baseab_contract.entities` is served with
nothing written here.
"""

from __future__ import annotations

from dataclasses import dataclass

from baseab_contract.entities import ENTITIES, Entity, Field, Kind
from graphql_service.errors import camel

# What a list or a page holds when `limit` is left out or null (the resolvers and the cost read these).
LIST_LIMIT, PAGE_LIMIT = 100, 50

_SCALARS = {
    Kind.STRING: "String",
    Kind.TEXT: "String",
    Kind.EMAIL: "String",
    Kind.DECIMAL: "Decimal",
    Kind.DATE: "Date",
}


@dataclass(frozen=True)
class EntityNames:
    """The GraphQL names of one entity: `Article` and `Articles` for the REST resource `articles`."""

    rest: str
    singular: str
    plural: str

    @classmethod
    def of(cls, entity: Entity) -> EntityNames:
        return cls(entity.name, entity.title, "".join(part.title() for part in entity.name.split("_")))

    @property
    def list_field(self) -> str:
        return f"get{self.plural}"

    @property
    def page_field(self) -> str:
        return f"get{self.plural}Page"


def _article(word: str) -> str:
    return "An" if word[:1].lower() in "aeiou" else "A"


def _field(field: Field, required: bool) -> str:
    return f"  {camel(field.name)}: {_SCALARS[field.kind]}{'!' if required else ''}"


def entity_sdl(entity: Entity) -> str:
    """The SDL of one entity's types and operations."""
    names = EntityNames.of(entity)
    one, many, thing = names.singular, names.plural, entity.singular
    a_thing = f"{_article(thing).lower()} {thing}"
    data = "\n".join(_field(f, f.required) for f in entity.fields)
    filters = "\n".join(_field(f, False) for f in entity.filterable_fields)
    # The seed system's flat arguments: every field, none required (an update changes those given).
    flat = ", ".join(f"{camel(f.name)}: {_SCALARS[f.kind]}" for f in entity.fields)
    return f'''"{_article(thing)} {thing} in Base B."
type {one} {{
  id: ID!
  "Base A's key; empty for {entity.name} created through the API (those are writable here)."
  sourceId: Int
{data}
  createdAt: DateTime!
  updatedAt: DateTime!
  "The Base A version held."
  sourceUpdatedAt: DateTime
}}

"One page of {entity.name}, ordered by id."
type {one}Page {{
  items: [{one}!]!
  "Pass as `afterId` for the next page; empty at the end."
  nextAfterId: ID
  "Pass as `after` for the next page; empty at the end."
  nextAfter: Int @deprecated(reason: "an Int carries ids up to 2147483647 only: use nextAfterId and afterId")
}}

input {one}Input {{
{data}
}}

input {one}Filter {{
{filters + chr(10) if filters else ""}  sourceId: Int
  updatedAfter: DateTime
}}

extend type Query {{
  """
  The seed system's list: up to `limit` {entity.name} (1 to 1000), ordered by id, after the id
  `afterId` (or `after`, an Int: ids up to 2147483647).
  """
  get{many}(limit: Int = {LIST_LIMIT}, after: Int, afterId: ID, filter: {one}Filter): [{one}!]!
  "One page of {entity.name} and where the next one starts (`nextAfterId`)."
  get{many}Page(limit: Int = {PAGE_LIMIT}, after: Int, afterId: ID, filter: {one}Filter): {one}Page!
  get{one}(id: ID!): {one}
}}

extend type Mutation {{
  "Creates {a_thing} owned by the API, from `input` or from the seed system's flat arguments (not both)."
  create{one}(input: {one}Input, {flat}): {one}!
  """
  Changes {a_thing} created through the API. `input` replaces every field; the seed system's flat
  arguments change only the fields given (a CONFLICT error when the row changed while it was read).
  """
  update{one}(id: ID!, input: {one}Input, {flat}): {one}!
  delete{one}(id: ID!): Boolean!
}}
'''


ENTITY_NAMES: tuple[EntityNames, ...] = tuple(EntityNames.of(entity) for entity in ENTITIES.values())
ENTITY_SDL: tuple[str, ...] = tuple(entity_sdl(entity) for entity in ENTITIES.values())
