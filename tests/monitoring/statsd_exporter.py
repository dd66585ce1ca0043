"""monitoring/statsd/mapping.yml applied the way statsd-exporter v0.28.0 (docker-compose.yaml) applies it.

statsd-exporter itself is not installable here (no Debian package, no Go toolchain), so this ports
its code, github.com/prometheus/statsd_exporter at v0.28.0:

- pkg/mapper/mapper.go (InitFromYAMLString, GetMapping): the glob mappings go into a state machine
  (pkg/mapper/fsm/fsm.go); only when it finds none for the name and the sample's type are the regex
  mappings tried, in file order. The Prometheus name is the mapping's name, or the StatsD name with
  no mapping, with every character Prometheus refuses made `_` (pkg/mapper/escape.go).
- fsm.go AddState: a glob adds one state per dot-separated field, under a root for each metric type
  it applies to. It sets its mapping as the result only on a final state it creates: a glob ending
  on a state that an earlier, longer glob already passed through (`a.b` after `a.b.*`), or on an
  earlier identical glob's, never matches. Every glob ending on a state sets that state's priority
  to its own index, whether it set the result or not.
- fsm.go GetMapping (ordering on, the default: it backtracks): every path through the states that
  spends exactly the name's fields is tried, the field itself and `*` (one field, captured) at each
  step; of the final states with a result so reached, the lowest priority wins. So, of the globs
  that took effect, the first in the file that matches wins, whatever their lengths or wildcards
  (unless an ineffective glob ending on its state moved it down: StatsdMapper.ineffective_globs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from testbed.servers import REPO

MAPPING_FILE = REPO / "monitoring" / "statsd" / "mapping.yml"
# A StatsD sample's type (the part after `|`) as statsd-exporter's match_metric_type names it:
# timers, histograms and distributions are observers (histograms here: observer_type histogram).
METRIC_TYPES = {"c": "counter", "g": "gauge", "ms": "observer", "h": "observer", "d": "observer"}
FSM_ROOTS = ("counter", "gauge", "observer")  # mapper.go: fsm.NewFSM's metric types
GLOB_TEMPLATE = re.compile(r"\$\{?([a-zA-Z0-9_$]+)\}?")  # pkg/mapper/fsm/formatter.go
REGEX_TEMPLATE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")  # Go's regexp.Expand: $1x is the group named 1x


class UnmodelledSetting(ValueError):
    """The mapping file uses a setting this port does not follow."""


def load_mappings(config_text: str | None = None) -> list[dict]:
    """The mappings of mapping.yml (or of `config_text`), each with its match_type filled in."""
    config = yaml.safe_load(MAPPING_FILE.read_text() if config_text is None else config_text)
    defaults = config.get("defaults") or {}
    if defaults.get("glob_disable_ordering"):
        raise UnmodelledSetting("glob_disable_ordering: the port follows the default, ordering on")
    match_type = defaults.get("match_type", "glob")
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


@dataclass(eq=False)
class _State:
    """fsm.go mappingState: a field of a glob, reached from the previous field's state."""

    min_remaining: int  # the fewest and most fields left after this one, over the globs through it
    max_remaining: int
    result: dict | None = None  # set only by the glob that created this state, when it ends here
    priority: int = 0  # the index of the last glob ending here
    transitions: dict[str, _State] = field(default_factory=dict)

    def fits(self, fields_left: int) -> bool:
        return self.min_remaining <= fields_left <= self.max_remaining


class GlobStateMachine:
    """Port of fsm.go's FSM with ordering on (mapping.yml sets no glob_disable_ordering)."""

    def __init__(self) -> None:
        self._roots = {metric_type: _State(0, 0) for metric_type in FSM_ROOTS}
        self._added = 0

    def add(self, pattern: str, metric_type: str | None, mapping: dict) -> bool:
        """AddState. True when the glob took effect: it is the result of each final state it ends on."""
        fields = pattern.split(".")
        finals = []
        for root in [self._roots[metric_type]] if metric_type else self._roots.values():
            state = root
            for index, name in enumerate(fields):
                remaining = len(fields) - index - 1
                following = state.transitions.get(name)
                if following is None:
                    following = _State(remaining, remaining, mapping if remaining == 0 else None)
                    state.transitions[name] = following
                else:
                    following.min_remaining = min(remaining, following.min_remaining)
                    following.max_remaining = max(remaining, following.max_remaining)
                state = following
            finals.append(state)
        for state in finals:
            state.priority = self._added
        self._added += 1
        return all(state.result is mapping for state in finals)

    def match(self, name: str, metric_type: str) -> tuple[dict, list[str]] | None:
        """GetMapping: the winning glob mapping and its `*` captures, or None."""
        fields = name.split(".")
        best: tuple[_State, list[str]] | None = None

        def walk(state: _State, index: int, captures: list[str]) -> None:
            # Depth first, the field itself before `*`: the order fsm.go's backtracking stack takes.
            nonlocal best
            fields_left = len(fields) - index - 1
            exact, star = state.transitions.get(fields[index]), state.transitions.get("*")
            steps = [(exact, captures)] if exact is not None and exact.fits(fields_left) else []
            if star is not None and star.fits(fields_left):
                steps.append((star, [*captures, fields[index]]))
            for following, taken in steps:
                if fields_left:
                    walk(following, index + 1, taken)
                elif following.result is not None and (best is None or best[0].priority > following.priority):
                    best = following, taken

        walk(self._roots[metric_type], 0, [])
        return None if best is None else (best[0].result, best[1])


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


class StatsdMapper:
    """mapper.go's MetricMapper over a list of mappings (load_mappings)."""

    def __init__(self, mappings: list[dict]) -> None:
        self.mappings = mappings
        self._globs = GlobStateMachine()
        self.ineffective_globs = [
            mapping
            for mapping in mappings
            if mapping["match_type"] == "glob"
            and not self._globs.add(mapping["match"], mapping.get("match_metric_type"), mapping)
        ]  # statsd-exporter loads them without a word: they never match

    def series(self, name: str, statsd_type: str) -> Series:
        """The series statsd-exporter makes of a sample named `name` of type `statsd_type` (c, g, ms)."""
        metric_type = METRIC_TYPES[statsd_type]
        found = self._globs.match(name, metric_type)
        if found is not None:
            mapping, captures = found
            return _result(mapping, lambda text: _format_glob(text, captures))
        for mapping in self.mappings:
            if mapping["match_type"] == "regex" and mapping.get("match_metric_type") in (None, metric_type):
                match = re.search(mapping["match"], name)
                if match:
                    return _result(mapping, lambda text, m=match: _format_regex(text, m))
        return Series(escape(name), {}, None)


def _result(mapping: dict, fill) -> Series:
    if mapping.get("action") == "drop":
        return Series("", {}, mapping)
    labels = {key: fill(str(value)) for key, value in (mapping.get("labels") or {}).items()}
    return Series(escape(fill(mapping["name"])), labels, mapping)
