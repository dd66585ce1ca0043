"""The platform in a real browser: headless Chromium (Debian's package) driven by Playwright.

It opens the REST API's Swagger UI (`/docs`) and finds every operation of the OpenAPI document, signs
into the Airflow UI, finds both DAGs and a successful `base_a_to_base_b` run, then opens GraphiQL and
runs a query written as the seed system's clients write it. A full-page screenshot is kept after
every step (also when a step fails) in `$TEST_ARTIFACTS/browser` (default `test-artifacts/browser`,
git-ignored).

GraphiQL's page loads its code and styles from the GraphQL service itself (GraphiQL 3's UMD build,
vendored in graphql_service/static/graphiql/), and /docs loads Swagger UI 5 from the API: a request
to any other host fails the test.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from testbed.platform import Platform
from testbed.servers import REPO, require_program

# Without the background-networking flags Chromium's own connections are refused by a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 90_000  # two busy cores: generous explicit waits, never sleeps
DAGS = ("base_a_to_base_b", "base_a_events")
QUERY = "{ getEmployees(limit: 5) { id firstName } }"  # the seed system's list shape
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", REPO / "test-artifacts")) / "browser"

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    executable = require_program("chromium", "Debian package chromium; `make test` installs it when root")
    with sync_playwright() as playwright:
        # A plain launch (a fresh temporary profile) of Debian's Chromium: Playwright downloads no browser.
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, request) -> Iterator[Page]:
    """A fresh browser context per test; its last screen is kept even when the test failed."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        try:
            shot(page, f"{request.node.name}-last")
        finally:
            context.close()


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def click_to(page: Page, link, url: re.Pattern, tries: int = 3) -> None:
    """Click a link and wait for the page it leads to. Again if the click led nowhere: a click while
    the UI was still rendering the page (the DAG page under a loaded machine) once left the page
    where it was for the 90 s the wait took."""
    for attempt in range(1, tries + 1):
        if attempt > 1 and url.search(page.url):  # the last click's page came after the wait
            return
        link.click()
        try:
            page.wait_for_url(url, timeout=30_000)
            return
        except PlaywrightTimeoutError:
            if attempt == tries:
                raise


def dag_link(page: Page, dag_id: str):
    return page.get_by_role("link", name=dag_id, exact=True).and_(page.locator(f'[href$="/dags/{dag_id}"]'))


def requests_to_other_hosts(page: Page, base_url: str) -> list[str]:
    """The URLs of every request the page makes to a host other than `base_url`'s, filled as it goes."""
    offsite: list[str] = []
    host = urlsplit(base_url).netloc
    page.on("request", lambda request: offsite.append(request.url) if urlsplit(request.url).netloc != host else None)
    return offsite


