"""One harness for the tests, the chaos run and the bench: processes, Kafka, the emulator, the forwarder
and its configuration. Each helper is defined once, in the module of its concern; import it from here.

- :mod:`tests.harness.processes`: stopping processes by pid, bounded waits, ports, names, test credentials;
- :mod:`tests.harness.kafka`: a local broker (scripts/kafka-local), topics, producing, reading, offsets;
- :mod:`tests.harness.emulator`: the PutEvents emulator as a process, raw and signed HTTP to it;
- :mod:`tests.harness.config`: forwarder configurations (the tests' and the bench's);
- :mod:`tests.harness.forwarder`: ``forwarder run`` as a process, its metrics and probes;
- :mod:`tests.harness.stream`: a steady stream of events, and when the emulator accepted each one;
- :mod:`tests.harness.tls`: a throwaway CA and a loopback server certificate (``emulator --tls-cert``);
- :mod:`tests.harness.connect_proxy`: a bounded loopback HTTP CONNECT proxy (``HTTPS_PROXY``);
- :mod:`tests.harness.credentials_endpoint`: a slow container-credentials endpoint, and an environment
  without credentials.
- :mod:`tests.harness.pipeline`: a test's topics, emulator, configuration and replica in one call
  (``pipeline()``), and the commands (``forwarder_command``, ``run_local``); import it from there.
"""

from tests.harness.config import (
    ForwarderConfig,
    forwarder_config,
)
from tests.harness.emulator import (
    EmulatorProcess,
    RawConnection,
    Response,
    http,
    request_bytes,
    request_of,
    signed_headers,
    signed_post,
    start_emulator,
)
from tests.harness.forwarder import (
    ForwarderProcess,
    probe,
    scrape,
    start_forwarder,
)
from tests.harness.kafka import (
    LocalKafka,
    Record,
    committed,
    committed_metadata,
    create_topic,
    delete_topic,
    end_offsets,
    fully_committed,
    headers_dict,
    kafka_error_code,
    kafka_script,
    local_script,
    produce,
    read_topic,
    registry_script,
)
from tests.harness.processes import (
    AWS_TEST_ENV,
    REPO,
    STARTED,
    child_env,
    free_port,
    running,
    stop_process,
    unique,
    wait_for,
)
from tests.harness.stream import AcceptanceWatch, SteadyFeed, late_events, max_delay

__all__ = [
    "AWS_TEST_ENV",
    "REPO",
    "STARTED",
    "AcceptanceWatch",
    "EmulatorProcess",
    "ForwarderConfig",
    "ForwarderProcess",
    "LocalKafka",
    "RawConnection",
    "Record",
    "Response",
    "SteadyFeed",
    "child_env",
    "committed",
    "committed_metadata",
    "create_topic",
    "delete_topic",
    "end_offsets",
    "forwarder_config",
    "free_port",
    "fully_committed",
    "headers_dict",
    "http",
    "kafka_error_code",
    "kafka_script",
    "late_events",
    "local_script",
    "max_delay",
    "probe",
    "produce",
    "read_topic",
    "registry_script",
    "request_bytes",
    "request_of",
    "running",
    "scrape",
    "signed_headers",
    "signed_post",
    "start_emulator",
    "start_forwarder",
    "stop_process",
    "unique",
    "wait_for",
]
