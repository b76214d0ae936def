"""SOSAESampler: decides each trial's role and answers the latent width."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from typing import Any

import optuna
from optuna.distributions import IntDistribution
from optuna.samplers import BaseSampler
from optuna.trial import TrialState

from optuna_sosae import _attrs
from optuna_sosae._bridge import _flush_live_bridge


if TYPE_CHECKING:
    from collections.abc import Sequence

    from optuna.distributions import BaseDistribution
    from optuna.study import Study
    from optuna.trial import FrozenTrial


_logger = logging.getLogger(__name__)

_REFRESH_ROUNDS = 5


class NoConvergedWidthError(RuntimeError):
    """Raised when every allowed probe ended without a converged latent width."""


class SOSAESampler(BaseSampler):
    """Sampler that tunes an autoencoder's latent width with SOSAE probe trials.

    While no probe has converged, each new trial is a *probe*: the latent parameter gets the
    upper bound of its distribution (the generous width), and the training loop, through
    :class:`~optuna_sosae.SOSAEBridge`, adds the SOSAE penalty and reads the width the latent
    code settles to. Once a probe has converged, every later trial is a *tuned* trial and gets
    the converged width. Every other parameter is sampled by the base sampler, and every hook
    is forwarded to it.

    The role of each trial is written to the storage (user attribute ``sosae_role``), and the
    tuned width is derived from stored trials, so a new process that loads the study with a new
    sampler continues where the study stands, and several workers agree.

    When several probes run at once (several workers, or ``n_jobs > 1``), each explores its own
    base-sampler values; the first probe to *finish* with a converged width decides the tuned
    width, and probes still running when that happens end at their next check.

    Args:
        latent_param:
            Name of the integer parameter that sets the latent width.
        base_sampler:
            Sampler for every other parameter. Defaults to
            :class:`~optuna.samplers.TPESampler` with ``seed``.
        max_probes:
            How many probes may end without converging (failed, diverged, collapsed or out of
            budget) before the sampler gives up with :class:`NoConvergedWidthError`.
        seed:
            Seed of the default base sampler.

    Example:

        .. code-block:: python

            study = optuna.create_study(
                sampler=optuna_sosae.SOSAESampler("latent_dim"),
                pruner=optuna_sosae.SOSAEPruner(),
            )
            study.optimize(objective, n_trials=2)
            print(study.best_params["latent_dim"])

    .. note::
        The base sampler never sees the latent parameter in its relative search space: the
        width is not a hyperparameter it should model.
    """

    def __init__(
        self,
        latent_param: str = "latent_dim",
        base_sampler: BaseSampler | None = None,
        *,
        max_probes: int = 3,
        seed: int | None = None,
    ) -> None:
        if not isinstance(latent_param, str) or not latent_param:
            raise TypeError(f"latent_param must be a non-empty str, got {latent_param!r}.")
        if isinstance(max_probes, bool) or not isinstance(max_probes, int) or max_probes < 1:
            raise ValueError(f"max_probes must be a positive int, got {max_probes!r}.")
        self.latent_param = latent_param
        self.max_probes = max_probes
        self._base_sampler = base_sampler or optuna.samplers.TPESampler(seed=seed)

    @property
    def base_sampler(self) -> BaseSampler:
        return self._base_sampler

    def reseed_rng(self) -> None:
        self._base_sampler.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        space = self._base_sampler.infer_relative_search_space(study, trial)
        space.pop(self.latent_param, None)
        return space

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._base_sampler.sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if param_name != self.latent_param:
            return self._base_sampler.sample_independent(
                study, trial, param_name, param_distribution
            )
        distribution = _check_distribution(param_name, param_distribution)
        role = trial.system_attrs.get(_attrs.SYS_ROLE)
        if role == _attrs.PROBE:
            trials = study.get_trials(deepcopy=False)
            failed = _unconverged_probes(trials, exclude=trial.number)
            if len(failed) >= self.max_probes:
                raise NoConvergedWidthError(_give_up_message(failed, self.max_probes))
            return distribution.high
        width = trial.system_attrs.get(_attrs.SYS_DECIDED)
        if not isinstance(width, int):
            raise RuntimeError(f"trial {trial.number} has role {role!r} but no decided width.")
        if not distribution.low <= width <= distribution.high:
            raise ValueError(
                f"the tuned width {width} lies outside the range [{distribution.low}, "
                f"{distribution.high}] now suggested for {param_name!r}; the study was tuned "
                "with another range. Use a new study name for a new range."
            )
        return width

    def check_probe_budget(self, study: Study) -> None:
        """Raise if the study can no longer find a width: no probe converged, none may start.

        A runner calls this between trials (the ``optuna-sosae`` CLI does, from a callback) to
        stop before starting a trial that would only fail with the same error.

        Raises:
            NoConvergedWidthError: No width has converged and ``max_probes`` probes have ended
                without converging.
        """
        trials = study.get_trials(deepcopy=False)
        if _attrs.decided_width(trials) is not None:
            return
        failed = _unconverged_probes(trials, exclude=-1)
        if len(failed) >= self.max_probes:
            raise NoConvergedWidthError(_give_up_message(failed, self.max_probes))

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._base_sampler.before_trial(study, trial)

        trials = study.get_trials(deepcopy=False)
        width = _attrs.decided_width(trials)
        fixed = trial.params.get(self.latent_param)
        if fixed is None:
            fixed = trial.system_attrs.get("fixed_params", {}).get(self.latent_param)

        if fixed is None:
            role = _attrs.PROBE if width is None else _attrs.TUNED
        elif width is not None and int(fixed) == width:
            role = _attrs.TUNED
        elif "failed_trial" in trial.system_attrs and _is_upper(trial, self.latent_param, fixed):
            # A probe re-queued by RetryHeartbeatStaleTrialCallback carries the generous width:
            # it probes again while no width has converged, and stands down once one has.
            role = _attrs.SUPERSEDED if width is not None else _attrs.PROBE
        else:
            role = _attrs.FIXED

        storage = study._storage
        trial_id = trial._trial_id
        updates: dict[str, Any] = {_attrs.SYS_ROLE: role}
        if width is not None:
            updates[_attrs.SYS_DECIDED] = width
        # A re-queued trial inherits the attributes of the one it replaces; none of its
        # convergence or FLOP count belongs to the new run.
        for stale in (_attrs.SYS_CONVERGED, _attrs.SYS_OUTCOME, _attrs.SYS_TRAJECTORY):
            if stale in trial.system_attrs:
                updates[stale] = None
        for key, value in updates.items():
            storage.set_trial_system_attr(trial_id, key, value)
            trial.system_attrs[key] = value
        # Every trial starts with a FLOP count of 0, so that a trial killed before its first
        # write still has one, and a re-queued trial does not carry the count of the run it
        # replaces (RetryHeartbeatStaleTrialCallback copies the user attributes).
        user_updates: dict[str, Any] = {_attrs.ROLE: role, _attrs.FLOPS: 0}
        for stale_user in (_attrs.WIDTH, _attrs.WIDTHS):
            if stale_user in trial.user_attrs:
                user_updates[stale_user] = None
        for key, value in user_updates.items():
            storage.set_trial_user_attr(trial_id, key, value)
            trial.user_attrs[key] = value
        _logger.debug("Trial %d starts as a %s.", trial.number, role)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        # Write the final FLOP count before the trial's state is saved, so that no finished
        # trial lacks it.
        _flush_live_bridge(study, trial)
        if trial.system_attrs.get(_attrs.SYS_ROLE) == _attrs.PROBE:
            if self.latent_param not in trial.params and state != TrialState.FAIL:
                _logger.warning(
                    "Probe trial %d never suggested the latent parameter %r; check the "
                    "latent_param given to SOSAESampler.",
                    trial.number,
                    self.latent_param,
                )
        trials = _refresh_flops_total(study)
        width = _attrs.decided_width(trials)
        if width is not None and study.user_attrs.get(_attrs.LATENT_DIM) != width:
            study._storage.set_study_user_attr(study._study_id, _attrs.LATENT_DIM, width)
        self._base_sampler.after_trial(study, trial, state, values)


def _refresh_flops_total(study: Study) -> list[FrozenTrial]:
    # Several workers refresh the total as their trials end. A worker may read the sum before
    # another worker's last FLOP write and store it after that worker's refresh; reading the
    # sum again after each store, until it matches, makes the last store a fresh sum. (A
    # mismatch that outlasts the few rounds comes from trials still running; each of them
    # refreshes the total again when it ends.)
    storage, study_id = study._storage, study._study_id
    trials = study.get_trials(deepcopy=False)
    total = _attrs.sum_flops(trials)
    for _ in range(_REFRESH_ROUNDS):
        storage.set_study_user_attr(study_id, _attrs.FLOPS_TOTAL, total)
        trials = study.get_trials(deepcopy=False)
        fresh = _attrs.sum_flops(trials)
        if fresh == total:
            break
        total = fresh
    return trials


def _is_upper(trial: FrozenTrial, name: str, value: Any) -> bool:
    distribution = trial.distributions.get(name)
    return isinstance(distribution, IntDistribution) and int(value) == distribution.high


def _check_distribution(name: str, distribution: BaseDistribution) -> IntDistribution:
    if not isinstance(distribution, IntDistribution) or distribution.log:
        raise TypeError(
            f"the latent parameter {name!r} must be suggested with trial.suggest_int(name, "
            f"low, high) on a linear scale, got {distribution!r}."
        )
    if distribution.low < 1:
        raise ValueError(
            f"the latent parameter {name!r} must have a lower bound of at least 1, "
            f"got {distribution.low}."
        )
    if distribution.step != 1:
        raise ValueError(
            f"the latent parameter {name!r} must have step 1 so that any width can be "
            f"chosen, got step {distribution.step}."
        )
    return distribution


def _unconverged_probes(trials: Sequence[FrozenTrial], *, exclude: int) -> list[FrozenTrial]:
    return [
        t
        for t in trials
        if t.number != exclude
        and t.system_attrs.get(_attrs.SYS_ROLE) == _attrs.PROBE
        and t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        and not isinstance(t.system_attrs.get(_attrs.SYS_CONVERGED), int)
    ]


def _give_up_message(failed: Sequence[FrozenTrial], limit: int) -> str:
    reasons = "; ".join(
        f"trial {t.number}: {t.system_attrs.get(_attrs.SYS_OUTCOME) or t.state.name.lower()}"
        for t in failed
    )
    return (
        f"no latent width could be found: {len(failed)} probe trials ended without converging "
        f"(limit {limit}): {reasons}. Lower the learning rate, give the probe more epochs, or "
        "raise the tolerance."
    )
