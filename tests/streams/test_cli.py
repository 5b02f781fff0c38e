"""The command line: help everywhere, clear errors, produce/recs against the real servers,
and `streamrec up` leaving no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli import main
from streams.runtime import pid_alive
from streams.settings import Settings
from streams.topics import ensure_topics

COMMANDS = [[], ["worker"], ["up"], ["topics"], ["topics", "create"], ["topics", "list"], ["produce"], ["recs"], ["demo"],
            ["ope"], ["ope-log"]]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "main")
def test_every_command_has_help(args: list[str]) -> None:
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_commands_needing_addresses_say_how_to_get_them() -> None:
    result = CliRunner().invoke(main, ["recs", "someone"])
    assert result.exit_code == 2
    assert "streamrec up" in result.output and "STREAMREC_KAFKA_BOOTSTRAP_SERVERS" in result.output


def test_ope_log_says_which_address_it_needs(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["ope-log", str(tmp_path / "ope.jsonl")])
    assert result.exit_code == 2
    assert "STREAMREC_KAFKA_BOOTSTRAP_SERVERS" in result.output and "impressions" in result.output
    assert not (tmp_path / "ope.jsonl").exists()


def test_half_configured_addresses_are_refused() -> None:
    result = CliRunner().invoke(main, ["worker"], env={"STREAMREC_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert result.exit_code == 2
    assert "STREAMREC_REDIS_URL" in result.output and "embedded" in result.output


def test_invalid_settings_are_reported_with_their_variable() -> None:
    result = CliRunner().invoke(main, ["topics", "list"], env={"STREAMREC_PARTITIONS": "zero"})
    assert result.exit_code == 2
    assert "partitions" in result.output


def _env(settings: Settings) -> dict[str, str]:
    return settings.to_env()


def test_produce_validates_lines_and_sends_to_the_right_topics(settings: Settings, tmp_path: Path) -> None:
    ensure_topics(settings)
    good = [
        {"item_id": "i1", "title": "Trail shoe"},
        {"event_id": "e1", "user_id": "u1", "item_id": "i1", "kind": "view", "ts": time.time()},
        {"event_id": "e2", "user_id": "u1", "query": "shoes", "ts": time.time()},
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in good) + "\n\n")
    result = CliRunner().invoke(main, ["produce", str(path)], env=_env(settings))
    assert result.exit_code == 0, result.output
    assert f"1 to {settings.topic_catalog}" in result.output and f"1 to {settings.topic_searches}" in result.output

    path.write_text(json.dumps(good[1]) + "\n" + '{"user_id": "u1", "query": ""}\n' + "not json\n")
    result = CliRunner().invoke(main, ["produce", str(path)], env=_env(settings))
    assert result.exit_code == 1
    assert "2 invalid line(s), nothing sent" in result.output
    assert "line 2:" in result.output and "line 3:" in result.output


def test_recs_reads_the_latest_list_from_redis(settings: Settings, redis_client: object) -> None:
    payload = {"user_id": "u9", "request_id": "r", "items": [{"item_id": "i1", "score": 0.5, "source": "trending"}],
               "model_version": "blend-1", "policy": "greedy", "generated_at": time.time(), "trigger_ts": time.time()}
    redis_client.set(settings.rec_key("u9"), json.dumps(payload))  # type: ignore[attr-defined]
    result = CliRunner().invoke(main, ["recs", "u9"], env=_env(settings))
    assert result.exit_code == 0, result.output
    assert "i1" in result.output and "trending" in result.output
    missing = CliRunner().invoke(main, ["recs", "nobody"], env=_env(settings))
    assert missing.exit_code == 1 and "no recommendations for 'nobody'" in missing.output


def _ctrl_c_reaches_child() -> None:
    """Undo an inherited SIG_IGN for SIGINT (a test run started in the background by a shell
    ignores it, and Python then keeps ignoring it), so the Ctrl-C case tests the product."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_up(tmp_path: Path) -> tuple[subprocess.Popen[bytes], list[int]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMREC_")}
    env_file = tmp_path / "env"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "up", "--no-worker", "--env-file", str(env_file)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path,
        preexec_fn=_ctrl_c_reaches_child,
    )
    deadline = time.monotonic() + 60
    while not env_file.exists() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        time.sleep(0.1)
    children = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()]
    assert len(children) == 2, children  # Tansu and Valkey
    assert "STREAMREC_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:" in env_file.read_text()
    return proc, children


def _all_gone(pids: list[int], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(pid_alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["ctrl-c", "term", "crash"])
def test_up_leaves_no_process_behind(tmp_path: Path, sig: signal.Signals) -> None:
    proc, children = _start_up(tmp_path)
    proc.send_signal(sig)
    proc.wait(30)
    assert _all_gone(children), f"left running after {sig.name}: {children}"


def test_evaluate_runs_baselines_and_product_on_a_small_log(tmp_path: Path, model_dir: Path) -> None:
    lines = [{"item_id": f"i{j}", "title": t} for j, t in enumerate(["wireless earbuds", "running shoes", "chef knife"])]
    ts = 1.7e9
    for n in range(60):
        user = f"u{n % 6}"
        lines.append({"event_id": f"e{n}", "user_id": user, "item_id": f"i{(n // 6 + n) % 3}", "kind": "view", "ts": ts + n})
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    out = tmp_path / "figures.json"
    result = CliRunner().invoke(
        main,
        ["evaluate", str(path), "--format", "jsonl", "--json", str(out), "--out", str(tmp_path / "report")],
        env={"STREAMREC_MODEL_DIR": str(model_dir)},
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())["figures"]
    assert set(figures) == {"popularity", "recency-popularity(86400s)", "covisitation(last 5)", "product"}
    # 80% of the 60 events are after the warm-up; re-visits of an item are learned, not scored.
    assert all(f["n"] + f["repeats"] == 48 and f["n"] > 0 for f in figures.values())
    assert "HR@10" in result.output
    assert (tmp_path / "report" / "log.json").exists() and (tmp_path / "report" / "log.png").exists()

    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    result = CliRunner().invoke(main, ["evaluate", str(bad), "--format", "jsonl"])
    assert result.exit_code == 1 and "cannot read" in result.output and "bad.jsonl" in result.output
