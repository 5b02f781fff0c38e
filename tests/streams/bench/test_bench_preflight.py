"""Options and addresses are checked before anything starts, with the fix in the message."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.bench.preflight import check_bootstrap, parse_rates, redacted_url
from streams.cli import main
from streams.runtime import EmbeddedRuntime, find_free_port


def test_parse_rates() -> None:
    assert parse_rates("10000, 500,2000,500") == (500.0, 2000.0, 10000.0)
    assert parse_rates("0.5") == (0.5,)
    for bad, message in (("", "no rate"), ("500,x", "'x' is not a number"), ("-5", "out of range"),
                         ("0", "out of range"), ("2e6", "out of range")):
        with pytest.raises(ValueError, match=message):
            parse_rates(bad)


def test_bootstrap_format_and_redacted_urls() -> None:
    check_bootstrap("k1:9092, k2:9093")
    for bad in ("k1", "k1:", ":9092", "kafka://k1:9092", "k1:port", "k1:70000"):
        with pytest.raises(ValueError, match="host:port"):
            check_bootstrap(bad)
    assert redacted_url("rediss://user:s3cret@cache:6380/2") == "rediss://user:***@cache:6380/2"


def test_help() -> None:
    result = CliRunner().invoke(main, ["bench", "--help"])
    assert result.exit_code == 0 and "--rates" in result.output and "--skip-echo" in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--rates", "500,fast"], "'fast' is not a number of events per second"),
        (["--rates", "0"], "each rate must be above 0"),
        (["--seconds", "0"], "--seconds"),
        (["--mode", "soak"], "'soak' is not one of"),
        (["--broker", "127.0.0.1:9092"], "give --redis too"),
        (["--redis", "redis://127.0.0.1:6379"], "give --broker too"),
    ],
)
def test_usage_errors(args: list[str], expected: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "--out", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert expected in result.output


def test_bad_broker_address_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "--out", str(tmp_path), "--broker", "kafka://k:9092",
                                       "--redis", "redis://127.0.0.1:1"])
    assert result.exit_code == 1
    assert "'kafka://k:9092' is not host:port" in result.output and "without a scheme" in result.output


def test_unreachable_broker_says_what_to_check(tmp_path: Path) -> None:
    port = find_free_port()  # nothing listens there
    result = CliRunner().invoke(main, ["bench", "--out", str(tmp_path), "--broker", f"127.0.0.1:{port}",
                                       "--redis", "redis://127.0.0.1:1"])
    assert result.exit_code == 1
    assert f"cannot reach Kafka at 127.0.0.1:{port}" in result.output and "--broker" in result.output
    assert not (tmp_path / "bench.json").exists()


def test_unreachable_redis_says_what_to_check(embedded: EmbeddedRuntime, tmp_path: Path) -> None:
    port = find_free_port()
    result = CliRunner().invoke(main, ["bench", "--out", str(tmp_path), "--broker", embedded.bootstrap,
                                       "--redis", f"redis://:pw@127.0.0.1:{port}/0"])
    assert result.exit_code == 1
    assert f"cannot reach Redis at redis://:***@127.0.0.1:{port}/0" in result.output and "--redis" in result.output
    assert ":pw@" not in result.output
