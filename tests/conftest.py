from __future__ import annotations

from collections.abc import Iterator
import logging
import os
import uuid

import optuna
import pytest
import torch


@pytest.fixture(autouse=True)
def _quiet_and_deterministic() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna_sosae").setLevel(logging.INFO)
    torch.set_num_threads(1)


# The database servers of the multi-worker tests. Under CI (CI=true) a server that does not
# answer fails the test; elsewhere the test is skipped with the command that starts it.
_SERVERS = {
    "postgresql": (
        "postgresql+psycopg2://postgres@127.0.0.1:5432/test",
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
    "mysql": (
        "mysql+pymysql://root@127.0.0.1:3306/test",
        "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    ),
}
_reachable: dict[str, str | None] = {}


def _server_problem(url: str) -> str | None:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as err:  # Any failure to connect means the server is not usable.
        text = str(err).strip().splitlines()
        return text[0] if text else type(err).__name__
    return None


def server_url(backend: str) -> str:
    """The URL of a running server for ``backend``; skips (or fails under CI) without one."""
    url, start = _SERVERS[backend]
    if backend not in _reachable:
        _reachable[backend] = _server_problem(url)
    problem = _reachable[backend]
    if problem is not None:
        message = f"{backend} server at {url} is not reachable ({problem}); start it with: {start}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(params=sorted(_SERVERS))
def db_url(request: pytest.FixtureRequest) -> str:
    """URL of each database server in turn (PostgreSQL, then MariaDB/MySQL)."""
    return server_url(str(request.param))


@pytest.fixture
def postgres_url() -> str:
    """URL of the PostgreSQL server alone."""
    return server_url("postgresql")


@pytest.fixture
def study_name() -> str:
    """A study name no other test (or earlier run) uses."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def empty_db_url(db_url: str) -> Iterator[str]:
    """A new, empty database on each server in turn, dropped after the test.

    Workers that start together on it also race to create Optuna's tables.
    """
    import sqlalchemy

    name = f"sosae_{uuid.uuid4().hex[:12]}"
    server = sqlalchemy.engine.make_url(db_url)
    engine = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        force = " WITH (FORCE)" if server.get_backend_name() == "postgresql" else ""
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f"DROP DATABASE {name}{force}"))
        engine.dispose()
