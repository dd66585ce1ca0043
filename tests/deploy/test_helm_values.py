"""deploy/helm/values.yaml is well-formed YAML with the keys docs/scaling.md relies on.

Nothing more: no Kubernetes cluster and no `helm` here, so the file was never installed or rendered.
"""

from __future__ import annotations

from pathlib import Path

import yaml

VALUES = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "values.yaml"


def test_values_parse_and_name_the_executor_and_image():
    values = yaml.safe_load(VALUES.read_text())
    assert values["executor"] == "KubernetesExecutor"
    assert values["images"]["airflow"]["repository"] == values["images"]["pod_template"]["repository"]
    assert values["config"]["core"]["dags_folder"] == "/app/dags"


def test_secrets_come_from_named_secrets_not_values():
    values = yaml.safe_load(VALUES.read_text())
    for key in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert values[key], key
    assert values["data"]["metadataSecretName"]
    for inline in ("fernetKey", "apiSecretKey", "jwtSecret", "webserverSecretKey"):
        assert inline not in values, f"{inline} would put a secret in the values file"
    env_from = yaml.safe_load(values["extraEnvFrom"])  # the chart takes a templated string
    assert {"secretRef": {"name": "baseab-airflow-connections"}} in env_from


def test_task_pods_have_resources():
    values = yaml.safe_load(VALUES.read_text())
    resources = values["workers"]["resources"]
    assert resources["requests"]["memory"] and resources["limits"]["memory"]


CRONJOB = VALUES.parent / "housekeeping-cronjob.yaml"
REPO = VALUES.parents[2]


def test_the_housekeeping_cronjob_runs_composes_round_daily_with_the_same_image_and_horizons():
    """Review: the Helm install had no housekeeping at all (compose's `housekeeping` service alone
    ran Airflow's db clean and Base B's purge): its metadata database and Base B grew for ever."""
    cron = yaml.safe_load(CRONJOB.read_text())
    values = yaml.safe_load(VALUES.read_text())
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())["services"]["housekeeping"]
    assert cron["apiVersion"] == "batch/v1" and cron["kind"] == "CronJob"
    minute, hour, *every_day = cron["spec"]["schedule"].split()
    assert minute.isdigit() and hour.isdigit() and every_day == ["*", "*", "*"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] == 7200 and "HOUSEKEEPING_ROUND_SECONDS:-7200" in str(compose["environment"])
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (values["uid"], values["gid"])
    (container,) = pod["containers"]
    image = values["images"]["airflow"]
    assert container["image"] == f"{image['repository']}:{image['tag']}"
    # compose's round, once: the script the image carries (test_compose checks the COPY).
    assert container["command"] == [*compose["command"], "--once"]
    env = {item["name"]: item for item in container["env"]}
    for horizon in ("KEEP_DAYS", "PURGE_DAYS"):
        default = compose["environment"][horizon].split(":-")[1].rstrip("}")
        assert env[horizon]["value"] == default, horizon
    metadata = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]["valueFrom"]["secretKeyRef"]
    assert metadata == {"name": values["data"]["metadataSecretName"], "key": "connection"}
    base_b = env["API_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    readme = (VALUES.parent / "README.md").read_text()
    assert f"| `{base_b['name']}` | `{base_b['key']}` |" in readme, "the README's secrets table names it"
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == env["AIRFLOW_HOME"]["value"] + "/logs" and values["logs"]["persistence"]["enabled"]
