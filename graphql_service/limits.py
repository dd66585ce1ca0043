"""Query limits: a maximum selection depth and a maximum cost (list sizes multiply), and the rules that apply them."""

from __future__ import annotations

from dataclasses import replace

from ariadne.compat import get_argument_values
from ariadne.validation.introspection_disabled import IntrospectionDisabledRule
from ariadne.validation.query_cost import CostValidator
from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLIncludeDirective,
    GraphQLSkipDirective,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    specified_rules,
)

from graphql_service.entity_schema import ENTITY_NAMES, LIST_LIMIT, PAGE_LIMIT

# Root list and page fields cost per requested item: `limit` (its default too) multiplies what is
# selected below them. Every entity has all of these, so a new entity cannot silently escape the limit.
# A row read is one REST call and a write one REST call that changes Base B: priced so that aliases
# cannot turn one request into thousands of calls (at the default maximum, 200 reads or 40 writes).
# A list or page is one REST call too, so it costs at least a row read (`list_price`): priced by
# its `limit` alone, 900 aliases of `limit: 1` passed as 900 calls.
ROW_READ_COST = 10
WRITE_COST = 50
DEFAULT_LIMITS = {
    field: default
    for names in ENTITY_NAMES
    for field, default in ((names.list_field, LIST_LIMIT), (names.page_field, PAGE_LIMIT))
}
COST_MAP = {
    "Query": {
        **{
            field: {"complexity": 1, "multipliers": ["limit"]}
            for names in ENTITY_NAMES
            for field in (names.list_field, names.page_field)
        },
        **{f"get{names.singular}": {"complexity": ROW_READ_COST} for names in ENTITY_NAMES},
    },
    "Mutation": {
        f"{verb}{names.singular}": {"complexity": WRITE_COST}
        for names in ENTITY_NAMES
        for verb in ("create", "update", "delete")
    },
}


def depth_limit(max_depth: int) -> type[ASTValidationRule]:
    """A validation rule refusing operations nested deeper than `max_depth` fields.

    Introspection fields (`__schema`, `__type`, `__typename`) and all below them are not counted: a client's
    standard introspection query (GraphiQL's) is about 15 levels deep. Whether introspection is allowed at all
    is the introspection switch's call (`document_rules`), and graphql-core's MaxIntrospectionDepthRule,
    among `specified_rules`, refuses the deeply nested introspection queries that cost the server.
    """

    class DepthLimit(ASTValidationRule):
        def __init__(self, context: ValidationContext):
            super().__init__(context)
            self.fragments = {
                f.name.value: f
                for f in context.document.definitions
                if hasattr(f, "selection_set") and not isinstance(f, OperationDefinitionNode)
            }
            self.levels: dict[str, int] = {}  # levels below each fragment (a cycle is the spec rule's error)

        def enter_operation_definition(self, node: OperationDefinitionNode, *_args):
            depth = self._levels(node.selection_set, frozenset())
            if depth > max_depth:
                self.report_error(GraphQLError(f"the query is {depth} levels deep; the limit is {max_depth}", node))

        def _levels(self, selection_set, seen: frozenset[str]) -> int:
            """How many levels of fields the selection set holds (introspection's not counted)."""
            if selection_set is None:
                return 0
            deepest = 0
            for selection in selection_set.selections:
                if isinstance(selection, FieldNode):
                    if not selection.name.value.startswith("__"):
                        deepest = max(deepest, 1 + self._levels(selection.selection_set, seen))
                elif isinstance(selection, InlineFragmentNode):
                    deepest = max(deepest, self._levels(selection.selection_set, seen))
                elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                    deepest = max(deepest, self._fragment_levels(selection.name.value, seen))
            return deepest

        def _fragment_levels(self, name: str, seen: frozenset[str]) -> int:
            # Once per fragment: a fragment spread twice at every level would double the walk each time.
            if name not in self.levels:
                fragment = self.fragments.get(name)
                levels = self._levels(fragment.selection_set, seen | {name}) if fragment is not None else 0
                self.levels[name] = levels
            return self.levels[name]

    return DepthLimit


# Introspection answers from the schema, with no REST call, but its answers are large (GraphiQL's
# query: 44 KB) and the cost rule does not see it: 1,350 aliases of `__schema` in a 30 KB request
# answered 28 MB. An operation may ask for the schema once, a few types by name, and each
# introspection field once below its parent (aliases of one introspection field are refused):
# then an answer is bounded by the schema's size, whatever the query.
MAX_SCHEMA_FIELDS = 1
MAX_TYPE_FIELDS = 10
MAX_INTROSPECTION_SELECTIONS = 5_000  # fields walked below __schema/__type before the query is refused


class _TooLarge(Exception):
    pass


