"""Prometheus config and alert rules, checked by the real promtool (Debian's prometheus package)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml

from testbed.servers import REPO, require_program

PROMETHEUS = REPO / "monitoring" / "prometheus"
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_program("promtool", "Debian package prometheus; `make test` installs it when root")


def run(promtool: str, *args: str) -> str:
    result = subprocess.run([promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.local.yml"])
def test_configs_and_their_rule_files_are_valid(promtool, config):
    assert "SUCCESS" in run(promtool, "check", "config", config)


def test_alert_rules_pass_their_unit_tests(promtool):
    assert "SUCCESS" in run(promtool, "test", "rules", "tests/platform_test.yml")


def test_every_alert_is_camel_case_with_severity_summary_description_and_a_unit_test():
    rules = [
        r for g in yaml.safe_load((PROMETHEUS / "rules" / "platform.yml").read_text())["groups"] for r in g["rules"]
    ]
    tested = (PROMETHEUS / "tests" / "platform_test.yml").read_text()
    for rule in rules:
        name = rule["alert"]
        assert name[0].isupper() and "_" not in name, name
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert {"summary", "description"} <= set(rule["annotations"]), name
        assert f"alertname: {name}\n" in tested, f"{name} has no promtool unit test"


def _readme_paragraph(starts: str) -> str:
    """The README's list item that starts with `starts`, up to the next item."""
    text = (REPO / "README.md").read_text()
    begin = text.index(starts)
    end = text.find("\n- ", begin)
    return text[begin : end if end != -1 else None]


