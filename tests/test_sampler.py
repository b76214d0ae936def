from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.trial import TrialState
import pytest
import torch

from optuna_sosae import NoConvergedWidthError
from optuna_sosae import SOSAEBridge
from optuna_sosae import SOSAEPruner
from optuna_sosae import SOSAESampler
from optuna_sosae import flops_total
from optuna_sosae import tuned_latent_dim
from optuna_sosae.data import Dataset
from optuna_sosae.data import make_linear
from optuna_sosae.training import SOSAEObjective
from optuna_sosae.training import TrainingConfig


@pytest.fixture(scope="module")
def data() -> Dataset:
    return make_linear(k=3, n_features=16, n_samples=1000, seed=0)


def _study(storage: Any = None, **sampler_kwargs: Any) -> optuna.Study:
    return optuna.create_study(
        storage=storage,
        study_name="sosae-test",
        sampler=SOSAESampler("latent_dim", seed=0, **sampler_kwargs),
        pruner=SOSAEPruner(),
        load_if_exists=True,
    )


def test_probe_then_tuned_trial_reports_the_converged_width(data: Dataset) -> None:
    study = _study()
    assert tuned_latent_dim(study) is None
    objective = SOSAEObjective(data, max_dim=12, config=TrainingConfig(epochs=40))
    study.optimize(objective, n_trials=2)

    probe, tuned = study.trials
    assert probe.user_attrs["sosae_role"] == "probe"
    assert probe.params["latent_dim"] == 12  # the generous width
    assert probe.state == TrialState.PRUNED
    assert tuned.user_attrs["sosae_role"] == "tuned"
    width = tuned_latent_dim(study)
    # The exact-dimension check runs on the k=5 case in test_cli.py; here the probe
    # must at least find every factor and cut the tail.
    assert width is not None and 3 <= width < 12
    assert width == probe.user_attrs["sosae_width"]
    assert study.best_params["latent_dim"] == width
    assert study.best_trial.number == tuned.number
    assert study.user_attrs["sosae_latent_dim"] == width
    # A compact trajectory for people, ending at the converged width.
    assert probe.user_attrs["sosae_widths"][0] == [1, 12]
    assert probe.user_attrs["sosae_widths"][-1][1] == width


def test_flops_on_every_trial_and_total_is_their_sum(data: Dataset) -> None:
    study = _study()
    study.optimize(SOSAEObjective(data, max_dim=12, config=TrainingConfig(epochs=40)), n_trials=3)
    flops = [t.user_attrs["flops"] for t in study.trials]
    assert all(isinstance(f, int) and f > 0 for f in flops)
    assert study.user_attrs["flops_total"] == sum(flops) == flops_total(study)
    # The probe stops early at a larger width; a tuned trial runs its whole budget.
    assert study.trials[0].user_attrs["flops"] < 12 / 3 * study.trials[1].user_attrs["flops"]


def test_state_lives_in_the_storage_not_in_the_sampler(tmp_path: Any, data: Dataset) -> None:
    storage = f"sqlite:///{tmp_path}/study.db"
    objective = SOSAEObjective(data, max_dim=12, config=TrainingConfig(epochs=40))
    _study(storage).optimize(objective, n_trials=1)
    # A new sampler (as in a new process) sees the converged width and does not probe again.
    resumed = _study(storage)
    resumed.optimize(objective, n_trials=1)
    assert [t.user_attrs["sosae_role"] for t in resumed.trials] == ["probe", "tuned"]
    assert resumed.trials[1].params["latent_dim"] == tuned_latent_dim(resumed)


def test_n_jobs_two(data: Dataset) -> None:
    study = _study()
    study.optimize(
        SOSAEObjective(data, max_dim=12, config=TrainingConfig(epochs=40)), n_trials=4, n_jobs=2
    )
    width = tuned_latent_dim(study)
    assert width is not None
    tuned = [t for t in study.trials if t.user_attrs["sosae_role"] == "tuned"]
    assert tuned and all(t.params["latent_dim"] == width for t in tuned)
    assert study.user_attrs["flops_total"] == sum(t.user_attrs["flops"] for t in study.trials)


class _SpySampler(optuna.samplers.RandomSampler):
    def __init__(self) -> None:
        super().__init__(seed=0)
        self.calls: list[str] = []
        self.spaces: list[set[str]] = []

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.calls.append("before_trial")

    def after_trial(self, *args: Any) -> None:
        self.calls.append("after_trial")

    def reseed_rng(self) -> None:
        self.calls.append("reseed_rng")

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return {
            "latent_dim": optuna.distributions.IntDistribution(1, 8),
            "lr": optuna.distributions.FloatDistribution(1e-4, 1e-2),
        }

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> Any:
        self.spaces.append(set(search_space))
        return {}


