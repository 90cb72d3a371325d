"""The package as a user gets it: the sdist and the wheel built by ``python -m build``, checked by
``twine check``, the wheel installed (not editable) into a fresh venv with ``-c constraints.txt``, and the
installed ``forwarder`` command run from there: ``--version``, ``check-config``, the emulator answering one
PutEvents call, and the daemon's first log line and build-info metric.

No Kafka is needed. The build's isolated environment and the fresh venv fetch their packages through pip
(its cache makes a second run quick). Every process started here is stopped by its pid; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import tarfile
import time
import tomllib
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config
from packaging.version import Version

from forwarder import __version__
from tests.harness import AWS_TEST_ENV, STARTED, free_port, scrape, stop_process, wait_for

REPO = Path(__file__).resolve().parents[2]
DIST_NAME = "personalize-kafka-forwarder"
WHEEL_STEM = DIST_NAME.replace("-", "_")
BUILD_TIMEOUT = 420  # two isolated build environments, on a loaded machine, perhaps with a cold pip cache
START_TIMEOUT = 30.0

# The build, the install and the runs below share one module-scoped fixture chain.
pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class Dists:
    """The built distributions."""

    sdist: Path
    wheel: Path


def _run(cmd: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    assert result.returncode == 0, (
        f"{cmd} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a process run from the installed venv: no FORWARDER__ overrides, no PYTHONPATH
    (which could put this checkout on its path), test credentials, no AWS profile or metadata lookups."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FORWARDER__") and k not in {"PYTHONPATH", "VIRTUAL_ENV", "AWS_PROFILE"}
    }
    return {**env, **AWS_TEST_ENV, **extra}


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """The sdist and, built from it, the wheel. The build backend is pinned by constraints.txt too."""
    out = tmp_path_factory.mktemp("dist")
    _run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
        BUILD_TIMEOUT,
        env={**os.environ, "PIP_CONSTRAINT": str(REPO / "constraints.txt")},
    )
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    return Dists(sdist, wheel)


@pytest.fixture(scope="module")
def venv(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed (not editable) under the pinned dependencies; its bin/."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    # No pip of its own: the test venv's pip installs into it (--python), which saves bootstrapping one.
    _run([sys.executable, "-m", "venv", "--without-pip", str(root)], 120)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(root / "bin" / "python"),
            "install",
            "--quiet",
            "-c",
            str(REPO / "constraints.txt"),
            str(dists.wheel),
        ],
        BUILD_TIMEOUT,
        env={k: v for k, v in os.environ.items() if k != "PIP_CONSTRAINT"},
    )
    return root / "bin"


# ---- the distributions ------------------------------------------------------------------------------------


def test_names_and_version(dists: Dists) -> None:
    assert str(Version(__version__)) == __version__, "a PEP 440 version, in its normal form"
    assert dists.sdist.name == f"{WHEEL_STEM}-{__version__}.tar.gz"
    assert dists.wheel.name == f"{WHEEL_STEM}-{__version__}-py3-none-any.whl"


def test_twine_check(dists: Dists) -> None:
    result = _run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dists.sdist), str(dists.wheel)], 120
    )
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_wheel_holds_the_package_its_marker_licence_and_entry_point(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as whl:
        names = set(whl.namelist())
        dist_info = f"{WHEEL_STEM}-{__version__}.dist-info"
        metadata = HeaderParser().parsestr(whl.read(f"{dist_info}/METADATA").decode())
        entry_points = whl.read(f"{dist_info}/entry_points.txt").decode()
        licence = whl.read(f"{dist_info}/licenses/LICENSE").decode()
    # Every file of the package in the source tree, data files and the py.typed marker included.
    source = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "forwarder").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert "forwarder/py.typed" in source
    assert "forwarder/emulator/server.py" in source
    missing = source - names
    assert not missing, f"the wheel lacks {sorted(missing)}"
    assert not [n for n in names if n.startswith(("tests/", "bench/", "config/"))], "only the package ships"
    assert metadata["Name"] == DIST_NAME
    assert metadata["Version"] == __version__
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata["License-File"] == "LICENSE"
    assert metadata["Requires-Python"] == ">=3.11"
    assert re.search(r"^forwarder = forwarder\.cli:main$", entry_points, re.MULTILINE), entry_points
    assert licence == (REPO / "LICENSE").read_text(encoding="utf-8")


def test_sdist_holds_what_builds_and_explains_it(dists: Dists) -> None:
    with tarfile.open(dists.sdist) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    for wanted in (
        "pyproject.toml",
        "README.md",
        "CHANGELOG.md",
        "LICENSE",
        "forwarder/__init__.py",
        "forwarder/py.typed",
    ):
        assert wanted in names, f"the sdist lacks {wanted}"


# ---- the installed wheel, run -------------------------------------------------------------------------------


def test_installed_wheel_is_not_this_checkout(venv: Path, tmp_path: Path) -> None:
    result = _run(
        [
            str(venv / "python"),
            "-c",
            "import importlib.metadata as m, pathlib, forwarder; "
            f"print(m.version({DIST_NAME!r})); print(pathlib.Path(forwarder.__file__).resolve()); "
            "print((pathlib.Path(forwarder.__file__).parent / 'py.typed').is_file())",
        ],
        60,
        cwd=tmp_path,
        env=_clean_env(),
    )
    version, location, typed = result.stdout.splitlines()
    assert version == __version__
    assert Path(location).is_relative_to(venv.parent.resolve()), location
    assert typed == "True"


def test_version_command(venv: Path, tmp_path: Path) -> None:
    result = _run([str(venv / "forwarder"), "--version"], 60, cwd=tmp_path, env=_clean_env())
    assert result.stdout.strip() == f"forwarder {__version__}"


def test_check_config(venv: Path, tmp_path: Path) -> None:
    config = REPO / "config" / "forwarder.yaml"
    result = _run(
        [str(venv / "forwarder"), "check-config", "--config", str(config)], 60, cwd=tmp_path, env=_clean_env()
    )
    assert result.stdout.startswith(f"{config}: OK"), result.stdout


def _start(
    cmd: list[str], tmp_path: Path, name: str, env: dict[str, str]
) -> tuple[subprocess.Popen[str], Path]:
    """Start a process from the installed venv, its stderr to a file; it is stopped by pid whatever happens."""
    stderr = tmp_path / f"{name}.stderr"
    with stderr.open("ab") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=tmp_path, env=env)
    STARTED.append(proc)
    return proc, stderr


def _first_stdout_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        readable, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if readable:
            return proc.stdout.readline()
    return ""


@pytest.fixture
def emulator(venv: Path, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    """The installed ``forwarder emulator`` on a free loopback port: its URL, process and record file."""
    record = tmp_path / "calls.jsonl"
    proc, stderr = _start(
        [str(venv / "forwarder"), "emulator", "--host", "127.0.0.1", "--port", "0", "--record", str(record)],
        tmp_path,
        "emulator",
        _clean_env(),
    )
    line = _first_stdout_line(proc, START_TIMEOUT)
    match = re.fullmatch(r"emulator listening on (http://127\.0\.0\.1:\d+)\n", line)
    if match is None:
        stop_process(proc)
        raise AssertionError(f"emulator did not start: {line!r}; stderr: {stderr.read_text()!r}")
    yield match.group(1), proc, record
    stop_process(proc)


def test_emulator_answers_one_putevents_call(emulator: tuple[str, subprocess.Popen[str], Path]) -> None:
    url, proc, record = emulator
    client = boto3.session.Session().client(
        "personalize-events",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=20),
    )
    response = client.put_events(
        trackingId="packaging-test",
        sessionId="s1",
        eventList=[{"eventType": "click", "itemId": "i1", "sentAt": time.time()}],
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    with urllib.request.urlopen(f"{url}/_emulator/stats", timeout=10) as answer:
        stats = json.loads(answer.read())
    assert stats["accepted_calls"] == 1
    assert stats["accepted_events"] == 1
    assert len(record.read_text(encoding="utf-8").splitlines()) == 1
    assert stop_process(proc) == 0, "SIGTERM stops the emulator cleanly"


def test_daemon_logs_its_version_first_and_exports_build_info(venv: Path, tmp_path: Path) -> None:
    # No broker listens on the bootstrap port and nothing is sent: the run path starts (without the
    # preflight, which would wait for a broker), logs, and serves its metrics, which is all that is checked
    # here (delivery and the preflight are the integration tests' job).
    metrics_port = free_port()
    env = _clean_env(
        FORWARDER__KAFKA__BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",
        FORWARDER__PERSONALIZE__ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
        FORWARDER__OBSERVABILITY__HOST="127.0.0.1",
        FORWARDER__OBSERVABILITY__PORT=str(metrics_port),
    )
    proc, stderr = _start(
        [str(venv / "forwarder"), "run", "--no-preflight", "--config", str(REPO / "config" / "local.yaml")],
        tmp_path,
        "run",
        env,
    )
    try:
        wait_for(
            lambda: proc.poll() is not None or "metrics and probes on" in stderr.read_text(),
            START_TIMEOUT,
            what="the metrics server",
        )
        assert proc.poll() is None, f"forwarder run exited {proc.returncode}: {stderr.read_text()[-3000:]}"
        metrics = scrape(metrics_port)
    finally:
        stop_process(proc, timeout=30)
    first = stderr.read_text().splitlines()[0]
    assert f" forwarder {__version__} starting: " in first, first
    assert metrics[f'forwarder_build_info{{version="{__version__}"}}'] == 1.0


# ---- the one version, where else it is written --------------------------------------------------------------


def test_pyproject_takes_the_version_from_the_package() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["name"] == DIST_NAME
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "forwarder.__version__"}


def test_changelog_has_this_version_and_an_unreleased_section() -> None:
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, re.MULTILINE)
    assert headings, "no release headings"
    assert headings[0] == ("Unreleased", ""), "Keep a Changelog: Unreleased comes first"
    released = headings[1:]
    assert released[0][0] == __version__, "the newest release section is the package's version"
    assert all(date for _, date in released), "every release has a date"
    assert len({v for v, _ in headings}) == len(headings), "each version once"


def test_dockerfile_labels_the_image_with_version_and_revision() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    runtime = text.rsplit("\nFROM ", 1)[1]  # labels and their ARGs belong to the final stage
    assert re.search(r"^ARG VERSION\b", runtime, re.MULTILINE)
    assert re.search(r"^ARG REVISION\b", runtime, re.MULTILINE)
    assert 'org.opencontainers.image.version="${VERSION}"' in runtime
    assert 'org.opencontainers.image.revision="${REVISION}"' in runtime
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in runtime


def test_kubernetes_deploys_this_version() -> None:
    kustomization = yaml.safe_load((REPO / "deploy" / "kubernetes" / "kustomization.yaml").read_text())
    tags = {image["newTag"] for image in kustomization["images"]}
    assert tags == {__version__}
