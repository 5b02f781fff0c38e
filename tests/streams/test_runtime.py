"""The embedded Tansu + Valkey runtime: servers answer, bind loopback, and never outlive us."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis
from kafka.admin import KafkaAdminClient
from pydantic import SecretStr

from streams.runtime import (
    EmbeddedBroker,
    EmbeddedRedis,
    EmbeddedRuntime,
    ServerStartError,
    pid_alive,
    resolve_addresses,
)
from streams.settings import Settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def wait_dead(pids: list[int], timeout: float = 8.0) -> list[int]:
    """PIDs still alive after ``timeout`` seconds (zombies count as dead)."""
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if pid_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if pid_alive(p)]
    return alive


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def sockets_of(pid: int) -> list[tuple[str, str, int, str]]:
    """(table, local address hex, port, state hex) of every inet socket ``pid`` holds."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[9] in inodes:
                addr, hexport = fields[1].split(":")
                found.append((table, addr, int(hexport, 16), fields[3]))
    return found


# --------------------------------------------------------------------------- in process


def test_both_servers_answer(embedded: EmbeddedRuntime) -> None:
    assert embedded.bootstrap.startswith("127.0.0.1:")
    assert embedded.url.startswith("redis://127.0.0.1:")
    client = redis.Redis.from_url(embedded.url)
    try:
        assert client.ping() is True
        client.set("runtime-test", "v")
        assert client.get("runtime-test") == b"v"
        client.delete("runtime-test")
    finally:
        client.close()
    admin = KafkaAdminClient(bootstrap_servers=embedded.bootstrap, client_id="runtime-test")
    try:
        cluster = admin.describe_cluster()
    finally:
        admin.close()
    assert [(b["host"], b["port"]) for b in cluster["brokers"]] == [("127.0.0.1", embedded.broker.port)]


def test_servers_listen_on_loopback_only(embedded: EmbeddedRuntime) -> None:
    """Reads /proc/net/tcp: streamrec runs on Linux (the embedded servers need PR_SET_PDEATHSIG)."""
    for server in (embedded.broker, embedded.redis):
        assert server.pid is not None
        listening = [s for s in sockets_of(server.pid) if s[0].startswith("udp") or s[3] == "0A"]
        # exactly one listener each, on 127.0.0.1 (0100007F) and the advertised port
        assert listening == [("tcp", "0100007F", server.port, "0A")], (server, listening)


def test_stop_leaves_no_process_nor_temp_dir() -> None:
    rt = EmbeddedRuntime()
    with rt:
        pids = rt.pids
        dirs = [rt.broker.workdir, rt.redis.workdir]
        ports = [rt.broker.port, rt.redis.port]
        assert len(pids) == 2 and all(pid_alive(p) for p in pids)
        assert all(d is not None and d.is_dir() for d in dirs)
        assert rt.running
        assert rt.startup_seconds is not None and rt.startup_seconds < 20
    assert not rt.running
    # stop() reaps its children: the PIDs are gone at once, not merely zombies
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not any(d.exists() for d in dirs if d is not None)
    assert all(refuses(p) for p in ports)
    rt.stop()  # stopping twice is harmless


def test_single_servers_as_context_managers() -> None:
    with EmbeddedBroker() as broker, EmbeddedRedis() as valkey:
        assert broker.bootstrap == f"127.0.0.1:{broker.port}"
        assert valkey.url == f"redis://127.0.0.1:{valkey.port}"
        assert broker.log_path is not None and "tansu" in broker.log_path.read_text()
        pids = [broker.pid, valkey.pid]
        with pytest.raises(RuntimeError, match="already started"):
            broker.start()
    assert wait_dead(pids, timeout=0) == []  # type: ignore[arg-type]


def test_resolve_addresses_starts_and_stops_embedded() -> None:
    base = Settings(kafka_bootstrap_servers=None, redis_url=None, app_id="resolve-test")
    with resolve_addresses(base) as resolved:
        assert resolved is not base and resolved.app_id == "resolve-test"
        assert resolved.kafka_bootstrap_servers and resolved.kafka_bootstrap_servers.startswith("127.0.0.1:")
        assert isinstance(resolved.redis_url, SecretStr)
        url = resolved.redis_url.get_secret_value()
        assert redis.Redis.from_url(url).ping()
        assert not resolved.embedded
    assert base.embedded  # the original is untouched
    port = int(url.rsplit(":", 1)[1])
    assert refuses(port)


def test_resolve_addresses_keeps_configured_settings() -> None:
    s = Settings(kafka_bootstrap_servers="kafka.example:9092", redis_url="redis://cache:6379/0")
    with resolve_addresses(s) as resolved:
        assert resolved is s