def console_errors(page: Page) -> list[str]:
    """The errors the page's console shows (a failed load of any resource too), filled as it goes."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def test_api_docs_list_every_operation(platform: Platform, page: Page) -> None:
    document = requests.get(f"{platform.api_url}/openapi.json", timeout=30).json()
    assert document["openapi"].startswith("3.1")  # what Swagger UI 4 could not render
    operations = [
        (method, path) for path, item in document["paths"].items() for method in item if method in HTTP_METHODS
    ]
    offsite = requests_to_other_hosts(page, platform.api_url)
    errors = console_errors(page)

    # 0. Swagger UI renders the document: its title, and each operation as a block with its method and path.
    page.goto(f"{platform.api_url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text(document["info"]["title"])
    blocks = page.locator(".opblock")
    expect(blocks).to_have_count(len(operations))
    for method, path in operations:
        block = page.locator(f".opblock-{method}").filter(
            has=page.locator(f'.opblock-summary-path[data-path="{path}"]')
        )
        expect(block).to_have_count(1)
        expect(block.locator(".opblock-summary-method")).to_have_text(method.upper())
    expect(page.get_by_text("Unable to render this definition")).to_have_count(0)
    expect(page.locator(".swagger-ui .errors-wrapper")).to_have_count(0)
    shot(page, "00-api-docs")
    assert not offsite, f"/docs asked another host: {sorted(set(offsite))}"
    assert not errors, f"/docs' console showed errors: {errors}"


def test_airflow_ui_shows_both_dags_and_a_successful_run(platform: Platform, page: Page) -> None:
    # A run that succeeded, as the REST API sees it; `make up` waited for one.
    runs = platform.airflow("GET", "/dags/base_a_to_base_b/dagRuns?state=success&order_by=-run_after&limit=1")
    assert runs["dag_runs"], "make up returned without a successful base_a_to_base_b run"
    run_id = runs["dag_runs"][0]["dag_run_id"]

    # 1. Sign in: the UI sends an anonymous visitor to SimpleAuthManager's login page.
    page.goto(platform.airflow_url)
    page.wait_for_url(re.compile(r"/auth/login"))
    expect(page.get_by_text("Sign into Airflow")).to_be_visible()
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(platform.admin_password)
    shot(page, "01-airflow-login")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)
    # The home page, filled from the REST API with the session's token: the stats and the health badges.
    expect(page.get_by_role("heading", name="Welcome", exact=True)).to_be_visible()
    expect(page.get_by_text("Active Dags", exact=True)).to_be_visible()
    expect(page.get_by_text("Scheduler", exact=True)).to_be_visible()
    shot(page, "02-airflow-home")

    # 2. The DAG list shows both DAGs, each a link to its page (a running task's links bear the DAG id too).
    click_to(page, page.get_by_test_id("nav-dags-link"), re.compile(r"/dags/?$"))
    for dag_id in DAGS:
        expect(dag_link(page, dag_id)).to_be_visible()
    shot(page, "03-airflow-dag-list")

    # 3. The batch DAG's runs: the run that succeeded is listed with the state badge "Success".
    click_to(page, dag_link(page, "base_a_to_base_b"), re.compile(r"/dags/base_a_to_base_b/?$"))
    click_to(page, page.get_by_role("link", name="Runs", exact=True), re.compile(r"/dags/base_a_to_base_b/runs/?$"))
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=run_id, exact=True))
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("table-cell-state")).to_have_text("Success")
    shot(page, "04-airflow-successful-run")


def test_graphiql_runs_a_query(platform: Platform, page: Page) -> None:
    expected = platform.graphql(QUERY)["getEmployees"]
    assert expected, "Base B has no employees to show"

    offsite = requests_to_other_hosts(page, platform.graphql_url)
    errors = console_errors(page)

    # 4. GraphiQL renders, every file from the service, and its schema (introspection) loads: the docs list the roots.
    page.goto(f"{platform.graphql_url}/graphql")
    expect(page).to_have_title("Base B GraphQL")
    expect(page.locator(".graphiql-container")).to_be_visible()
    editor = page.get_by_label("Query Editor")
    expect(editor.locator(".CodeMirror")).to_be_visible()
    page.get_by_role("button", name="Show Documentation Explorer").click()
    docs = page.locator(".graphiql-doc-explorer")
    expect(docs.get_by_text("Root Types")).to_be_visible()
    expect(docs.get_by_text("Employee", exact=True)).to_be_visible()
    expect(page.get_by_text("Error fetching schema")).to_have_count(0)
    shot(page, "05-graphiql-loaded")

    # 5. Replace the default text with the query and run it; the result pane shows the employees.
    editor.locator(".CodeMirror").click()
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(QUERY)
    expect(editor.locator(".CodeMirror")).to_contain_text("getEmployees")
    page.get_by_role("button", name=re.compile(r"^Execute query")).click()
    result = page.get_by_label("Result Window")
    expect(result).to_contain_text('"getEmployees"')
    expect(result).to_contain_text('"firstName"')
    for employee in expected:
        expect(result).to_contain_text(f'"{employee["firstName"]}"')
    expect(result).not_to_contain_text('"errors"')
    shot(page, "06-graphiql-result")
    assert not offsite, f"GraphiQL's page asked another host: {sorted(set(offsite))}"
    assert not errors, f"GraphiQL's console showed errors: {errors}"