def test_every_hook_is_forwarded_and_the_width_is_hidden_from_the_base() -> None:
    base = _SpySampler()
    sampler = SOSAESampler("latent_dim", base_sampler=base)
    study = optuna.create_study(sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("lr", 1e-4, 1e-2)
        return float(trial.suggest_int("latent_dim", 1, 8))

    study.optimize(objective, n_trials=1)
    sampler.reseed_rng()
    assert base.calls == ["before_trial", "after_trial", "reseed_rng"]
    assert base.spaces == [{"lr"}]
    # Without a bridge the probe never converges; it is not taken as a width.
    assert tuned_latent_dim(study) is None


def test_a_probe_never_becomes_the_best_trial() -> None:
    study = _study()

    def objective(trial: optuna.Trial) -> float:
        width = trial.suggest_int("latent_dim", 1, 8)
        if trial.user_attrs["sosae_role"] == "probe":
            bridge = SOSAEBridge(trial, decoder_weight=torch.ones(2, width), baseline_loss=1.0)
            # A wide probe reaches a low loss; its width settles at 2 within budget.
            for _ in range(12):
                latent = torch.zeros(4, width)
                latent[:, :2] = 1.0
                bridge.epoch_end(0.04, latent)
        return 100.0

    study.optimize(objective, n_trials=2)
    assert study.trials[0].state == TrialState.PRUNED
    assert study.best_trial.number == 1
    assert study.best_params == {"latent_dim": 2}


@pytest.mark.parametrize(
    ("loss", "latent_value", "outcome"),
    [(math.nan, 1.0, "diverged"), (math.inf, 1.0, "diverged"), (0.04, 0.0, "collapsed")],
)
def test_failed_probes_are_retried_up_to_the_limit(
    loss: float, latent_value: float, outcome: str
) -> None:
    study = _study(max_probes=2)

    def objective(trial: optuna.Trial) -> float:
        width = trial.suggest_int("latent_dim", 1, 8)
        bridge = SOSAEBridge(trial, decoder_weight=torch.ones(2, width), baseline_loss=1.0)
        bridge.epoch_end(loss, torch.full((4, width), latent_value))
        return 1.0

    with pytest.raises(NoConvergedWidthError, match=outcome):
        study.optimize(objective, n_trials=5)
    roles = [t.user_attrs["sosae_role"] for t in study.trials]
    assert roles == ["probe", "probe", "probe"]
    assert [t.state for t in study.trials[:2]] == [TrialState.PRUNED, TrialState.PRUNED]
    assert study.trials[2].state == TrialState.FAIL
    assert tuned_latent_dim(study) is None


def test_bad_latent_parameter_is_named() -> None:
    study = _study()

    def float_width(trial: optuna.Trial) -> float:
        return trial.suggest_float("latent_dim", 1, 8)

    with pytest.raises(TypeError, match="latent_dim"):
        study.optimize(float_width, n_trials=1)

    def no_width(trial: optuna.Trial) -> float:
        SOSAEBridge(trial, decoder_weight=torch.ones(2, 3), baseline_loss=1.0)
        return 0.0

    with pytest.raises(ValueError, match="latent_dim"):
        study.optimize(no_width, n_trials=1)
    with pytest.raises(ValueError, match="0"):
        SOSAESampler(max_probes=0)


def _run_out_of_epochs(trial: optuna.Trial, last_loss: float) -> None:
    # A probe of 4 epochs whose first 2 units carry the signal: far under budget at first, so
    # the strength grows, then at last_loss in its last epoch, where the bridge ends it.
    width = trial.suggest_int("latent_dim", 1, 8)
    bridge = SOSAEBridge(
        trial, decoder_weight=torch.ones(2, width), baseline_loss=1.0, max_epochs=4
    )
    latent = torch.zeros(4, width)
    latent[:, :2] = 1.0
    for epoch in range(4):
        bridge.epoch_end(0.001 if epoch < 3 else last_loss, latent)


@pytest.mark.parametrize(("binding_loss", "expected"), [(0.04, 2), (0.001, None)])
def test_a_probe_out_of_epochs_keeps_its_width_only_if_binding(
    binding_loss: float, expected: int | None
) -> None:
    study = _study(max_probes=1)

    def objective(trial: optuna.Trial) -> float:
        _run_out_of_epochs(trial, binding_loss)
        return 1.0

    study.optimize(objective, n_trials=1)
    assert study.trials[0].state == TrialState.PRUNED
    assert tuned_latent_dim(study) == expected


def test_a_probe_out_of_epochs_after_another_converged_stands_down() -> None:
    # Two probes run at once; the first ends out of epochs with its width taken. The second
    # reaches its last epoch before its next stand-down check: it must not store a width too.
    study = _study()
    first, second = study.ask(), study.ask()

    def run_out(trial: optuna.Trial) -> str:
        with pytest.raises(optuna.TrialPruned):
            _run_out_of_epochs(trial, 0.04)
        study.tell(trial, state=TrialState.PRUNED)
        return str(study.trials[trial.number].system_attrs["sosae:outcome"])

    assert run_out(first).startswith("ran out of epochs at width 2")
    assert run_out(second) == f"superseded: trial {first.number} converged first, to 2"
    assert "sosae:converged_width" not in study.trials[second.number].system_attrs
    assert tuned_latent_dim(study) == 2
