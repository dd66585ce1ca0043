"""Parsed and validated documents, kept by query text: clients send the same few queries again and again."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    get_operation_ast,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values

from graphql_service.limits import cost_limit, document_rules

# Longer texts are checked on every request: a few huge distinct queries must not pin memory.
MAX_CACHED_QUERY_CHARS = 10_000


@dataclass(frozen=True)
class CheckedQuery:
    """A parsed document and the errors of every rule that reads its text alone."""

    document: DocumentNode
    errors: tuple[GraphQLError, ...]
    cost_checked: bool  # the cost verdict is among `errors`: one operation, declaring no variables


def _priced_alone(document: DocumentNode) -> bool:
    """The cost is the text's own: one operation, and no variable a list size or a @skip/@include could come from."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return len(operations) == 1 and not operations[0].variable_definitions


def _operation(document: DocumentNode, operation_name: str | None) -> DocumentNode | None:
    """The operation the request runs, with the fragments (only it is priced: the others do not
    run); None when the executor will refuse the choice (unknown, or several and no name)."""
    chosen = get_operation_ast(document, operation_name)
    if chosen is None:
        return None
    return DocumentNode(
        definitions=tuple(d for d in document.definitions if d is chosen or isinstance(d, FragmentDefinitionNode))
    )


class QueryCache:
    """A bounded LRU of checked queries for one schema and one set of limits (so one per app).

    The cost rule reads the request's variables, so a document that declares variables has its
    cost checked on every request; every other verdict is the text's and is kept.
    """

    def __init__(
        self,
        schema: GraphQLSchema,
        *,
        max_depth: int,
        max_cost: int,
        introspection: bool,
        size: int,
        max_tokens: int | None = None,
    ):
        self.schema = schema
        self.max_cost = max_cost
        self.max_tokens = max_tokens  # parsing stops past it: no rule ever walks a huge document
        self.rules = document_rules(max_depth, introspection)
        # lru_cache is thread-safe and keeps nothing when parse raises, so syntax errors are never kept.
        self._cached_check = functools.lru_cache(maxsize=size)(self._check)

    def _check(self, query: str) -> CheckedQuery:
        return self._verdict(self._parse(query))

    def _verdict(self, document: DocumentNode) -> CheckedQuery:
        errors = validate(self.schema, document, self.rules)
        cost_checked = not errors and _priced_alone(document)
        if cost_checked:
            errors = validate(self.schema, document, [cost_limit(self.max_cost, None)])
        return CheckedQuery(document, tuple(errors), cost_checked)

    def _parse(self, query: str) -> DocumentNode:
        return parse(query, max_tokens=self.max_tokens)

    def _keeps(self, query: str) -> bool:
        return len(query) <= MAX_CACHED_QUERY_CHARS

    def check(self, query: str, document: DocumentNode | None = None) -> CheckedQuery:
        """The checked query: kept by its text if short enough; `document` spares parsing a long one again."""
        if self._keeps(query):
            return self._cached_check(query)
        return self._verdict(document or self._parse(query))

    def errors(
        self,
        query: str,
        variables: dict | None,
        document: DocumentNode | None = None,
        operation_name: str | None = None,
    ) -> list[GraphQLError]:
        """Every validation error of the query sent with these variables; an invalid document's own
        errors alone (its cost would repeat them, or fail to compute). Only the operation that runs
        is priced, with its variables as the executor coerces them (defaults included)."""
        checked = self.check(query, document)
        if checked.cost_checked or checked.errors:
            return list(checked.errors)
        operation = _operation(checked.document, operation_name)
        if operation is None:
            return []  # the executor says which operation is missing
        definitions = operation.definitions[0].variable_definitions
        coerced = get_variable_values(self.schema, definitions, variables or {}) if definitions else None
        if isinstance(coerced, list):
            return []  # a variable that does not coerce: the executor refuses it by name, before any call
        values = coerced.coerced if coerced is not None else {}  # graphql-core 3.3's VariableValues
        try:
            return validate(self.schema, operation, [cost_limit(self.max_cost, values)])
        except (ArithmeticError, TypeError, ValueError) as exc:  # a multiplier the cost rule cannot read
            return [GraphQLError(f"the query's cost cannot be computed from its variables: {exc}")]

    def parser(self, _context: object, data: dict) -> DocumentNode:
        """Ariadne's `query_parser` hook."""
        query = data["query"]
        return self._cached_check(query).document if self._keeps(query) else self._parse(query)

    def validator(self, data: dict) -> Callable[..., list[GraphQLError]]:
        """Ariadne's `query_validator` hook for one request (Ariadne passes the rules, which are ours already)."""

        def validate_request(_schema: GraphQLSchema, document: DocumentNode, *_rules, **_options) -> list[GraphQLError]:
            return self.errors(data["query"], data.get("variables"), document, data.get("operationName"))

        return validate_request

    def info(self):
        """Hits, misses and size of the cache (functools' CacheInfo)."""
        return self._cached_check.cache_info()
