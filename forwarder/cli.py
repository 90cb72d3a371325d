"""Command line: ``forwarder run | check-config | replay | emulator | sample``, and ``forwarder --version``.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from forwarder import __version__
from forwarder.config import Config, ConfigError, LoggingConfig, load_config


def setup_logging(cfg: LoggingConfig) -> None:
    """Text or JSON lines on stderr, at the configured level, credentials redacted."""
    from forwarder.logs import JsonFormatter, RedactingFormatter  # noqa: PLC0415 - keep --help light

    handler = logging.StreamHandler(sys.stderr)
    text = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(RedactingFormatter(JsonFormatter() if cfg.format == "json" else text))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(cfg.level)
    # botocore logs credentials-adjacent detail at DEBUG; keep it quiet unless asked for explicitly.
    logging.getLogger("botocore").setLevel(max(logging.INFO, root.level))


def _load(path: str) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"{path}: configuration has {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def _preflight(path: str, cfg: Config, create: bool) -> int:
    """Run the preflight checks; 0, or the exit code after one line per problem on stderr."""
    from forwarder.preflight import PreflightError, preflight  # noqa: PLC0415 - needs the Kafka client

    try:
        done = preflight(cfg, create=create)
    except PreflightError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return exc.exit_code
    for line in done:
        logging.getLogger("forwarder.preflight").info("%s", line)
        if not create:
            print(f"{path}: {line}")
    return 0


def _cmd_check_config(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    if cfg is None:
        return 2
    if args.connect:
        code = _preflight(args.config, cfg, create=False)
        if code:
            return code
    topics = ", ".join(cfg.kafka.topics)
    checked = "; topics and dead-letter topic checked on the cluster" if args.connect else ""
    print(f"{args.config}: OK (topics {topics} → tracking id {cfg.personalize.tracking_id}{checked})")
    for route in cfg.routes:  # each route validated by the schema: its target, its mapping, its topics
        print(f"  route {route.name}: topics {', '.join(route.topics)} → {route.operation} {route.target}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    if cfg is None:
        return 2
    setup_logging(cfg.logging)
    if not args.no_preflight:
        code = _preflight(args.config, cfg, create=True)  # the topics exist (or are created) before the start
        if code:
            return code
    from forwarder.metrics import PortInUseError  # noqa: PLC0415 - keep `check-config` and `--help` light
    from forwarder.runtime import run_bounded  # noqa: PLC0415

    try:
        return run_bounded(cfg)
    except PortInUseError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)  # a setting to change, not a crash: no traceback
        return 2


def _cmd_replay(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    if cfg is None:
        return 2
    setup_logging(cfg.logging)
    from forwarder.replay import run  # noqa: PLC0415

    return run(cfg, args)


def _cmd_emulator(args: argparse.Namespace) -> int:
    from forwarder.emulator.cli import run  # noqa: PLC0415

    return run(args)


def _cmd_sample(args: argparse.Namespace) -> int:
    from forwarder.sample import run  # noqa: PLC0415

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``forwarder`` command."""
    parser = argparse.ArgumentParser(
        prog="forwarder",
        description="Deliver user-interaction events from Kafka to Amazon Personalize PutEvents.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the forwarder until SIGTERM/SIGINT")
    run.add_argument("--config", "-c", required=True, help="YAML configuration file")
    run.add_argument(
        "--no-preflight",
        action="store_true",
        help="start without first checking that the topics exist and the dead-letter topic takes writes "
        "(for clusters whose ACLs refuse the Admin API's describe calls)",
    )
    run.set_defaults(func=_cmd_run)

    check = sub.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("--config", "-c", required=True, help="YAML configuration file")
    check.add_argument(
        "--connect",
        action="store_true",
        help="also connect to Kafka and run the start-up checks: the topics exist, the dead-letter topic "
        "can be written (nothing is created)",
    )
    check.set_defaults(func=_cmd_check_config)

    from forwarder.replay import add_arguments as replay_arguments  # noqa: PLC0415

    replay = sub.add_parser("replay", help="re-drive dead-lettered records through the pipeline")
    replay_arguments(replay)
    replay.set_defaults(func=_cmd_replay)

    from forwarder.emulator.cli import add_arguments  # noqa: PLC0415

    emulator = sub.add_parser("emulator", help="run the local PutEvents emulator")
    add_arguments(emulator)
    emulator.set_defaults(func=_cmd_emulator)

    from forwarder.sample import add_arguments as sample_arguments  # noqa: PLC0415

    sample = sub.add_parser("sample", help="create topics and produce sample interaction events")
    sample_arguments(sample)
    sample.set_defaults(func=_cmd_sample)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``forwarder`` console script."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