class IntrospectionLimit(ASTValidationRule):
    """Refuses an operation that selects `__schema` more than once, `__type` more than
    MAX_TYPE_FIELDS times, or any field below them twice under one parent (by aliases), with the
    fragments spread where they are (as the executor merges them)."""

    def enter_operation_definition(self, node: OperationDefinitionNode, *_args):
        self.walked = 0
        try:
            root = self._collect([node.selection_set])
            for name, most in (("__schema", MAX_SCHEMA_FIELDS), ("__type", MAX_TYPE_FIELDS)):
                keys = [fields[0] for fields in root.values() if fields[0].name.value == name]
                if len(keys) > most:
                    times = "once" if most == 1 else f"at most {most} times"
                    self.report_error(
                        GraphQLError(
                            f"the operation selects {name} {len(keys)} times; an operation may select it {times}",
                            keys[most],
                        )
                    )
                    return
            for fields in root.values():
                if fields[0].name.value in ("__schema", "__type") and self._repeats(fields):
                    return
        except _TooLarge:
            self.report_error(
                GraphQLError(f"the introspection query selects more than {MAX_INTROSPECTION_SELECTIONS} fields", node)
            )

    def _collect(self, selection_sets) -> dict[str, list[FieldNode]]:
        """The fields of these selection sets by response key, fragments spread (each once, as the executor does)."""
        fields: dict[str, list[FieldNode]] = {}
        seen: set[str] = set()

        def add(selection_set) -> None:
            for selection in selection_set.selections if selection_set is not None else ():
                self.walked += 1
                if self.walked > MAX_INTROSPECTION_SELECTIONS:
                    raise _TooLarge
                if isinstance(selection, FieldNode):
                    key = (selection.alias or selection.name).value
                    fields.setdefault(key, []).append(selection)
                elif isinstance(selection, InlineFragmentNode):
                    add(selection.selection_set)
                elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                    seen.add(selection.name.value)
                    fragment = self.context.get_fragment(selection.name.value)
                    if fragment is not None:
                        add(fragment.selection_set)

        for selection_set in selection_sets:
            add(selection_set)
        return fields

    def _repeats(self, fields: list[FieldNode]) -> bool:
        """Whether below these (merged) fields an introspection field is selected under two response
        keys; reports the first."""
        children = self._collect([field.selection_set for field in fields])
        keys_by_name: dict[str, list[FieldNode]] = {}
        for key_fields in children.values():
            keys_by_name.setdefault(key_fields[0].name.value, []).append(key_fields[0])
        for name, keys in keys_by_name.items():
            if len(keys) > 1 and name != "__typename":
                self.report_error(
                    GraphQLError(
                        f"introspection selects {name} {len(keys)} times under one parent (by aliases):"
                        " select each introspection field once",
                        keys[1],
                    )
                )
                return True
        return any(self._repeats(key_fields) for key_fields in children.values())


def document_rules(max_depth: int, introspection: bool) -> tuple[type[ASTValidationRule], ...]:
    """The rules whose verdict depends on the query text alone: the spec's, the depth limit, introspection."""
    rules = (*specified_rules, depth_limit(max_depth), IntrospectionLimit)
    return rules if introspection else (*rules, IntrospectionDisabledRule)


class _Cost(CostValidator):
    """Ariadne's cost rule, with `limit: null` priced as the field's default, which it fetches (a
    null multiplier is dropped: such a field cost 1, and 900 of them ran as 900 REST calls), and
    without the selections `@skip` / `@include` leave out, which make no call (they were priced)."""

    def compute_node_cost(self, node, type_def, parent_multipliers=None):
        selection_set = None if isinstance(node, FragmentSpreadNode) else getattr(node, "selection_set", None)
        if selection_set is not None:
            kept = tuple(selection for selection in selection_set.selections if self._included(selection))
            if len(kept) < len(selection_set.selections):
                # A copy: the document is frozen (and the query cache's).
                node = replace(node, selection_set=SelectionSetNode(selections=kept))
        return super().compute_node_cost(node, type_def, parent_multipliers)

    def _included(self, selection) -> bool:
        """Whether the executor runs this selection: @skip(if: true) and @include(if: false) leave it
        out, with the request's variables (coerced, defaults included)."""
        for directive in selection.directives or ():
            definition = {"skip": GraphQLSkipDirective, "include": GraphQLIncludeDirective}.get(directive.name.value)
            if definition is not None:
                try:
                    condition = get_argument_values(definition, directive, self.variables)["if"]
                except (GraphQLError, KeyError):  # no verdict here: priced, as it may run
                    continue
                if condition is (definition is GraphQLSkipDirective):
                    return False
        return True

    def get_args_from_cost_map(self, node, type_name: str, field_args: dict):
        if type_name == "Query" and node.name.value in DEFAULT_LIMITS:
            field_args = {**field_args, "limit": list_price(field_args.get("limit"), DEFAULT_LIMITS[node.name.value])}
        return super().get_args_from_cost_map(node, type_name, field_args)


def list_price(limit: int | None, default: int) -> int:
    """What a list or page costs: its `limit` (`null`: the default, which it fetches), and at least a
    row read, as it is one REST call too. A `limit` below 1 (which the REST API refuses, after a call)
    costs a row read as well: it was dropped, and such a field cost 1."""
    return max(ROW_READ_COST, default if limit is None else limit)


def cost_limit(max_cost: int, variables: dict | None) -> type[ASTValidationRule]:
    """The cost rule for one request: a list size may come from the request's variables (coerced,
    so with the operation's defaults)."""

    class Cost(_Cost):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(
                context, maximum_cost=max_cost, default_complexity=1, variables=variables, cost_map=COST_MAP
            )

    return Cost
