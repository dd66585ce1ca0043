"""The cache of parsed and validated queries: same documents, same verdicts, bounded, one per app."""

from __future__ import annotations

import pytest
from graphql import GraphQLError, parse

from graphql_service import SCHEMA, create_app, query_cache
from graphql_service.query_cache import MAX_CACHED_QUERY_CHARS, QueryCache
from graphql_service.settings import GraphQLSettings
from testbed.servers import free_port

PAGE = "{ getArticlesPage(limit: 10) { items { id title } } }"
PAGE_OF = "query($n: Int) { getArticlesPage(limit: $n) { items { id title } } }"


def make_cache(**overrides) -> QueryCache:
    options = {"max_depth": 8, "max_cost": 100, "introspection": True, "size": 16} | overrides
    return QueryCache(SCHEMA, **options)


def messages(errors: list[GraphQLError]) -> list[str]:
    return [error.message for error in errors]


def test_the_same_text_gives_the_same_document_parsed_once():
    cache = make_cache()
    first = cache.check(PAGE)
    assert cache.check(PAGE) is first
    assert cache.parser(None, {"query": PAGE}) is first.document
    assert (cache.info().misses, cache.info().hits) == (1, 2)
    assert cache.errors(PAGE, None) == []


def test_a_query_that_fails_validation_fails_every_time():
    cache = make_cache()
    errors = [messages(cache.errors("{ nope }", None)) for _ in range(3)]
    assert errors[0] and errors == [errors[0]] * 3
    assert cache.info().currsize == 1


def test_an_app_answers_a_kept_refusal_the_same_way_each_time():
    app = create_app(GraphQLSettings(rest_api_url=f"http://127.0.0.1:{free_port()}", max_cost=100))
    expensive = {"query": "{ getArticlesPage(limit: 1000) { nextAfter } }"}
    answers = [app.test_client().post("/graphql", json=expensive) for _ in range(2)]
    assert [answer.status_code for answer in answers] == [200, 200] and answers[0].json == answers[1].json
    assert answers[0].json["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    kept = app.extensions["query_cache"].check(expensive["query"]).errors[0]
    assert "code" not in kept.extensions  # the formatter wrote to a copy


def test_limits_and_the_introspection_switch_still_apply_to_kept_queries():
    deep = "{ getArticlesPage { items { id } } }"
    introspection = "{ __schema { queryType { name } } }"
    expensive = "{ getArticlesPage(limit: 1000) { nextAfter } }"
    cache = make_cache(max_depth=2, introspection=False)
    for _ in range(2):
        assert "limit is 2" in messages(cache.errors(deep, None))[0]
        assert "introspection" in " ".join(messages(cache.errors(introspection, None))).lower()
        assert "maximum cost of 100" in messages(cache.errors(expensive, None))[0]
    assert cache.info().hits == 3


def test_the_cost_of_a_query_with_variables_is_checked_for_each_request():
    cache = make_cache()
    assert cache.errors(PAGE_OF, {"n": 10}) == []
    assert "maximum cost of 100" in messages(cache.errors(PAGE_OF, {"n": 5000}))[0]
    assert cache.errors(PAGE_OF, {"n": 10}) == []
    assert cache.info().currsize == 1


def test_syntax_errors_are_raised_every_time_and_never_kept():
    cache = make_cache()
    for _ in range(2):
        with pytest.raises(GraphQLError, match="Syntax Error"):
            cache.check("{ getArticlesPage(")
    assert cache.info().currsize == 0


def test_the_cache_is_bounded_and_evicts_the_least_recently_used():
    cache = make_cache(size=2)
    queries = [f'{{ getArticle(id: "{n}") {{ id }} }}' for n in range(3)]
    for query in queries:
        cache.check(query)
    assert cache.info().currsize == 2
    cache.check(queries[0])  # evicted by the third: parsed again
    assert cache.info().misses == 4


def test_a_size_of_zero_checks_every_request():
    cache = make_cache(size=0)
    assert cache.check(PAGE) is not cache.check(PAGE)
    assert cache.errors(PAGE, None) == []


def test_long_queries_are_checked_but_not_kept_and_parsed_once_a_request(monkeypatch):
    parsed = []
    monkeypatch.setattr(query_cache, "parse", lambda text, **options: parsed.append(text) or parse(text, **options))
    padded = PAGE + " " * MAX_CACHED_QUERY_CHARS
    cache = make_cache()
    document = cache.parser(None, {"query": padded})
    assert cache.validator({"query": padded})(SCHEMA, document) == []
    assert len(parsed) == 1
    assert cache.errors("{ nope }" + " " * MAX_CACHED_QUERY_CHARS, None)
    assert cache.info().currsize == 0


def test_each_app_keeps_verdicts_for_its_own_limits():
    deep = {"query": "{ getArticlesPage { items { id } } }"}
    nowhere = f"http://127.0.0.1:{free_port()}"
    shallow_app = create_app(GraphQLSettings(rest_api_url=nowhere, max_depth=2)).test_client()
    default_app = create_app(GraphQLSettings(rest_api_url=nowhere, timeout=1)).test_client()
    for _ in range(2):
        refused = shallow_app.post("/graphql", json=deep)
        assert refused.status_code == 200 and "limit is 2" in refused.json["errors"][0]["message"]
        # Valid here: it reaches the (absent) REST API instead.
        answer = default_app.post("/graphql", json=deep).json
        assert answer["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
