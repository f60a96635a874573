"""Start-up errors are one line naming what was tried (never a password), exit code 1, never a traceback."""

from __future__ import annotations

import socket

from hub.testing import free_port
from tests.ops.daemon import hub_cli, hub_env


def one_line_error(result) -> str:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_a_bad_bus_url_is_one_line(embedded):
    env = hub_env(embedded, HUB_BUS_URL="rabbit://guest:s3cretpass@x")
    line = one_line_error(hub_cli(env, "run", "--role", "worker", "--metrics-port", "0"))
    assert "bad bus URL rabbit://x" in line and "No such transport" in line and "s3cretpass" not in line


def test_an_unreachable_broker_names_host_and_port(embedded):
    port = free_port()
    env = hub_env(embedded, HUB_BUS_URL=f"amqp://guest:s3cretpass@127.0.0.1:{port}//")
    line = one_line_error(hub_cli(env, "run", "--role", "worker", "--metrics-port", "0"))
    assert f"cannot reach the bus at amqp://127.0.0.1:{port}" in line and "refused" in line
    assert "s3cretpass" not in line and "guest" not in line


def test_an_unreachable_database_names_host_and_port(embedded):
    port = free_port()
    env = hub_env(embedded, HUB_DATABASE_URL=f"postgresql+psycopg://hub:s3cretpass@127.0.0.1:{port}/hub")
    line = one_line_error(hub_cli(env, "run", "--port", str(free_port())))
    assert f"cannot use the database at postgresql://127.0.0.1:{port}/hub" in line
    assert "s3cretpass" not in line


def test_a_read_only_database_is_refused_at_start(embedded, tmp_path):
    hub_cli(hub_env(embedded), "db", "upgrade")
    read_only = f"sqlite:///file:{tmp_path / 'hub.db'}?mode=ro&uri=true"
    line = one_line_error(hub_cli(hub_env(embedded, HUB_DATABASE_URL=read_only), "run", "--port", str(free_port())))
    assert "cannot use the database at sqlite:///" in line and "readonly" in line


def test_a_data_directory_that_cannot_be_written_is_refused(embedded, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data directory should be")
    env = hub_env(embedded, HUB_DATA_DIR=str(blocker / "var"), HUB_DATABASE_URL="")
    env.pop("HUB_DATABASE_URL")
    line = one_line_error(hub_cli(env, "run", "--port", str(free_port())))
    assert str(blocker / "var") in line and "data directory" in line


def test_a_port_in_use_is_refused_before_anything_starts(embedded, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = hub_cli(hub_env(embedded, HUB_LOG_LEVEL="info"), "run", "--port", str(port))
        line = one_line_error(result)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "already in use" in line
    assert "hub started" not in result.stderr  # no worker was started before the check


def test_the_metrics_port_of_a_worker_is_checked_too(production):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(hub_cli(hub_env(production), "run", "--role", "worker", "--metrics-port", str(port)))
    assert f"cannot listen on 127.0.0.1:{port} (metrics" in line
