"""monitoring/statsd/mapping.yml applied the way statsd-exporter (v0.28, docker-compose.yaml) applies it.

statsd-exporter itself is not installable here (no Debian package, no Go toolchain), so this follows
its code (pkg/mapper, pkg/exporter): glob mappings first, the first in the file that matches the
name and the sample's type wins (`*` = one dot-separated field); only when none does, the regex
mappings in file order; the Prometheus name is the mapping's name, or the StatsD name with no
mapping, with every character Prometheus refuses made `_`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from testbed.servers import REPO

MAPPING_FILE = REPO / "monitoring" / "statsd" / "mapping.yml"
# A StatsD sample's type (the part after `|`) as statsd-exporter's match_metric_type names it:
# timers, histograms and distributions are observers (histograms here: observer_type histogram).
METRIC_TYPES = {"c": "counter", "g": "gauge", "ms": "observer", "h": "observer", "d": "observer"}
GLOB_TEMPLATE = re.compile(r"\$\{?([a-zA-Z0-9_$]+)\}?")  # pkg/mapper/fsm/formatter.go
REGEX_TEMPLATE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")  # Go's regexp.Expand: $1x is the group named 1x


def load_mappings() -> list[dict]:
    config = yaml.safe_load(MAPPING_FILE.read_text())
    match_type = config.get("defaults", {}).get("match_type", "glob")
    return [{"match_type": match_type, **mapping} for mapping in config["mappings"]]


@dataclass(frozen=True)
class Series:
    """What statsd-exporter makes of one StatsD name and type."""

    name: str  # the Prometheus name; "" when a drop mapping matched
    labels: dict[str, str]
    mapping: dict | None  # the mapping that matched; None: none did, the name is the StatsD one escaped


def escape(name: str) -> str:
    """pkg/mapper/escape.go: `_` for each character outside [a-zA-Z0-9_] (one for a run of dashes),
    and one before a leading digit."""
    escaped = re.sub(r"-+|[^a-zA-Z0-9_-]", "_", name)
    return "_" + escaped if escaped[:1].isdigit() else escaped


def _glob_captures(pattern: str, name: str) -> list[str] | None:
    wanted, fields = pattern.split("."), name.split(".")
    if len(wanted) != len(fields):
        return None
    captures = []
    for want, got in zip(wanted, fields, strict=True):
        if want == "*":
            captures.append(got)
        elif want != got:
            return None
    return captures


def _format_glob(template: str, captures: list[str]) -> str:
    def capture(match: re.Match) -> str:
        index = match.group(1)
        return captures[int(index) - 1] if index.isdigit() and 1 <= int(index) <= len(captures) else ""

    return GLOB_TEMPLATE.sub(capture, template)


def _format_regex(template: str, match: re.Match) -> str:
    def group(reference: re.Match) -> str:
        key = reference.group(1) or reference.group(2)
        try:
            return match.group(int(key) if key.isdigit() else key) or ""
        except IndexError:  # no such group: Go expands it to ""
            return ""

    return REGEX_TEMPLATE.sub(group, template)


def series(mappings: list[dict], name: str, statsd_type: str) -> Series:
    """The series statsd-exporter makes of a sample named `name` of type `statsd_type` (c, g, ms)."""
    metric_type = METRIC_TYPES[statsd_type]

    def applies(mapping: dict) -> bool:
        return mapping.get("match_metric_type") in (None, metric_type)

    for mapping in mappings:
        if mapping["match_type"] == "glob" and applies(mapping):
            captures = _glob_captures(mapping["match"], name)
            if captures is not None:
                return _result(mapping, lambda text, c=captures: _format_glob(text, c))
    for mapping in mappings:
        if mapping["match_type"] == "regex" and applies(mapping):
            match = re.search(mapping["match"], name)
            if match:
                return _result(mapping, lambda text, m=match: _format_regex(text, m))
    return Series(escape(name), {}, None)


def _result(mapping: dict, fill) -> Series:
    if mapping.get("action") == "drop":
        return Series("", {}, mapping)
    labels = {key: fill(str(value)) for key, value in (mapping.get("labels") or {}).items()}
    return Series(escape(fill(mapping["name"])), labels, mapping)
