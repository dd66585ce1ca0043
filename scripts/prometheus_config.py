"""Write `make up`'s Prometheus config from monitoring/prometheus/prometheus.local.yml.

Usage: prometheus_config.py TEMPLATE OUTPUT (addresses from the environment, see below)

It scrapes only what `make up` started: a target that never runs would keep `up == 0` and fire
ServiceDown on a healthy platform. The relay runs only with a MySQL/MariaDB Base A (RELAY_HTTP_PORT
set by up.sh when it starts it); `make up` runs no statsd-exporter, so its job is kept only when
STATSD_EXPORTER_ADDRESS names one you run (host:port of its /metrics).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

# job -> the environment variable holding its address; an unset or empty one drops the job.
ADDRESSES = {
    "prometheus": "PROMETHEUS_BIND",
    "api": "API_BIND",
    "graphql": "GRAPHQL_BIND",
    "relay": "RELAY_ADDRESS",
    "statsd-exporter": "STATSD_EXPORTER_ADDRESS",
}


def local_config(template: dict, env: dict[str, str], rules_dir: str) -> dict:
    jobs = []
    for job in template["scrape_configs"]:
        address = env.get(ADDRESSES.get(job["job_name"], ""), "")
        if address:
            jobs.append({**job, "static_configs": [{"targets": [address]}]})
    return {**template, "rule_files": [f"{rules_dir}/*.yml"], "scrape_configs": jobs}


def main(template_file: str, output_file: str) -> int:
    template = yaml.safe_load(Path(template_file).read_text())
    rules_dir = str(Path(template_file).resolve().parent / "rules")
    config = local_config(template, dict(os.environ), rules_dir)
    Path(output_file).write_text(yaml.safe_dump(config, sort_keys=False))
    print(", ".join(job["job_name"] for job in config["scrape_configs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
