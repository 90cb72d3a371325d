"""Command line of the emulator: ``forwarder emulator ...`` and ``python -m forwarder.emulator ...``.

Once the socket listens, exactly one line goes to stdout, ``emulator listening on http://HOST:PORT``
(``https://`` with ``--tls-cert``), flushed at once so a parent process can read the port it got with
``--port 0``. SIGTERM and SIGINT stop the server; the record file is flushed and closed and the exit status
is 0. Counters go to stderr at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from typing import BinaryIO

import orjson

from forwarder.emulator.server import bind_socket, format_url, serve
from forwarder.emulator.service import Emulator, Faults, InvalidSettingError


def _rate(text: str) -> float:
    value = _non_negative(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _operation_quota(text: str) -> tuple[str, float]:
    name, sep, rps = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"must be OPERATION=N (e.g. PutItems=10), got {text!r}")
    return name, _non_negative(rps)


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's options to ``parser`` (the ``forwarder emulator`` subcommand or ``-m``)."""
    _server_arguments(parser)
    _service_arguments(parser)
    _fault_arguments(parser)


def _server_arguments(parser: argparse.ArgumentParser) -> None:
    net = parser.add_argument_group("server")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    net.add_argument(
        "--port", type=int, default=8080, help="TCP port; 0 picks a free one (default: %(default)s)"
    )
    net.add_argument(
        "--record",
        metavar="PATH",
        help="append each accepted call's body to PATH as one JSON line, flushed per call",
    )
    net.add_argument(
        "--tls-cert",
        metavar="PEM",
        help="serve HTTPS with this certificate chain (PEM); needs --tls-key (default: plain HTTP)",
    )
    net.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert (PEM)")


def tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """The server's TLS context for ``--tls-cert``/``--tls-key``, or ``None`` for plain HTTP.

    :class:`ValueError` when only one of the two is given; :class:`OSError` or :class:`ssl.SSLError`
    when the files cannot be read or do not match.
    """
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ValueError("--tls-cert and --tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def _service_arguments(parser: argparse.ArgumentParser) -> None:
    svc = parser.add_argument_group("service")
    svc.add_argument(
        "--tracking-id",
        action="append",
        metavar="ID",
        dest="tracking_ids",
        help="a tracking id that exists (repeatable); when given, any other gets ResourceNotFoundException",
    )
    svc.add_argument(
        "--dataset-arn",
        action="append",
        metavar="ARN",
        dest="dataset_arns",
        help="a dataset ARN that exists (repeatable; PutItems, PutUsers, PutActions); when given, any other "
        "gets ResourceNotFoundException",
    )
    svc.add_argument(
        "--reject-item-id",
        action="append",
        metavar="ITEM",
        dest="reject_item_ids",
        default=[],
        help="reject any call holding an event with this itemId with InvalidInputException (repeatable)",
    )
    svc.add_argument(
        "--quota-rps",
        type=_non_negative,
        default=0.0,
        metavar="N",
        help="per operation and trackingId or datasetArn, at most N calls/s (token bucket, bursts up to N); "
        "0 = no quota (default)",
    )
    svc.add_argument(
        "--operation-quota-rps",
        action="append",
        type=_operation_quota,
        default=[],
        metavar="OPERATION=N",
        dest="operation_quota_rps",
        help="repeatable; this operation's own quota in place of --quota-rps (e.g. PutItems=10)",
    )


def _fault_arguments(parser: argparse.ArgumentParser) -> None:
    flt = parser.add_argument_group("faults (random, independent of each other)")
    flt.add_argument("--seed", type=int, default=None, help="seed the fault generators for repeatable runs")
    flt.add_argument(
        "--latency-ms", type=_non_negative, default=0.0, metavar="MS", help="added to every call"
    )
    flt.add_argument(
        "--latency-jitter-ms",
        type=_non_negative,
        default=0.0,
        metavar="MS",
        help="uniform ±MS around --latency-ms (never below 0)",
    )
    flt.add_argument(
        "--spike-rate", type=_rate, default=0.0, metavar="P", help="probability of a latency spike"
    )
    flt.add_argument(
        "--spike-ms", type=_non_negative, default=0.0, metavar="MS", help="extra latency of a spike"
    )
    flt.add_argument(
        "--throttle-rate",
        type=_rate,
        default=0.0,
        metavar="P",
        help='probability of 400 ThrottlingException "Rate exceeded"',
    )
    flt.add_argument(
        "--error-rate",
        type=_rate,
        default=0.0,
        metavar="P",
        help="probability of 500 InternalFailure or 503 ServiceUnavailable",
    )
    flt.add_argument(
        "--drop-rate",
        type=_rate,
        default=0.0,
        metavar="P",
        help="probability of closing the connection without a response",
    )


def faults_from_args(args: argparse.Namespace) -> Faults:
    """The initial :class:`Faults` the parsed options describe."""
    return Faults(
        throttle_rate=args.throttle_rate,
        error_rate=args.error_rate,
        drop_rate=args.drop_rate,
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        spike_rate=args.spike_rate,
        spike_ms=args.spike_ms,
        quota_rps=args.quota_rps,
        operation_quota_rps=tuple(args.operation_quota_rps),
        tracking_ids=None if args.tracking_ids is None else frozenset(args.tracking_ids),
        dataset_arns=None if args.dataset_arns is None else frozenset(args.dataset_arns),
        reject_item_ids=frozenset(args.reject_item_ids),
    )


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    # uvloop roughly doubles the requests/s; it is optional, so fall back to asyncio's loop.
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _main(
    args: argparse.Namespace,
    faults: Faults,
    record: BinaryIO | None,
    sock: socket.socket,
    tls: ssl.SSLContext | None = None,
) -> None:
    emulator = Emulator(faults, seed=args.seed, record=record)
    url = format_url(args.host, sock.getsockname()[1], tls=tls is not None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await serve(
            emulator,
            sock,
            stop=stop,
            tls=tls,
            ready=lambda: print(f"emulator listening on {url}", flush=True),
        )
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        with contextlib.suppress(OSError):  # a closed stderr must not turn a clean stop into a failure
            stats = {
                name: s.as_operation_json() for name, s in emulator.operation_stats.items() if s.requests
            }
            print(f"emulator stopped: {orjson.dumps(emulator.stats.as_json()).decode()}", file=sys.stderr)
            if set(stats) - {"PutEvents"}:
                print(f"emulator operations: {orjson.dumps(stats).decode()}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run the emulator the parsed ``args`` describe until SIGTERM or SIGINT; the exit status.

    0 after a signal; 1 if the record file cannot be opened, the address cannot be bound or the TLS
    certificate and key cannot be loaded; 2 for invalid settings.
    """
    try:
        faults = faults_from_args(args)
        tls = tls_context(args.tls_cert, args.tls_key)
    except (InvalidSettingError, ValueError) as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        return 2
    except (OSError, ssl.SSLError) as exc:
        print(f"emulator: cannot load the TLS certificate and key: {exc}", file=sys.stderr)
        return 1
    with contextlib.ExitStack() as stack:
        record: BinaryIO | None = None
        if args.record:
            try:
                # Append, never truncate: restarting on the same file must not lose earlier calls.
                record = stack.enter_context(open(args.record, "ab"))
            except OSError as exc:
                print(f"emulator: cannot open record file: {exc}", file=sys.stderr)
                return 1
        try:
            sock = bind_socket(args.host, args.port)
        except OSError as exc:
            print(f"emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        with asyncio.Runner(loop_factory=_uvloop_factory()) as runner:
            runner.run(_main(args, faults, record, sock, tls))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m forwarder.emulator``."""
    parser = argparse.ArgumentParser(
        prog="python -m forwarder.emulator", description="Local emulator of Amazon Personalize PutEvents."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
