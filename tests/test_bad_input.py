"""Bad input gets a clear error naming the offending value, and loses nothing.

The library raises ValueError or TypeError (NoConvergedWidthError when probes keep failing);
the CLI exits with status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
import os
from pathlib import Path
import socket
import subprocess
import sys
import time

import numpy as np
import optuna
from optuna.trial import TrialState
import pytest
import torch

import optuna_sosae
from optuna_sosae import _attrs
from optuna_sosae import cli


REPO = Path(__file__).resolve().parents[1]


def _study(max_probes: int = 3) -> optuna.Study:
    return optuna.create_study(
        sampler=optuna_sosae.SOSAESampler("latent_dim", max_probes=max_probes, seed=0),
        pruner=optuna_sosae.SOSAEPruner(patience=2),
    )


def test_bridge_names_a_latent_parameter_the_objective_never_suggested() -> None:
    def objective(trial: optuna.Trial) -> float:
        trial.suggest_int("width", 1, 8)
        optuna_sosae.SOSAEBridge(trial, decoder_weight=torch.ones(4, 8), baseline_loss=1.0)
        return 0.0

    with pytest.raises(ValueError, match="'latent_dim'"):
        _study().optimize(objective, n_trials=1)


@pytest.mark.parametrize(
    ("suggest", "error", "named"),
    [
        (lambda t: t.suggest_float("latent_dim", 1.0, 8.0), TypeError, "'latent_dim'"),
        (lambda t: t.suggest_int("latent_dim", 1, 8, log=True), TypeError, "'latent_dim'"),
        (lambda t: t.suggest_int("latent_dim", 0, 8), ValueError, "got 0"),
        # Optuna itself refuses the distribution, naming both bounds.
        (lambda t: t.suggest_int("latent_dim", 8, 1), ValueError, "low=8, high=1"),
    ],
)
def test_bad_latent_distribution_is_named(
    suggest: Callable[[optuna.Trial], object], error: type[Exception], named: str
) -> None:
    study = _study()
    with pytest.raises(error, match=named):
        study.optimize(lambda t: float(bool(suggest(t))), n_trials=1)
    assert study.trials[0].state == TrialState.FAIL


def _fake_probe(outcome: str) -> Callable[[optuna.Trial], float]:
    """An objective whose probe diverges, collapses to width 0, or settles at width 3."""

    def objective(trial: optuna.Trial) -> float:
        width = trial.suggest_int("latent_dim", 1, 8)
        bridge = optuna_sosae.SOSAEBridge(
            trial, decoder_weight=torch.ones(4, width), baseline_loss=1.0, tolerance=0.1
        )
        for _ in range(50):
            # A loss a little under the budget (0.1) lets the penalty bind, so a probe whose
            # first 3 units carry signal settles at width 3; an all-zero code has width 0.
            codes = torch.zeros(16, width)
            loss = 0.06
            if outcome == "settle":
                codes[:, :3] = torch.randn(16, 3)
            elif outcome != "collapse":
                loss = float(outcome)
            bridge.epoch_end(loss, codes)
        bridge.finish()
        return loss

    return objective


@pytest.mark.parametrize("outcome", ["nan", "inf", "collapse"])
def test_failed_probes_are_not_converged_and_end_in_a_clear_error(outcome: str) -> None:
    study = _study(max_probes=2)
    study.optimize(_fake_probe(outcome), n_trials=2)
    assert [t.user_attrs[_attrs.ROLE] for t in study.trials] == [_attrs.PROBE] * 2
    assert all(t.state == TrialState.PRUNED for t in study.trials)
    assert optuna_sosae.tuned_latent_dim(study) is None
    expected = "collapsed" if outcome == "collapse" else "diverged"
    assert all(t.system_attrs[_attrs.SYS_OUTCOME].startswith(expected) for t in study.trials)
    with pytest.raises(optuna_sosae.NoConvergedWidthError, match=f"2 probe.*{expected}"):
        study.optimize(_fake_probe("settle"), n_trials=1)


def test_a_failed_probe_is_followed_by_a_new_probe_that_decides() -> None:
    study = _study()
    study.optimize(_fake_probe("nan"), n_trials=1)
    study.optimize(_fake_probe("settle"), n_trials=2)
    roles = [t.user_attrs[_attrs.ROLE] for t in study.trials]
    assert roles == [_attrs.PROBE, _attrs.PROBE, _attrs.TUNED]
    assert optuna_sosae.tuned_latent_dim(study) == 3
    assert study.trials[2].params["latent_dim"] == 3


def _run_cli(args: list[str], tmp_path: Path) -> tuple[int, str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "optuna_sosae.cli", "tune", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, result.stdout, result.stderr


def _assert_one_line_error(code: int, out: str, err: str, *named: str) -> None:
    assert code == 2, err
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for name in named:
        assert name in lines[0], lines[0]


def _data_file(tmp_path: Path, kind: str) -> Path:
    if kind == "missing":
        return tmp_path / "missing.csv"
    path = tmp_path / {"damaged": "data.npz", "ragged": "r.csv", "text": "t.csv"}.get(
        kind, "e.csv"
    )
    if kind == "empty":
        path.write_text("")
    elif kind == "ragged":
        path.write_text("a,b,c\n1,2,3\n4,5\n")
    elif kind == "text":
        path.write_text("1,2,3\n4,five,6\n")
    elif kind == "damaged":
        path.write_bytes(b"PK\x03\x04 not really a zip archive")
    return path


@pytest.mark.parametrize(
    ("kind", "named"),
    [
        ("missing", "does not exist"),
        ("empty", "is empty"),
        ("ragged", "ragged"),
        ("text", "'five'"),
        ("damaged", "could not read"),
    ],
)
def test_cli_bad_data_file(kind: str, named: str, tmp_path: Path) -> None:
    path = _data_file(tmp_path, kind)
    code, out, err = _run_cli(["--data", str(path), "--storage", "sqlite:///s.db"], tmp_path)
    _assert_one_line_error(code, out, err, str(path), named)
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--max-dim", "0"], "--max-dim: must be at least 1, got 0"),
        (["--max-dim", "two"], "--max-dim: expected a whole number, got 'two'"),
        (["--epochs", "-3"], "--epochs: must be at least 1, got -3"),
        (["--storage", "optuna.db"], "'optuna.db' is not a database URL"),
        (["--storage", "nosuchdb://x"], "cannot open storage 'nosuchdb://x'"),
        (["--storage", "postgresql+psycopg2://u@127.0.0.1:port/x"], "cannot open storage"),
        (["--storage", "postgresql+psycopg2://postgres@127.0.0.1:1/test"], "port 1"),
        (["--storage", "mysql+pymysql://root@127.0.0.1:1/test"], "cannot open storage"),
    ],
)
def test_cli_bad_arguments_and_storage(args: list[str], named: str, tmp_path: Path) -> None:
    code, out, err = _run_cli(["--dataset", "synthetic", *args], tmp_path)
    _assert_one_line_error(code, out, err, named)


def test_cli_storage_that_never_answers_times_out(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A server that accepts the connection and then says nothing, like a firewalled port that
    # does not reject: without a connect timeout the CLI would wait for minutes.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    monkeypatch.setattr(cli, "CONNECT_TIMEOUT", 2)
    try:
        for url in (
            f"postgresql+psycopg2://postgres@127.0.0.1:{port}/test",
            f"mysql+pymysql://root@127.0.0.1:{port}/test",
        ):
            started = time.monotonic()
            code = cli.main(["tune", "--dataset", "synthetic", "--storage", url])
            assert time.monotonic() - started < 30
            assert code == 2
            err = capsys.readouterr().err
            assert err.startswith(f"optuna-sosae: error: cannot open storage '{url}'")
            assert len(err.strip().splitlines()) == 1
    finally:
        silent.close()


def test_cli_exits_1_with_one_line_when_no_probe_converges(tmp_path: Path) -> None:
    # One epoch is too few for a width to settle: every probe ends out of budget.
    args = ["--dataset", "synthetic", "--epochs", "1", "--max-dim", "4", "--json"]
    code, out, err = _run_cli([*args, "--storage", "sqlite:///s.db"], tmp_path)
    assert code == 1
    assert out == ""
    assert "Traceback" not in err
    assert err.strip().splitlines() == [err.strip()]
    assert "3 probe trials ended without converging" in err
    assert "ran out of epochs" in err

    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.load_study(study_name="sosae-synthetic-linear-k5", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 3
    assert all(isinstance(t.user_attrs[_attrs.FLOPS], int) for t in study.trials)


def test_load_file_names_the_file_and_problem(tmp_path: Path) -> None:
    from optuna_sosae.data import load_file

    for kind, named in (("ragged", "data row 2 has 2 fields"), ("text", "'five'")):
        path = _data_file(tmp_path, kind)
        with pytest.raises(ValueError, match=named) as info:
            load_file(path)
        assert str(path) in str(info.value)
    np.save(tmp_path / "flat.npy", np.zeros(5))
    with pytest.raises(ValueError, match=r"shape \(5,\); expected 2-D"):
        load_file(tmp_path / "flat.npy")