def test_the_readme_names_every_alert_and_every_one_make_up_cannot_fire():
    """An outside reader found alerts missing from the README's list (SourceRowsNotApplied,
    KafkaBrokerUnreachable), and a StatsD-fed one missing from what stays silent under make up."""
    rules = [
        rule
        for path in sorted((PROMETHEUS / "rules").rglob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    listed = _readme_paragraph("`rules/platform.yml` (")
    assert [r["alert"] for r in rules if not re.search(rf"\b{r['alert']}\b", listed)] == []
    silent = _readme_paragraph("**What a `make up` Prometheus does not have**")
    statsd_fed = [r["alert"] for r in rules if re.search(r"\b(airflow|base_sync|statsd_exporter)_\w+", r["expr"])]
    assert statsd_fed and [name for name in statsd_fed if not re.search(rf"\b{name}\b", silent)] == []


# statsd-exporter makes a series at its first sample (Airflow sends e.g. a failed run's counter only
# when a run fails), so increase() on it alone misses the first rise. increase() on a StatsD-fed
# series must be paired with its "new in the window" twin: `x unless x offset <window>`, guarded by
# "x appeared while its target was scraped": fewer samples of x in the window than successful
# scrapes of its target. A Prometheus that has scraped for less than the window sees every series
# as new; without the guard it would count each counter's whole value, and the former guard
# `up offset <window> == 1` dropped a genuinely new series in that time.
STATSD_INCREASE = re.compile(r"increase\(((?:airflow|base_sync)_\w+(?:\{[^}]*\})?)\[(\$?\w+)\]\)")


def new_series_uncounted(expr: str) -> list[str]:
    def guarded(selector: str, window: str) -> bool:
        s, w = re.escape(selector), re.escape(window)
        return bool(
            re.search(
                rf"{s}\s+unless\s+{s}\s+offset\s+{w}[\s)]*and\s+\(\s*count_over_time\({s}\[{w}\]\)\s+"
                rf"<\s+on \(job, instance\) group_left sum_over_time\(up\[{w}\]\)\s*\)",
                expr,
            )
        )

    return [
        f"increase({selector}[{window}])"
        for selector, window in STATSD_INCREASE.findall(expr)
        if not guarded(selector, window)
    ]


def test_every_alert_on_a_statsd_counter_counts_a_series_new_in_its_window():
    rules = [
        r for g in yaml.safe_load((PROMETHEUS / "rules" / "platform.yml").read_text())["groups"] for r in g["rules"]
    ]
    assert [(r["alert"], new_series_uncounted(r["expr"])) for r in rules if new_series_uncounted(r["expr"])] == []
    assert new_series_uncounted("sum(increase(base_sync_dead_letters_total[15m])) > 0")  # the check checks
    old_guard = (
        "sum((base_sync_dead_letters_total unless base_sync_dead_letters_total offset 15m)"
        " and on (job, instance) (up offset 15m == 1) or increase(base_sync_dead_letters_total[15m]) > 0) > 0"
    )
    assert new_series_uncounted(old_guard)  # missed a new series while Prometheus was younger than 15m


def test_scrape_jobs_are_named_after_the_compose_services():
    jobs = {job["job_name"] for job in yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]}
    assert jobs <= set(COMPOSE["services"])


def test_service_not_discovered_watches_every_dns_discovered_job_and_make_up_scrapes_them_always(tmp_path):
    """With no replica running a DNS-discovered job has no target and no up series: ServiceDown is
    blind there, ServiceNotDiscovered is not. make up scrapes the same jobs at fixed addresses, so
    their up series always exist there and it never fires."""
    (rule,) = [
        r
        for g in yaml.safe_load((PROMETHEUS / "rules" / "platform.yml").read_text())["groups"]
        for r in g["rules"]
        if r["alert"] == "ServiceNotDiscovered"
    ]
    scrape_configs = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
    discovered = {job["job_name"] for job in scrape_configs if "dns_sd_configs" in job}
    assert discovered and set(re.findall(r'absent\(up\{job="([\w-]+)"\}\)', rule["expr"])) == discovered
    assert discovered <= set(jobs_of(make_up_config(tmp_path, **MAKE_UP)))


def make_up_config(tmp_path, **env: str) -> dict:
    """The config `make up` writes (scripts/prometheus_config.py), with these addresses set."""
    output = tmp_path / "prometheus.yml"
    base = {k: v for k, v in os.environ.items() if not k.endswith(("_BIND", "_ADDRESS"))}
    subprocess.run(
        [sys.executable, "scripts/prometheus_config.py", "monitoring/prometheus/prometheus.local.yml", str(output)],
        cwd=REPO,
        env={**base, **env},
        check=True,
        capture_output=True,
    )
    return yaml.safe_load(output.read_text())


def jobs_of(config: dict) -> dict[str, list[str]]:
    return {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}


MAKE_UP = {"PROMETHEUS_BIND": "127.0.0.1:9190", "API_BIND": "127.0.0.1:5100", "GRAPHQL_BIND": "127.0.0.1:5101"}


def test_make_ups_config_scrapes_only_what_make_up_started(tmp_path):
    # A SQLite Base A: no relay; and make up never starts a statsd-exporter. A job for either
    # would stay `up == 0` and fire ServiceDown on a healthy platform.
    assert jobs_of(make_up_config(tmp_path, **MAKE_UP)) == {
        "prometheus": ["127.0.0.1:9190"],
        "api": ["127.0.0.1:5100"],
        "graphql": ["127.0.0.1:5101"],
    }
    with_relay = jobs_of(make_up_config(tmp_path, **MAKE_UP, RELAY_ADDRESS="127.0.0.1:9205"))
    assert with_relay["relay"] == ["127.0.0.1:9205"] and "statsd-exporter" not in with_relay
    yours = jobs_of(make_up_config(tmp_path, **MAKE_UP, STATSD_EXPORTER_ADDRESS="127.0.0.1:9102"))
    assert yours["statsd-exporter"] == ["127.0.0.1:9102"] and "relay" not in yours


def test_make_ups_config_is_valid_and_finds_the_rules(promtool, tmp_path):
    make_up_config(tmp_path, **MAKE_UP, RELAY_ADDRESS="127.0.0.1:9205")
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "platform.yml" in result.stdout, result.stdout + result.stderr
    # One API and one GraphQL process: compose's replica counts would fire ServiceReplicasMissing.
    assert "replicas.yml" not in result.stdout, result.stdout


def test_the_expected_replicas_are_the_ones_compose_runs():
    """ServiceReplicasMissing compares the targets found with rules/compose/replicas.yml: a killed
    replica leaves Docker's DNS, so its up series goes instead of reading 0 (ServiceDown is blind)."""
    groups = yaml.safe_load((PROMETHEUS / "rules" / "compose" / "replicas.yml").read_text())["groups"]
    expected = {
        r["labels"]["job"]: r["expr"] for g in groups for r in g["rules"] if r["record"] == "job:replicas:expected"
    }
    scrape_configs = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
    discovered = {job["job_name"] for job in scrape_configs if "dns_sd_configs" in job}
    assert expected == {job: f"vector({COMPOSE['services'][job]['deploy']['replicas']})" for job in discovered}
    assert "rules/compose/*.yml" in yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["rule_files"]


def test_the_gateway_is_scraped_on_its_internal_metrics_port():
    """The gateway is the only way in and the pipelines' way to the REST API: killed, it raised no
    alert, as no job scraped it (ServiceDown watches `up`)."""
    scrape_configs = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
    (gateway,) = [job for job in scrape_configs if job["job_name"] == "gateway"]
    ((host, port),) = [target.split(":") for c in gateway["static_configs"] for target in c["targets"]]
    assert host == "gateway" and f"listen {port};" in (REPO / "deploy" / "gateway" / "gateway.conf").read_text()
    assert not any(published.startswith(f"{port}:") for published in COMPOSE["services"]["gateway"]["ports"])


def _exposition(service: str, tmp_path) -> str:
    """What a scrape of the service reads, after one request of each kind it counts."""
    if service == "relay":
        from prometheus_client import generate_latest

        from base_sync.relay import REGISTRY

        return generate_latest(REGISTRY).decode()
    if service == "api":
        from api_service import create_app, migrate
        from api_service.settings import ApiSettings

        url = f"sqlite:///{tmp_path}/base_b.sqlite"
        migrate.upgrade(url)
        client = create_app(ApiSettings(database_url=url, tokens=("t" * 20,))).test_client()
        client.get("/articles")
        client.post("/articles/bulk", json=[], headers={"Authorization": "Bearer " + "t" * 20})
        return client.get("/metrics").data.decode()
    from graphql_service import create_app
    from graphql_service.settings import GraphQLSettings
    from testbed.servers import free_port

    client = create_app(GraphQLSettings(rest_api_url=f"http://127.0.0.1:{free_port()}", timeout=1)).test_client()
    client.post("/graphql", json={"query": "{ ping getArticles(limit: 1) { id } }"})
    return client.get("/metrics").data.decode()


@pytest.mark.parametrize("service", ["api", "graphql", "relay"])
def test_every_services_metrics_pass_promtools_lint(promtool, service, tmp_path):
    exposition = _exposition(service, tmp_path)
    assert "# TYPE" in exposition
    result = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


# The Kafka exporter (compose's kafka-exporter) and statsd-exporter cannot run here: the series the
# rules read from them (statsd-exporter's own, beside those its mapping makes).
KAFKA_EXPORTER = {"kafka_consumergroup_lag"}
STATSD_EXPORTER = {"statsd_exporter_events_conflict_total"}
RULE_METRIC = re.compile(r"\b(?:airflow|base_sync|api|graphql|relay|process|kafka|statsd_exporter)_[a-z0-9_]+")


def test_every_metric_an_alert_reads_is_one_a_service_or_the_statsd_mapping_produces(tmp_path):
    """An alert on a misspelled series has no data and never fires, as silent as no alert."""
    mapping = yaml.safe_load((REPO / "monitoring" / "statsd" / "mapping.yml").read_text())["mappings"]
    # A mapping's name may hold a captured field ($1): it matches any word there.
    mapped = [
        re.compile("[a-z_]+".join(re.escape(part) for part in re.split(r"\$\d+", m["name"])))
        for m in mapping
        if m.get("action") != "drop"
    ]
    served = set()
    for service in ("api", "graphql", "relay"):
        (tmp_path / service).mkdir()
        exposition = _exposition(service, tmp_path / service)
        # A labelled series with no child yet has only its HELP line (the relay's per-table ones).
        served |= {re.split(r"[{ ]", line.removeprefix("# HELP "))[0] for line in exposition.splitlines() if line}
    rules = [
        r for g in yaml.safe_load((PROMETHEUS / "rules" / "platform.yml").read_text())["groups"] for r in g["rules"]
    ]
    unknown = [
        (rule["alert"], metric)
        for rule in rules
        for metric in RULE_METRIC.findall(rule["expr"])
        if metric not in served | KAFKA_EXPORTER | STATSD_EXPORTER
        and not any(p.fullmatch(re.sub(r"_(bucket|count|sum)$", "", metric)) for p in mapped)
    ]
    assert unknown == []
    assert "process_start_time_seconds" in served  # the relay's restarts (RelayRestarting)
