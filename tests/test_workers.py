"""Many workers on one study, killed workers and resumed studies, on the real servers.

Every test here runs against both PostgreSQL and MariaDB (``db_url``) and starts real
processes: the ``optuna-sosae tune`` CLI, or ``sosae_worker.py`` (a user's own
``study.optimize`` with SOSAESampler and SOSAEPruner).
"""

from __future__ import annotations

from collections.abc import Callable
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
import pytest
import sosae_worker

import optuna_sosae
from optuna_sosae import _attrs


pytestmark = pytest.mark.db

REPO = Path(__file__).resolve().parents[1]
WORKERS = 4
CLI_EPOCHS = 60
GRACE = 4


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # Four workers share the machine's cores; one thread each keeps them from fighting.
    env["OMP_NUM_THREADS"] = "1"
    return env


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def _tune(*args: str) -> list[str]:
    return ["-m", "optuna_sosae.cli", "tune", *args]


def _write_data(path: Path, seed: int = 0) -> Path:
    # Small enough that a probe settles in about a second: 400 samples of a 3-factor mixture.
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((400, 3))
    x = factors @ rng.standard_normal((3, 12)) + 0.05 * rng.standard_normal((400, 12))
    np.savez(path, X=x.astype(np.float32))
    return path


def _epochs(trial: FrozenTrial) -> int:
    stored = trial.system_attrs.get(_attrs.SYS_TRAJECTORY)
    return len(stored[0]) if stored else 0


def _wait_for(condition: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout} s")


def _check_study(study: optuna.Study, reported: list[Any]) -> int:
    """The invariants of a finished multi-worker study; returns the tuned width."""
    trials = study.get_trials(deepcopy=False)
    width = optuna_sosae.tuned_latent_dim(study)
    assert isinstance(width, int)
    assert reported == [width] * len(reported)
    assert study.user_attrs[_attrs.LATENT_DIM] == width

    # Exactly one width decided: every tuned trial trained at it and recorded it.
    tuned = [t for t in trials if t.user_attrs.get(_attrs.ROLE) == _attrs.TUNED]
    assert tuned
    assert {t.params["latent_dim"] for t in tuned} == {width}
    assert {t.system_attrs[_attrs.SYS_DECIDED] for t in tuned} == {width}
    assert all(t.state == TrialState.COMPLETE for t in tuned)

    # Every finished trial has an int FLOP count, and the total is their sum.
    finished = [t for t in trials if t.state.is_finished()]
    assert len(finished) == len(trials)
    for t in finished:
        flops = t.user_attrs.get(_attrs.FLOPS)
        assert isinstance(flops, int) and not isinstance(flops, bool), (t.number, flops)
    assert study.user_attrs[_attrs.FLOPS_TOTAL] == sum(t.user_attrs["flops"] for t in trials)

    # Nothing counted twice: trials of the same shape cost the same per epoch, so each count
    # is its own epochs times that cost (a count carried over would break the equality).
    probes = [t for t in finished if t.user_attrs.get(_attrs.ROLE) == _attrs.PROBE]
    assert probes
    per_epoch = {t.user_attrs["flops"] / _epochs(t) for t in probes if _epochs(t)}
    assert len(per_epoch) == 1, per_epoch
    assert len({t.user_attrs["flops"] for t in tuned}) == 1
    return width


def test_cli_workers_agree_on_one_width(
    empty_db_url: str, study_name: str, tmp_path: Path
) -> None:
    # The workers start together on an empty database, as on a team's first run.
    db_url = empty_db_url
    data = _write_data(tmp_path / "data.npz")
    args = _tune(
        "--data", str(data), "--max-dim", "12", "--epochs", str(CLI_EPOCHS),
        "--storage", db_url, "--study-name", study_name, "--json",
    )  # fmt: skip
    workers = [_start(args) for _ in range(WORKERS)]
    results = [_finish(w) for w in workers]
    for code, _, err in results:
        assert code == 0, err
    summaries = [json.loads(out) for _, out, _ in results]

    study = optuna.load_study(study_name=study_name, storage=db_url)
    width = _check_study(study, [s["latent_dim"] for s in summaries])
    trials = study.get_trials(deepcopy=False)
    # Each CLI worker probes until a width is decided, then trains its own tuned trial.
    assert len({s["tuned_trial"] for s in summaries}) == WORKERS
    for summary in summaries:
        assert trials[summary["tuned_trial"]].user_attrs[_attrs.ROLE] == _attrs.TUNED
        assert trials[summary["tuned_trial"]].params["latent_dim"] == width
        assert summary["flops_total"] <= study.user_attrs[_attrs.FLOPS_TOTAL]


