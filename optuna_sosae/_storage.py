"""heartbeat_storage: an Optuna RDB storage set up for several SOSAE workers."""

from __future__ import annotations

from typing import Any
import warnings

import optuna


def heartbeat_storage(
    url: str,
    *,
    heartbeat_interval: int = 10,
    grace_period: int = 30,
    max_retry: int = 1,
    engine_kwargs: dict[str, Any] | None = None,
) -> optuna.storages.RDBStorage:
    """Open an RDB storage whose heartbeat recovers the trials of killed workers.

    A worker that dies in the middle of a trial (SIGKILL, a lost machine) leaves the trial
    running forever. With a heartbeat, each running trial records that it is alive every
    ``heartbeat_interval`` seconds; once ``grace_period`` seconds have passed without a beat,
    the next worker that starts a trial marks it failed, and
    :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback` queues a copy with the same
    parameters, up to ``max_retry`` times. The FLOPs the dead trial had written stay counted.
    :class:`~optuna_sosae.SOSAESampler` recognises such a copy of a probe: it starts from zero
    FLOPs without the dead run's width, and if a width has been decided meanwhile it ends at
    once as ``superseded`` instead of training at the generous width.

    ``optuna-sosae tune`` and ``compare`` open every storage URL this way; a user's own
    workers should too.

    Args:
        url:
            SQLAlchemy URL, for example ``postgresql+psycopg2://user@host/db`` or
            ``mysql+pymysql://user@host/db``.
        heartbeat_interval:
            Seconds between heartbeats of a running trial.
        grace_period:
            Seconds without a heartbeat after which a trial counts as dead. Keep it a few
            times ``heartbeat_interval``.
        max_retry:
            How many times a dead trial is queued again.
        engine_kwargs:
            Passed to :func:`sqlalchemy.create_engine` (pool and connection options).

    Example:

        .. code-block:: python

            storage = optuna_sosae.heartbeat_storage("postgresql+psycopg2://user@host/db")
            study = optuna.load_study(
                study_name="team-run",
                storage=storage,
                sampler=optuna_sosae.SOSAESampler("latent_dim"),
                pruner=optuna_sosae.SOSAEPruner(),
            )
    """
    if heartbeat_interval < 1 or grace_period <= heartbeat_interval or max_retry < 0:
        raise ValueError(
            "expected heartbeat_interval >= 1, grace_period > heartbeat_interval and "
            f"max_retry >= 0, got {heartbeat_interval!r}, {grace_period!r}, {max_retry!r}."
        )
    with warnings.catch_warnings():
        # Optuna marks heartbeats experimental; they are what makes a killed worker's trial
        # recoverable, so they are used knowingly.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=max_retry
            ),
            engine_kwargs=engine_kwargs,
        )
