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
