from __future__ import annotations

from pathlib import Path

import optuna
import pytest

import optuna_sosae


def test_heartbeat_storage_fails_and_retries_dead_trials(tmp_path: Path) -> None:
    storage = optuna_sosae.heartbeat_storage(
        f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=2, grace_period=5, max_retry=2
    )
    assert storage.get_heartbeat_interval() == 2
    assert storage.grace_period == 5
    callback = storage.get_heartbeat_stale_trial_callback()
    assert isinstance(callback, optuna.storages.RetryHeartbeatStaleTrialCallback)
    assert callback._max_retry == 2


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"heartbeat_interval": 0}, "got 0, 30, 1"),
        ({"heartbeat_interval": 10, "grace_period": 10}, "got 10, 10, 1"),
        ({"max_retry": -1}, "got 10, 30, -1"),
    ],
)
def test_heartbeat_storage_names_bad_settings(
    tmp_path: Path, kwargs: dict[str, int], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        optuna_sosae.heartbeat_storage(f"sqlite:///{tmp_path / 's.db'}", **kwargs)
    assert not (tmp_path / "s.db").exists()
