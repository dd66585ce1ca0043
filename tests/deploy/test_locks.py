"""The image's lock (requirements-image.lock) pins what the dev lock pins, plus the executors' extras."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)$", re.MULTILINE)


def pins(name: str) -> dict[str, str]:
    return {package.lower(): version for package, version in PIN.findall((REPO / name).read_text())}


def test_the_image_lock_agrees_with_the_dev_lock_and_pins_the_executors_extras():
    dev, image = pins("requirements.lock"), pins("requirements-image.lock")
    shared = dev.keys() & image.keys()
    assert {"apache-airflow-core", "flask", "sqlalchemy"} <= shared
    assert {p: (dev[p], image[p]) for p in shared if dev[p] != image[p]} == {}, "run `make lock`"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    wanted = {
        re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower()
        for extra in ("celery", "kubernetes")
        for requirement in extras[extra]
    }
    assert wanted <= image.keys(), f"not pinned for the image: {wanted - image.keys()}"
    assert {"celery", "kombu", "kubernetes"} <= image.keys()
    assert not {"pytest", "ruff", "playwright"} & image.keys(), "the image lock holds no dev tools"
