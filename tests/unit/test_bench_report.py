"""The benchmark's verdicts: targets are judged from the rows, and a missed one is explained."""

from __future__ import annotations

from bench.report import Row, bounds, targets


def _rows(p99_ms: float) -> list[Row]:
    return [
        Row("catch-up", 30, "forwarder fast", 10.0, 150_000, 18_000, best_mean=8.9, cpu_s=8.0),
        Row("catch-up", 30, "baseline A", 10.0, 30_000, 3_600, best_mean=8.7, cpu_s=10.0),
        Row(
            "live 5k/s", 30, "forwarder fast", 10.0, 50_000, 9_800, best_mean=5.1, cpu_s=6.0,
            p50_ms=195, p99_ms=p99_ms, kafka_cores=0.5, emulator_cores=0.2,
        ),
    ]  # fmt: skip


def _verdicts(rows: list[Row]) -> dict[str, bool | None]:
    return {t.what: t.passed for t in targets(rows, 200, 30, "live 5k/s", 1_000_000) if not t.info}


def test_each_target_is_judged_from_its_row() -> None:
    verdicts = _verdicts(_rows(p99_ms=249))
    assert verdicts["forwarder fast: ≥1,000 PutEvents calls/s in catch-up at 30 ms"] is True  # 1,800/s
    assert verdicts["forwarder fast: ≥15,000 events per CPU-second in catch-up"] is True  # 18,750
    assert verdicts["forwarder fast: ≥3× baseline A's events per CPU-second"] is True  # 6.25×
    # 8.33 events/call of 8.9 possible: 93.6%
    assert verdicts["forwarder fast: mean events/call ≥95% of best possible in catch-up"] is False
    assert verdicts["forwarder fast: p99 produce→accepted ≤ linger 200 + 50 = 250 ms in live 5k/s"] is True
    assert not bounds(_rows(p99_ms=249), 200, 30, "live 5k/s")


def test_a_missed_latency_target_says_what_is_fixed_and_what_is_left() -> None:
    rows = _rows(p99_ms=262)
    assert (
        _verdicts(rows)["forwarder fast: p99 produce→accepted ≤ linger 200 + 50 = 250 ms in live 5k/s"]
        is False
    )
    (why,) = bounds(rows, 200, 30, "live 5k/s")
    assert "235 ms are fixed" in why
    assert "took 27 ms" in why


def test_the_kafka_path_row_is_quoted_when_the_run_has_one() -> None:
    rows = [
        *_rows(p99_ms=262),
        Row("live 5k/s", 30, "Kafka path alone", 10.0, 0, 0, p50_ms=5, p99_ms=49),
    ]
    (why,) = bounds(rows, 200, 30, "live 5k/s")
    assert "p50 5 ms and p99 49 ms" in why
