"""The event maker as `make up` runs it: `base-a churn --publish BOOTSTRAP --every N`, for ever, on a
Base A without a binlog; a real broker seen through a proxy that counts its client connections."""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from base_sync.demo import generate
from base_sync.source import source_engine
from base_sync.source_schema import create_schema
from testbed.servers import REPO
from tests.faults.helpers import broker_behind_proxy
from tests.faults.tcp_proxy import TcpProxy
from tests.sync.conftest import read_topic

ROUND_LINE = re.compile(r"employees: (\{.*\}) in [\d.]+ s$")  # what `base-a churn` logs of each round


@pytest.fixture
def broker(tmp_path) -> Iterator[tuple[str, TcpProxy]]:
    with broker_behind_proxy(tmp_path / "tansu.log") as (bootstrap, proxy):
        yield bootstrap, proxy


def rounds_done(log: Path) -> list[dict]:
    """What each finished round logged it made and published."""
    found = (ROUND_LINE.search(line) for line in log.read_text().splitlines())
    return [ast.literal_eval(match[1]) for match in found if match]


def wait_for_rounds(maker: subprocess.Popen, log: Path, count: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(done := rounds_done(log)) < count:
        assert maker.poll() is None, f"the event maker exited: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"{len(done)} rounds in {timeout} s: {log.read_text()[-3000:]}"
        time.sleep(0.05)
    return done


def test_a_long_running_event_maker_connects_to_the_broker_once_not_every_round(tmp_path, broker):
    """Each round made a new producer and admin client (new connections to the broker) and
    reflected Base A again: three new connections a round, for ever under `make up`. One maker
    now holds one producer for all its rounds; SIGTERM still ends the round under way, and every
    change made has its event on the topic."""
    bootstrap, proxy = broker
    url = f"sqlite:///{tmp_path / 'base_a.sqlite'}"
    engine = source_engine(url)
    create_schema(engine)
    generate.seed(engine, "employees", 200, seed_value=1)
    engine.dispose()
    prefix = f"maker{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if k != "BASE_A_MAPPING_FILE"} | {"BASE_A_URL": url}
    command = [sys.executable, "-m", "base_sync.demo.cli", "--seed", "2", "churn", "employees"]
    command += ["--updates", "3", "--inserts", "1", "--deletes", "1", "--publish", bootstrap]
    command += ["--topic-prefix", prefix, "--every", "0.05"]
    log = tmp_path / "maker.log"
    with open(log, "w") as out:
        maker = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_rounds(maker, log, 3)
        settled = proxy.connections  # the producer's, made before the first round
        wait_for_rounds(maker, log, 15)
        later = proxy.connections
    finally:
        maker.send_signal(signal.SIGTERM)
        maker.wait(60)
    assert maker.returncode == 0, log.read_text()[-3000:]
    # A reconnect may happen; a client per round opens at least one connection a round.
    assert later - settled <= 1, f"{later - settled} new broker connections over 12 rounds"
    done = rounds_done(log)
    published = sum(sum(round_["published"].values()) for round_ in done)
    assert published == 5 * len(done)
    assert len(read_topic(bootstrap, f"{prefix}.base_a.employees")) == published


def test_a_broker_gone_between_rounds_ends_the_maker_with_the_reason_before_any_change(tmp_path, broker):
    """The topic check before a round raised librdkafka's KafkaException: a traceback, where a round
    the broker did not acknowledge says why in one line. Now both end with the reason and status 1
    (`make up` starts it again), and the round whose check failed changed nothing in Base A."""
    bootstrap, proxy = broker
    url = f"sqlite:///{tmp_path / 'base_a.sqlite'}"
    engine = source_engine(url)
    create_schema(engine)
    generate.seed(engine, "employees", 50, seed_value=1)
    env = {k: v for k, v in os.environ.items() if k != "BASE_A_MAPPING_FILE"} | {"BASE_A_URL": url}
    command = [sys.executable, "-m", "base_sync.demo.cli", "churn", "employees", "--inserts", "1"]
    command += ["--publish", bootstrap, "--topic-prefix", f"gone{os.getpid()}", "--every", "3"]
    log = tmp_path / "maker.log"
    with open(log, "w") as out:
        maker = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_rounds(maker, log, 1)
        proxy.refuse()  # within the 3 s before the next round
        rows = generate.max_key(engine, "employees")
        maker.wait(90)
    finally:
        if maker.poll() is None:
            maker.kill()
            maker.wait()
    said = log.read_text()
    assert maker.returncode == 1, said[-3000:]
    assert "Traceback" not in said, said[-3000:]
    reason = f"base-a churn: the broker at {bootstrap} did not answer or refused the check of the topics"
    assert reason in said, said[-3000:]
    assert generate.max_key(engine, "employees") == rows  # the failed round inserted nothing
    engine.dispose()
