"""Query limits: a maximum selection depth and a maximum cost (list sizes multiply), and the rules that apply them."""

from __future__ import annotations

from ariadne.validation import cost_validator
from ariadne.validation.introspection_disabled import IntrospectionDisabledRule
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

# Root list and page fields cost per requested item: `limit` (its default too) multiplies what is selected below them.
COST_MAP = {
    "Query": {
        "getArticles": {"complexity": 1, "multipliers": ["limit"]},
        "getEmployees": {"complexity": 1, "multipliers": ["limit"]},
        "getArticlesPage": {"complexity": 1, "multipliers": ["limit"]},
        "getEmployeesPage": {"complexity": 1, "multipliers": ["limit"]},
    }
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

        def enter_operation_definition(self, node: OperationDefinitionNode, *_args):
            depth = self._depth(node.selection_set, 0, set())
            if depth > max_depth:
                self.report_error(GraphQLError(f"the query is {depth} levels deep; the limit is {max_depth}", node))

        def _depth(self, selection_set, depth: int, seen: set[str]) -> int:
            if selection_set is None:
                return depth
            deepest = depth
            for selection in selection_set.selections:
                if isinstance(selection, FieldNode):
                    if selection.name.value.startswith("__"):
                        continue
                    deepest = max(deepest, self._depth(selection.selection_set, depth + 1, seen))
                elif isinstance(selection, InlineFragmentNode):
                    deepest = max(deepest, self._depth(selection.selection_set, depth, seen))
                elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                    fragment = self.fragments.get(selection.name.value)
                    if fragment is not None:
                        deepest = max(deepest, self._depth(fragment.selection_set, depth, seen | {fragment.name.value}))
            return deepest

    return DepthLimit


def document_rules(max_depth: int, introspection: bool) -> tuple[type[ASTValidationRule], ...]:
    """The rules whose verdict depends on the query text alone: the spec's, the depth limit, introspection."""
    rules = (*specified_rules, depth_limit(max_depth))
    return rules if introspection else (*rules, IntrospectionDisabledRule)


def cost_limit(max_cost: int, variables: dict | None) -> type[ASTValidationRule]:
    """The cost rule for one request: a list size may come from the request's variables."""
    return cost_validator(maximum_cost=max_cost, default_complexity=1, variables=variables, cost_map=COST_MAP)
