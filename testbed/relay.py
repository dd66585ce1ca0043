"""The CDC relay (`base-a-relay`) as a process of its own, on free ports and private topics."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid

from testbed.servers import REPO, free_port, venv_bin, wait_for_http


class RelayProcess:
    def __init__(self, base_a_url: str, bootstrap: str, workdir):
        self.prefix = f"r{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.log = workdir / "relay.log"
        self.position_file = workdir / "position.json"
        self.env = {
            **os.environ,
            "RELAY_BASE_A_URL": base_a_url,
            "RELAY_KAFKA_BOOTSTRAP": bootstrap,
            "RELAY_TOPIC_PREFIX": self.prefix,
            "RELAY_POSITION_FILE": str(self.position_file),
            "RELAY_HTTP_PORT": str(self.port),
            "RELAY_SERVER_ID": str(6000 + self.port % 1000),
        }
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(
                [venv_bin("base-a-relay")], cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_for_http(f"{self.url}/ready", self.process)

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(30)