def test_own_optimize_workers_agree_on_one_width(db_url: str, study_name: str) -> None:
    # Each worker's TPE draws its own learning rate, so the probes that run at once explore
    # different values; the first to finish with a converged width decides for all.
    # As Optuna advises for distributed runs, the study is created once before the workers
    # start (workers that all create Optuna's tables on a new database race each other).
    sosae_worker.make_study(db_url, study_name, grace_period=GRACE, seed=0)
    worker = str(REPO / "tests" / "sosae_worker.py")
    workers = [
        _start([worker, db_url, study_name, "--n-trials", "2", "--seed", str(seed)])
        for seed in range(WORKERS)
    ]
    results = [_finish(w) for w in workers]
    for code, _, err in results:
        assert code == 0, err
    reports = [json.loads(out) for _, out, _ in results]

    study = optuna.load_study(study_name=study_name, storage=db_url)
    _check_study(study, [r["latent_dim"] for r in reports])
    numbers = sorted(n for r in reports for n in r["trials"])
    assert numbers == list(range(2 * WORKERS))

    trials = study.get_trials(deepcopy=False)
    decider = _attrs.converged_probes(trials)[0]
    probes = [t for t in trials if t.user_attrs[_attrs.ROLE] == _attrs.PROBE]
    assert len({t.params["lr"] for t in probes}) == len(probes)
    for t in probes:
        outcome = t.system_attrs[_attrs.SYS_OUTCOME]
        if t.number == decider.number:
            assert outcome.startswith(("converged", "ran out of epochs at width")), outcome
        elif t.datetime_complete < decider.datetime_complete:
            # Ended before the width was decided: it ran out of epochs unconverged (any other
            # ending would have converged first), so its worker's next trial probed again.
            assert outcome.startswith("ran out of epochs"), outcome
        elif not outcome.startswith("superseded"):
            # Still running when the width was decided, it should have stood down at its next
            # check; settling and running out of epochs check first too. Only a probe that
            # checked in the moment between the decider storing its width and its trial being
            # marked finished ends otherwise, so just after the decider, and whatever it
            # stored is not used (`_check_study` above). A probe that ignored the decision
            # would run on for epochs.
            after = (t.datetime_complete - decider.datetime_complete).total_seconds()
            assert after < 5, (outcome, after)
    # Every trial started after the decision was a tuned trial at the decided width.
    later = [t for t in trials if t.datetime_start > decider.datetime_complete]
    assert all(t.user_attrs[_attrs.ROLE] == _attrs.TUNED for t in later)


def _kill_probe_mid_run(db_url: str, study_name: str) -> tuple[int, int]:
    """Start a slow worker, SIGKILL it once its probe has written FLOPs for a few epochs."""
    worker = _start(
        [str(REPO / "tests" / "sosae_worker.py"), db_url, study_name, "--n-trials", "1",
         "--sleep", "0.2", "--grace", str(GRACE), "--seed", "0"]
    )  # fmt: skip

    def probe_flops() -> int:
        try:
            trials = optuna.load_study(study_name=study_name, storage=db_url).trials
        except KeyError:  # The worker has not created the study yet.
            return 0
        if not trials or _epochs(trials[0]) < 3:
            return 0
        return int(trials[0].user_attrs.get(_attrs.FLOPS, 0))

    try:
        _wait_for(probe_flops)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.communicate()
    assert worker.returncode == -signal.SIGKILL
    killed = optuna.load_study(study_name=study_name, storage=db_url).trials[0]
    assert killed.state == TrialState.RUNNING
    return int(killed.user_attrs[_attrs.FLOPS]), _epochs(killed)


def _wait_until_stale() -> None:
    time.sleep(GRACE + 2 * sosae_worker.HEARTBEAT_INTERVAL)