def _fake_server(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-server"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return script


def test_early_exit_reports_the_log_tail(tmp_path: Path) -> None:
    fake = _fake_server(tmp_path, 'echo "fatal: cannot frobnicate the widget" >&2\nexit 3')
    with pytest.raises(ServerStartError, match="exited with code 3") as info:
        EmbeddedBroker(binary=fake).start()
    assert "cannot frobnicate the widget" in str(info.value)


def test_startup_timeout_kills_the_server(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    fake = _fake_server(tmp_path, f'echo $$ > {pid_file}\necho "still booting"\nexec sleep 60')
    server = EmbeddedRedis(binary=fake, startup_timeout=0.5)
    with pytest.raises(ServerStartError, match="did not answer") as info:
        server.start()
    assert "still booting" in str(info.value)
    pid = int(pid_file.read_text())
    assert pid == server.pid
    assert not pid_alive(pid)


def test_runtime_stops_broker_when_redis_fails(tmp_path: Path) -> None:
    rt = EmbeddedRuntime(redis_binary=_fake_server(tmp_path, "exit 1"))
    with pytest.raises(ServerStartError):
        rt.start()
    assert rt.broker.pid is not None
    assert not pid_alive(rt.broker.pid)
    assert not rt.running


# --------------------------------------------------------------------------- in a child process

# The runtime used as the CLI uses it; the test kills, interrupts or lets it crash.
CHILD = textwrap.dedent(
    """
    import json, sys, time
    from streams.runtime import EmbeddedRuntime

    def report(rt):
        info = {"pids": rt.pids, "dirs": [str(rt.broker.workdir), str(rt.redis.workdir)],
                "ports": [rt.broker.port, rt.redis.port]}
        print(json.dumps(info), flush=True)

    mode = sys.argv[1]
    if mode == "exit":   # no context manager, no stop(): the atexit hook must clean up
        report(EmbeddedRuntime().start())
        sys.stdin.readline()  # the test checks the servers are up, then lets us exit
        sys.exit(0)
    with EmbeddedRuntime() as rt:
        report(rt)
        if mode == "raise":
            sys.stdin.readline()  # as in "exit": fail only once the test has seen the servers up
            raise RuntimeError("boom after start")
        time.sleep(60)   # killed / interrupted by the test
    """
)


def _ctrl_c_reaches_child() -> None:
    """Undo an inherited SIG_IGN for SIGINT (a test run started in the background by a shell
    ignores it, and Python then keeps ignoring it), so the Ctrl-C case tests the product."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_child(mode: str) -> tuple[subprocess.Popen[str], dict]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ctrl_c_reaches_child,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"child did not report its servers (rc={proc.returncode}):\n{err[-3000:]}")
    return proc, json.loads(line)


@pytest.mark.parametrize(
    ("mode", "action"),
    [
        ("sleep", signal.SIGKILL),  # parent killed hard: PR_SET_PDEATHSIG must stop the children
        ("sleep", signal.SIGTERM),  # default SIGTERM: no Python cleanup runs either
        ("sleep", signal.SIGINT),   # Ctrl-C: KeyboardInterrupt unwinds through the context manager
        ("raise", None),            # a crash after start
        ("exit", None),             # plain exit without stop(): the atexit hook
    ],
    ids=["sigkill", "sigterm", "ctrl-c", "exception", "atexit"],
)
def test_no_server_outlives_its_parent(mode: str, action: signal.Signals | None) -> None:
    proc, info = _start_child(mode)
    try:
        pids = info["pids"]
        assert len(pids) == 2 and all(pid_alive(p) for p in pids), info
        if action is not None:
            proc.send_signal(action)
        elif proc.stdin:
            proc.stdin.close()  # "exit" mode waits for this; the others ignore stdin
        rc = proc.wait(timeout=30)
        if action is not None:
            assert rc != 0
        if mode == "raise":
            assert rc == 1 and "boom after start" in (proc.stderr.read() if proc.stderr else "")
        if mode == "exit":
            assert rc == 0
        survivors = wait_dead(pids, timeout=20.0)
        if survivors:
            err = proc.stderr.read() if proc.stderr else ""
            names = {p: _comm(p) for p in survivors}
            pytest.fail(f"servers {names} survived their parent ({mode}, {action}); its stderr:\n{err[-3000:]}")
        assert all(refuses(p) for p in info["ports"])
        if action in (None, signal.SIGINT):  # Python cleanup ran: temp dirs are gone too
            assert not any(Path(d).exists() for d in info["dirs"])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream:
                stream.close()
