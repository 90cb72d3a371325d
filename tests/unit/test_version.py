"""The one version shows in ``forwarder --version`` and in the ``forwarder_build_info`` metric.

(The built wheel, the daemon's first log line and the image's labels: tests/static/test_packaging.py.)
"""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from forwarder import __version__
from forwarder.cli import main
from forwarder.metrics import Metrics


def test_version_option_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"forwarder {__version__}\n"


def test_build_info_metric_carries_the_version() -> None:
    text = generate_latest(Metrics().registry).decode()
    assert f'forwarder_build_info{{version="{__version__}"}} 1.0' in text.splitlines()


def test_each_replica_registry_has_its_own_build_info() -> None:
    # Several apps in one process (tests) must not collide on a shared registry.
    first, second = Metrics(), Metrics()
    assert first.registry is not second.registry
    assert first.registry.get_sample_value("forwarder_build_info", {"version": __version__}) == 1.0
    assert second.registry.get_sample_value("forwarder_build_info", {"version": __version__}) == 1.0