def test_killed_probe_is_retried_from_scratch(db_url: str, study_name: str) -> None:
    killed_flops, killed_epochs = _kill_probe_mid_run(db_url, study_name)
    _wait_until_stale()

    # A new worker fails the stale trial, re-queues it and runs the retry first.
    study = sosae_worker.make_study(db_url, study_name, grace_period=GRACE, seed=1)
    study.optimize(sosae_worker.make_objective(), n_trials=2)

    killed, retry, tuned = study.get_trials(deepcopy=False)
    assert killed.state == TrialState.FAIL
    assert killed.user_attrs[_attrs.FLOPS] == killed_flops > 0
    assert retry.system_attrs["failed_trial"] == killed.number
    assert retry.user_attrs[_attrs.ROLE] == _attrs.PROBE
    assert retry.user_attrs[sosae_worker.SEEN_FLOPS] == 0
    assert retry.user_attrs[sosae_worker.SEEN_CONVERGED] is None
    assert retry.system_attrs[_attrs.SYS_OUTCOME].startswith("converged")
    # The retry's count covers its own epochs only, at the cost per epoch the killed run had
    # (it wrote FLOPs after each epoch; the kill may fall between that write and the next).
    per_epoch = retry.user_attrs[_attrs.FLOPS] // _epochs(retry)
    assert retry.user_attrs[_attrs.FLOPS] == per_epoch * _epochs(retry)
    assert killed_flops // per_epoch in (killed_epochs, killed_epochs + 1)
    assert killed_flops % per_epoch == 0

    assert tuned.user_attrs[_attrs.ROLE] == _attrs.TUNED
    assert tuned.params["latent_dim"] == retry.system_attrs[_attrs.SYS_CONVERGED]
    assert optuna_sosae.tuned_latent_dim(study) == tuned.params["latent_dim"]
    assert study.user_attrs[_attrs.FLOPS_TOTAL] == sum(
        t.user_attrs[_attrs.FLOPS] for t in (killed, retry, tuned)
    )


def test_retry_after_a_width_converged_stands_down(db_url: str, study_name: str) -> None:
    killed_flops, _ = _kill_probe_mid_run(db_url, study_name)

    # Before the killed trial turns stale, another worker's probe decides the width.
    study = sosae_worker.make_study(db_url, study_name, grace_period=GRACE, seed=1)
    study.optimize(sosae_worker.make_objective(), n_trials=1)
    assert study.trials[0].state == TrialState.RUNNING
    width = optuna_sosae.tuned_latent_dim(study)
    assert isinstance(width, int)

    _wait_until_stale()
    study.optimize(sosae_worker.make_objective(), n_trials=2)

    killed, probe, retry, tuned = study.get_trials(deepcopy=False)
    assert killed.state == TrialState.FAIL
    assert killed.user_attrs[_attrs.FLOPS] == killed_flops > 0
    assert probe.system_attrs[_attrs.SYS_CONVERGED] == width
    # The retry carries the generous width; it must not train there as a tuned trial.
    assert retry.system_attrs["failed_trial"] == killed.number
    assert retry.params["latent_dim"] == sosae_worker.MAX_DIM
    assert retry.user_attrs[_attrs.ROLE] == _attrs.SUPERSEDED
    assert retry.state == TrialState.PRUNED
    assert retry.user_attrs[_attrs.FLOPS] == 0
    assert _attrs.SYS_CONVERGED not in retry.system_attrs or (
        retry.system_attrs[_attrs.SYS_CONVERGED] is None
    )
    assert tuned.user_attrs[_attrs.ROLE] == _attrs.TUNED
    assert tuned.params["latent_dim"] == width
    assert optuna_sosae.tuned_latent_dim(study) == width
    assert study.user_attrs[_attrs.FLOPS_TOTAL] == sum(
        t.user_attrs[_attrs.FLOPS] for t in study.trials
    )


def test_resumed_cli_continues_and_refuses_other_settings(
    db_url: str, study_name: str, tmp_path: Path
) -> None:
    data = _write_data(tmp_path / "data.npz")
    common = ["--epochs", str(CLI_EPOCHS), "--storage", db_url, "--study-name", study_name]
    first = _finish(_start(_tune("--data", str(data), "--max-dim", "12", *common, "--json")))
    assert first[0] == 0, first[2]
    width = json.loads(first[1])["latent_dim"]
    study = optuna.load_study(study_name=study_name, storage=db_url)
    first_roles = [t.user_attrs[_attrs.ROLE] for t in study.trials]

    # A new process on the same storage: no new probe, one more tuned trial.
    again = _finish(_start(_tune("--data", str(data), "--max-dim", "12", *common, "--json")))
    assert again[0] == 0, again[2]
    assert json.loads(again[1])["latent_dim"] == width
    study = optuna.load_study(study_name=study_name, storage=db_url)
    roles = [t.user_attrs[_attrs.ROLE] for t in study.trials]
    assert roles == [*first_roles, _attrs.TUNED]
    assert study.trials[-1].params["latent_dim"] == width
    before = (len(study.trials), study.user_attrs)

    other = _write_data(tmp_path / "other.npz", seed=1)
    for args, named in (
        (["--data", str(other), "--max-dim", "12"], "data"),
        (["--data", str(data), "--max-dim", "8"], "latent_range"),
    ):
        code, out, err = _finish(_start(_tune(*args, *common)))
        assert code == 2
        assert out == ""
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
        assert named in err and study_name in err
    study = optuna.load_study(study_name=study_name, storage=db_url)
    assert (len(study.trials), study.user_attrs) == before
