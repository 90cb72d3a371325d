"""A local stand-in for Amazon Personalize's PutEvents API, for tests and benchmarks.

There is no PutEvents in moto or LocalStack, so the project ships its own: an HTTP server that a stock
``boto3.client("personalize-events", endpoint_url=...)`` can call. It checks the SigV4 scope, applies
the service's limits through :func:`forwarder.personalize.limits.check_request`, injects faults on request
(latency, throttling, 5xx, dropped connections, a per-tracking-id quota), records every accepted call
as one JSON line and exposes its counters on ``/_emulator/stats``. See ``docs/emulator.md``.

Run it with ``forwarder emulator --port 0 --record calls.jsonl`` (or ``python -m forwarder.emulator``);
embed it with :class:`forwarder.emulator.service.Emulator` (the service model: rules, faults, quotas,
recording, stats; no sockets) and :func:`forwarder.emulator.server.serve` (its HTTP/1.1 wire layer).
"""
