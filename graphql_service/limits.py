"""Query limits: a maximum selection depth and a maximum cost (list sizes multiply), and the rules that apply them."""

from __future__ import annotations

from ariadne.validation.introspection_disabled import IntrospectionDisabledRule
from ariadne.validation.query_cost import CostValidator
from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    ValidationContext,
    specified_rules,
)

from graphql_service.entity_schema import ENTITY_NAMES, LIST_LIMIT, PAGE_LIMIT

# Root list and page fields cost per requested item: `limit` (its default too) multiplies what is
# selected below them. Every entity has all of these, so a new entity cannot silently escape the limit.
# A row read is one REST call and a write one REST call that changes Base B: priced so that aliases
# cannot turn one request into thousands of calls (at the default maximum, 200 reads or 40 writes).
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


def document_rules(max_depth: int, introspection: bool) -> tuple[type[ASTValidationRule], ...]:
    """The rules whose verdict depends on the query text alone: the spec's, the depth limit, introspection."""
    rules = (*specified_rules, depth_limit(max_depth))
    return rules if introspection else (*rules, IntrospectionDisabledRule)


class _Cost(CostValidator):
    """Ariadne's cost rule, with `limit: null` priced as the field's default, which it fetches (a
    null multiplier is dropped: such a field cost 1, and 900 of them ran as 900 REST calls)."""

    def get_args_from_cost_map(self, node, type_name: str, field_args: dict):
        if "limit" in field_args and field_args["limit"] is None and node.name.value in DEFAULT_LIMITS:
            field_args = {**field_args, "limit": DEFAULT_LIMITS[node.name.value]}
        return super().get_args_from_cost_map(node, type_name, field_args)


def cost_limit(max_cost: int, variables: dict | None) -> type[ASTValidationRule]:
    """The cost rule for one request: a list size may come from the request's variables (coerced,
    so with the operation's defaults)."""

    class Cost(_Cost):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(
                context, maximum_cost=max_cost, default_complexity=1, variables=variables, cost_map=COST_MAP
            )

    return Cost
