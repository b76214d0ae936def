"""SOSAE measured against grid search and TPE on the same data: ``optuna-sosae compare``.

Every method searches for the same thing, the smallest latent width that is good enough, and
is judged by the same rule, the one ``optuna-sosae tune --tolerance`` uses: a width ``d`` is
good enough when

    val_loss(d) <= val_loss(max_dim) + tolerance * baseline_loss

where ``baseline_loss`` is the validation MSE of predicting the training mean (what a width of
0 achieves), so ``tolerance`` is the share of the data's variance the user will give up for a
smaller code. The reference answer is grid search's: the smallest width on its curve that
meets the rule.

The methods run on equal terms. Each is its own study in the same storage (``<prefix>-sosae``,
``<prefix>-grid``, ``<prefix>-tpe-s<seed>``, so optuna-dashboard lists them side by side); all
train the same :class:`~optuna_sosae.models.MLPAutoencoder` family on the same split through
:func:`optuna_sosae.training.train`, with the same :class:`~optuna_sosae.training.TrainingConfig`
per trial; and every trial counts its FLOPs with a fresh :class:`~optuna_sosae.FlopMeter` and
writes them once, as the trial's ``flops`` user attribute, when it ends.

- SOSAE runs exactly what ``tune`` runs: :class:`~optuna_sosae.SOSAESampler`,
  :class:`~optuna_sosae.SOSAEPruner` and :class:`~optuna_sosae.training.SOSAEObjective`, one
  probe and then one tuned trial at the probe's width. Its tuning FLOPs are the probe's;
  its total adds the tuned trial, which is the trained model at its width.
- Grid search runs :class:`~optuna.samplers.GridSampler` over every width ``1..max_dim`` (or
  the powers of two up to it). Each trial is a model at its width, so the model at the chosen
  width is already trained: its total FLOPs are its tuning FLOPs.
- TPE runs :class:`~optuna.samplers.TPESampler` with pinned settings (see
  :data:`TPE_SETTINGS`), minimising the width under the constraint
  ``val_loss - target <= 0`` set with :meth:`optuna.Trial.set_constraint`. Its first trial is
  the max-dim width, enqueued and counted, because the target needs that loss. A run stops
  once its smallest feasible width is within 25% of grid's answer, or when its trial budget is
  spent. One run is a lottery, so several sampler seeds run and the median run (by tuning
  FLOPs) is reported.

Every baseline trial trains with the same seed, so a width's loss is the same whichever
baseline asks for it. Wall time is measured around each method's ``study.optimize`` (for SOSAE
up to the end of its last probe, and to the end of its tuned trial for the total), after one
untimed warm-up epoch so that the method run first does not pay the process's one-off costs.

Finally each method's width gets ``final_seeds`` fresh models (the same seeds for every
method), whose mean validation loss and downstream accuracy are reported; their FLOPs are
counted separately (``flops_final``) and belong to no method's tuning cost.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
import dataclasses
import logging
import math
import statistics
import time
from typing import Any

import optuna
from optuna.trial import TrialState

from optuna_sosae import _attrs
from optuna_sosae._flops import FlopMeter
from optuna_sosae._pruner import SOSAEPruner
from optuna_sosae._sampler import NoConvergedWidthError
from optuna_sosae._sampler import SOSAESampler
from optuna_sosae.data import Dataset
from optuna_sosae.training import DEFAULT_TOLERANCE
from optuna_sosae.training import SOSAEObjective
from optuna_sosae.training import TrainingConfig
from optuna_sosae.training import downstream_accuracy
from optuna_sosae.training import train


_logger = logging.getLogger(__name__)

LATENT_PARAM = "latent_dim"
BASELINES = ("grid", "tpe")
GRIDS = ("full", "pow2")
DEFAULT_TPE_SEEDS = 5
DEFAULT_FINAL_SEEDS = 3
# A TPE run stops once its best width is this close to grid's answer, relative to it.
CLOSE_ENOUGH = 0.25
# Seeds of the final models start here, away from the seeds used while tuning.
FINAL_SEED_OFFSET = 1000

# Trial user attributes the baselines write (for people and for the figures).
VAL_LOSS = "val_loss"
# Study user attributes.
TARGET_LOSS = "target_loss"
SETTINGS = "compare_settings"

#: The TPE settings used, pinned so that a change of Optuna's defaults (Optuna 5 turned on
#: multivariate sampling and the constant-liar heuristic) does not change the benchmark. With
#: one parameter and one worker, multivariate sampling and constant liar would change nothing
#: but the random stream; they are off so the run reads like classic independent TPE.
TPE_SETTINGS: dict[str, Any] = {
    "n_startup_trials": 10,
    "n_ei_candidates": 24,
    "multivariate": False,
    "constant_liar": False,
}

Progress = Callable[[str], None]


@dataclasses.dataclass
class MethodResult:
    """What one method found and what it cost.

    Attributes:
        method:
            ``"sosae"``, ``"grid"`` or ``"tpe"``.
        latent_dim:
            The width the method chose, or ``None`` if it found none.
        flops_tuning:
            FLOPs spent finding the width.
        flops_total:
            FLOPs spent until a model trained at that width exists.
        wall_seconds:
            Wall-clock seconds spent finding the width (the counterpart of ``flops_tuning``).
        wall_seconds_total:
            Wall-clock seconds until a model at that width exists.
        trials:
            Trials the method ran (for TPE: in the reported run).
        study_names:
            The studies it wrote (TPE: one per sampler seed, the reported run first).
        val_loss:
            Mean validation loss of the final models trained at ``latent_dim``.
        val_loss_std:
            Their standard deviation over the final seeds.
        downstream_accuracy:
            Mean accuracy of a logistic regression on those models' codes, or ``None`` when the
            data has no labels.
        flops_final:
            FLOPs of training the final models (not part of any tuning cost).
        details:
            Method-specific facts (the tuned trial's own loss, TPE's per-seed runs).
    """

    method: str
    latent_dim: int | None
    flops_tuning: int
    flops_total: int
    wall_seconds: float
    wall_seconds_total: float
    trials: int
    study_names: list[str]
    val_loss: float | None = None
    val_loss_std: float | None = None
    downstream_accuracy: float | None = None
    flops_final: int = 0
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Comparison:
    """The outcome of :func:`compare`: every method's result and what the figures need.

    Attributes:
        dataset:
            Name of the data set.
        max_dim:
            The generous width, the upper end of every search.
        tolerance:
            Share of the data's variance the criterion allows to give up.
        baseline_loss:
            Validation MSE of predicting the training mean.
        target_loss:
            Grid's full-width loss plus ``tolerance * baseline_loss``, or ``None`` without grid.
        reference_width:
            Grid's answer under the criterion, or ``None`` without grid.
        methods:
            Results by method name, SOSAE first.
        curve:
            Grid's validation loss by width.
        probe_widths:
            The probe's ``[epoch, width]`` pairs at each change of its active width.
        histories:
            By method, ``(FLOPs spent so far, best width so far)`` after each step; see
            :func:`optuna_sosae.visualization.plot_width_vs_flops`.
        settings:
            The budget and options the comparison ran with.
    """

    dataset: str
    max_dim: int
    tolerance: float
    baseline_loss: float
    target_loss: float | None
    reference_width: int | None
    methods: dict[str, MethodResult]
    curve: dict[int, float]
    probe_widths: list[list[int]]
    histories: dict[str, list[tuple[int, int | None]]]
    settings: dict[str, Any]

    def ratios(self, method: str) -> dict[str, float | None]:
        """The method's costs divided by SOSAE's (how many times more it spent)."""
        sosae, other = self.methods["sosae"], self.methods[method]
        return {
            "flops_tuning": _ratio(other.flops_tuning, sosae.flops_tuning),
            "flops_total": _ratio(other.flops_total, sosae.flops_total),
            "wall_seconds": _ratio(other.wall_seconds, sosae.wall_seconds),
            "wall_seconds_total": _ratio(other.wall_seconds_total, sosae.wall_seconds_total),
        }

    def to_dict(self) -> dict[str, Any]:
        methods = {}
        for name, result in self.methods.items():
            entry = result.to_dict()
            entry["vs_sosae"] = self.ratios(name)
            methods[name] = entry
        return {
            "methods": methods,
            "criterion": {
                "rule": "val_loss(d) <= val_loss(max_dim) + tolerance * baseline_loss",
                "tolerance": self.tolerance,
                "baseline_loss": self.baseline_loss,
                "target_loss": self.target_loss,
                "reference_width": self.reference_width,
            },
            "targets": check_targets(self),
            "dataset": self.dataset,
            "max_dim": self.max_dim,
            "settings": self.settings,
            "curve": {str(k): v for k, v in sorted(self.curve.items())},
            "probe_widths": self.probe_widths,
        }


def _ratio(numerator: float, denominator: float) -> float | None:
    if denominator <= 0 or not math.isfinite(numerator) or not math.isfinite(denominator):
        return None
    return numerator / denominator


def target_loss(full_width_loss: float, baseline_loss: float, tolerance: float) -> float:
    """The loss a width must reach to be good enough; see the module docstring."""
    return full_width_loss + tolerance * baseline_loss


def smallest_good_width(curve: dict[int, float], target: float) -> int | None:
    """Smallest width on a measured curve whose loss is at most ``target``.

    On a curve that falls with the width this is what
    :func:`~optuna_sosae.width_within_tolerance` finds by bisection; on a measured curve, where
    seed noise can make it wobble, every point is looked at.
    """
    good = [width for width, loss in curve.items() if loss <= target]
    return min(good) if good else None


def grid_widths(max_dim: int, kind: str = "full") -> list[int]:
    """The widths grid search tries: every width ``1..max_dim``, or powers of two (and max_dim)."""
    if max_dim < 1:
        raise ValueError(f"max_dim must be at least 1, got {max_dim!r}.")
    if kind == "full":
        return list(range(1, max_dim + 1))
    if kind == "pow2":
        widths = [2**i for i in range(max_dim.bit_length()) if 2**i <= max_dim]
        return sorted({*widths, max_dim})
    raise ValueError(f"grid must be one of {GRIDS}, got {kind!r}.")


def study_names(prefix: str, baselines: Sequence[str], tpe_seeds: Sequence[int]) -> list[str]:
    """Names of the studies a comparison writes, SOSAE's first."""
    names = [f"{prefix}-sosae"]
    if "grid" in baselines:
        names.append(f"{prefix}-grid")
    if "tpe" in baselines:
        names.extend(f"{prefix}-tpe-s{s}" for s in tpe_seeds)
    return names


def _prepare_studies(
    storage: optuna.storages.BaseStorage, names: Sequence[str], *, overwrite: bool
) -> None:
    existing = {s.study_name for s in storage.get_all_studies()}
    taken = [name for name in names if name in existing]
    if taken and not overwrite:
        raise ValueError(
            f"studies {taken} already exist in this storage; choose another study prefix or "
            "let the comparison overwrite them."
        )
    for name in taken:
        optuna.delete_study(study_name=name, storage=storage)


def _say(progress: Progress | None, message: str) -> None:
    _logger.info(message)
    if progress is not None:
        progress(message)


def run_sosae(
    dataset: Dataset,
    storage: optuna.storages.BaseStorage,
    study_name: str,
    *,
    max_dim: int,
    config: TrainingConfig,
    tolerance: float,
    seed: int,
    progress: Progress | None = None,
) -> MethodResult:
    """Run SOSAE the way ``optuna-sosae tune`` does: probe trials, then one tuned trial."""
    sampler = SOSAESampler(LATENT_PARAM, seed=seed)
    study = optuna.create_study(
        study_name=study_name, storage=storage, sampler=sampler, pruner=SOSAEPruner()
    )
    objective = SOSAEObjective(
        dataset, max_dim=max_dim, config=config, tolerance=tolerance, seed=seed
    )
    started = time.perf_counter()
    probes_done = started

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal probes_done
        role = trial.user_attrs.get(_attrs.ROLE)
        if role == _attrs.PROBE:
            probes_done = time.perf_counter()
        _say(
            progress,
            f"sosae: trial {trial.number} ({role}) ended {trial.state.name.lower()} after "
            f"{trial.user_attrs.get(_attrs.FLOPS, 0) / 1e9:.3g} GFLOPs",
        )
        # A probe that runs its whole budget without settling also completes; only a tuned
        # trial ends the run.
        if role == _attrs.TUNED and trial.state == TrialState.COMPLETE:
            tuned.append(trial)
            study.stop()

    tuned: list[optuna.trial.FrozenTrial] = []
    study.optimize(objective, n_trials=sampler.max_probes + 1, callbacks=[after_trial])
    finished = time.perf_counter()
    if not tuned:
        raise NoConvergedWidthError("the SOSAE probe found no width in this comparison")

    trials = study.get_trials(deepcopy=False)
    probes = [t for t in trials if t.user_attrs.get(_attrs.ROLE) == _attrs.PROBE]
    probe = _attrs.converged_probes(trials)[0]
    return MethodResult(
        method="sosae",
        latent_dim=_attrs.decided_width(trials),
        flops_tuning=_attrs.sum_flops(probes),
        flops_total=_attrs.sum_flops(trials),
        wall_seconds=probes_done - started,
        wall_seconds_total=finished - started,
        trials=len(trials),
        study_names=[study_name],
        details={
            "tuned_trial_val_loss": tuned[0].value,
            "probe_epochs": len(probe.system_attrs.get(_attrs.SYS_TRAJECTORY, [[]])[0]),
            "probe_trial": probe.number,
        },
    )


def _baseline_objective(
    dataset: Dataset,
    config: TrainingConfig,
    seed: int,
    *,
    suggest: Callable[[optuna.Trial], int],
) -> Callable[[optuna.Trial], float]:
    """Train at the suggested width and return the loss; writes ``flops`` once per trial."""

    def objective(trial: optuna.Trial) -> float:
        width = suggest(trial)
        meter = FlopMeter()
        try:
            result = train(dataset, width, config, seed=seed, meter=meter)
        finally:
            # Written once, also when training fails, so that no trial's work goes uncounted.
            trial.set_user_attr(_attrs.FLOPS, int(meter.total))
        if not math.isfinite(result.val_loss):
            raise ValueError(
                f"trial {trial.number} at width {width} ended with validation loss "
                f"{result.val_loss}; lower the learning rate."
            )
        trial.set_user_attr(VAL_LOSS, result.val_loss)
        return result.val_loss

    return objective


def run_grid(
    dataset: Dataset,
    storage: optuna.storages.BaseStorage,
    study_name: str,
    *,
    widths: Sequence[int],
    config: TrainingConfig,
    tolerance: float,
    seed: int,
    progress: Progress | None = None,
) -> tuple[MethodResult, dict[int, float], float]:
    """Train once at every width of the grid; return the result, the curve and the target."""
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        sampler=optuna.samplers.GridSampler({LATENT_PARAM: list(widths)}, seed=seed),
    )
    low, high = min(widths), max(widths)
    objective = _baseline_objective(
        dataset,
        config,
        seed,
        suggest=lambda trial: trial.suggest_int(LATENT_PARAM, low, high),
    )

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        _say(
            progress,
            f"grid: trial {trial.number + 1}/{len(widths)} width {trial.params[LATENT_PARAM]} "
            f"val_loss {trial.value:.4g}",
        )

    started = time.perf_counter()
    study.optimize(objective, n_trials=len(widths), callbacks=[after_trial])
    wall = time.perf_counter() - started

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    curve = {int(t.params[LATENT_PARAM]): float(t.user_attrs[VAL_LOSS]) for t in trials}
    target = target_loss(curve[high], dataset.baseline_loss, tolerance)
    study.set_user_attr(TARGET_LOSS, target)
    width = smallest_good_width(curve, target)
    flops = _attrs.sum_flops(study.get_trials(deepcopy=False))
    result = MethodResult(
        method="grid",
        latent_dim=width,
        flops_tuning=flops,
        flops_total=flops,
        wall_seconds=wall,
        wall_seconds_total=wall,
        trials=len(trials),
        study_names=[study_name],
        details={"grid": list(widths)},
    )
    return result, curve, target


def run_tpe(
    dataset: Dataset,
    storage: optuna.storages.BaseStorage,
    study_name: str,
    *,
    max_dim: int,
    config: TrainingConfig,
    tolerance: float,
    seed: int,
    sampler_seed: int,
    budget: int,
    reference_width: int | None,
    progress: Progress | None = None,
) -> MethodResult:
    """One TPE run: the max-dim trial first, then TPE until close to grid's answer or budget.

    The objective is the width, minimised under the constraint ``val_loss - target <= 0``,
    where the target comes from this run's own max-dim trial.

    .. note::
        TPE may propose a width it has already tried. Such a trial trains again and is counted,
        as it would be in a plain TPE study; nothing is cached across trials.
    """
    if budget < 1:
        raise ValueError(f"the TPE trial budget must be at least 1, got {budget!r}.")
    sampler = optuna.samplers.TPESampler(seed=sampler_seed, **TPE_SETTINGS)
    study = optuna.create_study(study_name=study_name, storage=storage, sampler=sampler)
    study.enqueue_trial({LATENT_PARAM: max_dim})
    best: list[int] = []
    target: list[float] = []

    def suggest(trial: optuna.Trial) -> int:
        return trial.suggest_int(LATENT_PARAM, 1, max_dim)

    train_at = _baseline_objective(dataset, config, seed, suggest=suggest)

    def objective(trial: optuna.Trial) -> float:
        loss = train_at(trial)
        width = int(trial.params[LATENT_PARAM])
        if not target:
            # The first trial is the enqueued max-dim one: it fixes the target of this run.
            target.append(target_loss(loss, dataset.baseline_loss, tolerance))
            study.set_user_attr(TARGET_LOSS, target[0])
        trial.set_constraint("val_loss_over_target", loss - target[0])
        if loss <= target[0] and (not best or width < best[0]):
            best[:] = [width]
        return float(width)

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        found = best[0] if best else None
        _say(
            progress,
            f"tpe seed {sampler_seed}: trial {trial.number + 1}/{budget} width "
            f"{trial.params.get(LATENT_PARAM)}, best so far {found}",
        )
        if found is not None and reference_width is not None:
            if abs(found - reference_width) <= CLOSE_ENOUGH * reference_width:
                study.stop()

    started = time.perf_counter()
    study.optimize(objective, n_trials=budget, callbacks=[after_trial])
    wall = time.perf_counter() - started
    trials = study.get_trials(deepcopy=False)
    flops = _attrs.sum_flops(trials)
    width = best[0] if best else None
    reached = (
        width is not None
        and reference_width is not None
        and abs(width - reference_width) <= CLOSE_ENOUGH * reference_width
    )
    return MethodResult(
        method="tpe",
        latent_dim=width,
        flops_tuning=flops,
        flops_total=flops,
        wall_seconds=wall,
        wall_seconds_total=wall,
        trials=len(trials),
        study_names=[study_name],
        details={"sampler_seed": sampler_seed, "reached_reference": reached, "budget": budget},
    )


def _median_run(runs: Sequence[MethodResult]) -> MethodResult:
    """The run with the median tuning FLOPs (the lower one of the middle two when even)."""
    ordered = sorted(runs, key=lambda r: (r.flops_tuning, r.details["sampler_seed"]))
    chosen = ordered[(len(ordered) - 1) // 2]
    result = dataclasses.replace(chosen, details=dict(chosen.details))
    others = [r.study_names[0] for r in runs if r is not chosen]
    result.study_names = [*chosen.study_names, *others]
    result.details["runs"] = [
        {
            "sampler_seed": r.details["sampler_seed"],
            "latent_dim": r.latent_dim,
            "flops_tuning": r.flops_tuning,
            "wall_seconds": r.wall_seconds,
            "trials": r.trials,
            "reached_reference": r.details["reached_reference"],
        }
        for r in runs
    ]
    result.details["median_flops_tuning"] = statistics.median(r.flops_tuning for r in runs)
    result.details["median_wall_seconds"] = statistics.median(r.wall_seconds for r in runs)
    return result


def train_final_models(
    dataset: Dataset, width: int, config: TrainingConfig, seeds: Sequence[int]
) -> tuple[float, float, float | None, int]:
    """Train fresh models at ``width``, one per seed; return the mean loss, its std, the mean
    downstream accuracy (``None`` without labels) and the FLOPs spent."""
    losses: list[float] = []
    accuracies: list[float] = []
    flops = 0
    for seed in seeds:
        result = train(dataset, width, config, seed=seed)
        losses.append(result.val_loss)
        flops += result.flops
        accuracy = downstream_accuracy(result.model, dataset, seed=seed)
        if accuracy is not None:
            accuracies.append(accuracy)
    std = statistics.stdev(losses) if len(losses) > 1 else 0.0
    mean_accuracy = statistics.fmean(accuracies) if accuracies else None
    return statistics.fmean(losses), std, mean_accuracy, flops


def _history(
    trials: Sequence[optuna.trial.FrozenTrial], target: float | None
) -> list[tuple[int, int | None]]:
    """Cumulative FLOPs and the smallest width meeting ``target`` after each baseline trial."""
    points: list[tuple[int, int | None]] = []
    spent = 0
    best: int | None = None
    for trial in sorted(trials, key=lambda t: t.number):
        spent += _attrs.trial_flops(trial)
        loss = trial.user_attrs.get(VAL_LOSS)
        width = trial.params.get(LATENT_PARAM)
        if target is not None and isinstance(loss, float) and loss <= target and width:
            best = int(width) if best is None else min(best, int(width))
        points.append((spent, best))
    return points


def _sosae_history(study: optuna.Study) -> tuple[list[tuple[int, int | None]], list[list[int]]]:
    """The probe's active width against FLOPs spent, epoch by epoch, then the tuned trial.

    The probe's model keeps its generous shape throughout, so every epoch costs the same and
    the FLOPs after epoch ``e`` of ``E`` are ``e / E`` of the probe's total.
    """
    points: list[tuple[int, int | None]] = []
    spent = 0
    trajectory: list[list[int]] = []
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        flops = _attrs.trial_flops(trial)
        stored = trial.system_attrs.get(_attrs.SYS_TRAJECTORY)
        if trial.user_attrs.get(_attrs.ROLE) == _attrs.PROBE and stored:
            widths = stored[0]
            for epoch, width in enumerate(widths, start=1):
                points.append((spent + flops * epoch // len(widths), int(width)))
            trajectory = trial.user_attrs.get(_attrs.WIDTHS) or trajectory
        else:
            last = points[-1][1] if points else trial.params.get(LATENT_PARAM)
            points.append((spent + flops, last))
        spent += flops
    return points, trajectory


def compare(
    dataset: Dataset,
    *,
    storage: str | optuna.storages.BaseStorage,
    baselines: Sequence[str] = BASELINES,
    max_dim: int = 64,
    config: TrainingConfig | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    grid: str = "full",
    tpe_seeds: int = DEFAULT_TPE_SEEDS,
    tpe_budget: int | None = None,
    final_seeds: int = DEFAULT_FINAL_SEEDS,
    study_prefix: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Comparison:
    """Run SOSAE and the baselines on ``dataset`` and measure them on equal terms.

    See the module docstring for the criterion, the baselines and how costs are counted.

    Args:
        dataset:
            The data; every method uses its split.
        storage:
            Optuna storage (URL or object) for all the studies.
        baselines:
            Any of ``"grid"`` and ``"tpe"``. Without grid there is no reference width, so TPE
            runs its whole budget.
        max_dim:
            The generous width: the probe's width and the top of every search.
        config:
            Per-trial training budget, the same for every method.
        tolerance:
            The criterion's share of the data's variance (as ``tune --tolerance``).
        seed:
            Seed of training (SOSAE trials use ``seed + trial number`` as in ``tune``; every
            baseline trial uses ``seed``) and of the grid's order.
        grid:
            ``"full"`` (every width) or ``"pow2"`` (powers of two, and max_dim).
        tpe_seeds:
            Number of TPE runs, with sampler seeds ``seed .. seed + tpe_seeds - 1``.
        tpe_budget:
            Trials per TPE run, the max-dim trial included; defaults to the grid's size, so
            TPE may never spend more trials than exhaustive search.
        final_seeds:
            Fresh models trained at each method's width to measure its loss and accuracy.
        study_prefix:
            Study names start with it; defaults to ``compare-<dataset name>``.
        overwrite:
            Delete studies of the same names first instead of refusing to run.
        progress:
            Called with a line of text after each trial, for a command line to show.

    Returns:
        The :class:`Comparison`.
    """
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"baselines must be among {BASELINES}, got {unknown}.")
    if tpe_seeds < 1 or final_seeds < 1:
        raise ValueError(
            f"tpe_seeds and final_seeds must be at least 1, got {tpe_seeds}, {final_seeds}."
        )
    config = config or TrainingConfig()
    widths = grid_widths(max_dim, grid)
    budget = tpe_budget if tpe_budget is not None else len(widths)
    if isinstance(storage, str):
        storage = optuna.storages.get_storage(storage)
    prefix = study_prefix or f"compare-{dataset.name}"
    sampler_seeds = [seed + i for i in range(tpe_seeds)]
    names = study_names(prefix, baselines, sampler_seeds)
    _prepare_studies(storage, names, overwrite=overwrite)
    settings = {
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "hidden": list(config.hidden),
        "device": config.device,
        "seed": seed,
        "grid": grid,
        "tpe_seeds": tpe_seeds if "tpe" in baselines else 0,
        "tpe_budget": budget,
        "tpe_sampler": dict(TPE_SETTINGS),
        "final_seeds": final_seeds,
        "studies": names,
    }

    # The first training in a process pays one-off costs (lazy initialisation in torch, the
    # first FlopCounterMode); an untimed epoch keeps them out of whichever method runs first.
    train(dataset, max_dim, dataclasses.replace(config, epochs=1), seed=seed)

    methods: dict[str, MethodResult] = {}
    histories: dict[str, list[tuple[int, int | None]]] = {}
    _say(progress, f"sosae: probing at width {max_dim} on {dataset.name}")
    methods["sosae"] = run_sosae(
        dataset,
        storage,
        names[0],
        max_dim=max_dim,
        config=config,
        tolerance=tolerance,
        seed=seed,
        progress=progress,
    )
    sosae_study = optuna.load_study(study_name=names[0], storage=storage)
    histories["sosae"], probe_widths = _sosae_history(sosae_study)

    curve: dict[int, float] = {}
    target: float | None = None
    if "grid" in baselines:
        methods["grid"], curve, target = run_grid(
            dataset,
            storage,
            f"{prefix}-grid",
            widths=widths,
            config=config,
            tolerance=tolerance,
            seed=seed,
            progress=progress,
        )
        grid_study = optuna.load_study(study_name=f"{prefix}-grid", storage=storage)
        histories["grid"] = _history(grid_study.get_trials(deepcopy=False), target)
    reference = methods["grid"].latent_dim if "grid" in methods else None

    if "tpe" in baselines:
        runs = []
        for sampler_seed in sampler_seeds:
            runs.append(
                run_tpe(
                    dataset,
                    storage,
                    f"{prefix}-tpe-s{sampler_seed}",
                    max_dim=max_dim,
                    config=config,
                    tolerance=tolerance,
                    seed=seed,
                    sampler_seed=sampler_seed,
                    budget=budget,
                    reference_width=reference,
                    progress=progress,
                )
            )
        methods["tpe"] = _median_run(runs)
        tpe_study = optuna.load_study(study_name=methods["tpe"].study_names[0], storage=storage)
        histories["tpe"] = _history(
            tpe_study.get_trials(deepcopy=False), tpe_study.user_attrs.get(TARGET_LOSS)
        )

    final_seed_list = [seed + FINAL_SEED_OFFSET + i for i in range(final_seeds)]
    finals: dict[int, tuple[float, float, float | None, int]] = {}
    for name, result in methods.items():
        if result.latent_dim is None:
            continue
        if result.latent_dim not in finals:
            _say(progress, f"final models: {final_seeds} seeds at width {result.latent_dim}")
            finals[result.latent_dim] = train_final_models(
                dataset, result.latent_dim, config, final_seed_list
            )
        loss, std, accuracy, flops = finals[result.latent_dim]
        result.val_loss, result.val_loss_std = loss, std
        result.downstream_accuracy, result.flops_final = accuracy, flops
        _logger.info(
            "%s chose width %s with %.3g GFLOPs of tuning; final models: loss %.4g.",
            name,
            result.latent_dim,
            result.flops_tuning / 1e9,
            loss,
        )
    settings["final_model_seeds"] = final_seed_list

    return Comparison(
        dataset=dataset.name,
        max_dim=max_dim,
        tolerance=tolerance,
        baseline_loss=dataset.baseline_loss,
        target_loss=target,
        reference_width=reference,
        methods=methods,
        curve=curve,
        probe_widths=probe_widths,
        histories=histories,
        settings=settings,
    )


def check_targets(comparison: Comparison) -> list[dict[str, Any]]:
    """The issue's targets for SOSAE against the baselines, each with its measured value.

    Each entry has ``name``, ``target`` (in words), ``measured`` (a number or ``None`` when a
    method is missing) and ``met`` (``None`` when it could not be judged).
    """
    methods = comparison.methods
    sosae = methods["sosae"]
    checks: list[dict[str, Any]] = []

    def add(name: str, target: str, measured: float | None, met: bool | None) -> None:
        checks.append({"name": name, "target": target, "measured": measured, "met": met})

    for method, needed in (("grid", 130.0), ("tpe", 20.0)):
        if method not in methods:
            continue
        ratios = comparison.ratios(method)
        flop_ratio, wall_ratio = ratios["flops_tuning"], ratios["wall_seconds"]
        add(
            f"tuning FLOPs, {method} / sosae",
            f">= {needed:g}x",
            flop_ratio,
            None if flop_ratio is None else flop_ratio >= needed,
        )
        share = None if flop_ratio is None or wall_ratio is None else wall_ratio / flop_ratio
        add(
            f"wall ratio as a share of FLOP ratio, {method}",
            ">= 0.70",
            share,
            None if share is None else share >= 0.7,
        )
    grid = methods.get("grid")
    if grid is not None:
        relative = (
            None
            if sosae.val_loss is None or not grid.val_loss
            else sosae.val_loss / grid.val_loss - 1.0
        )
        add(
            "sosae val loss above grid's, relative",
            "<= 0.10",
            relative,
            None if relative is None else relative <= 0.10,
        )
        points = (
            None
            if sosae.downstream_accuracy is None or grid.downstream_accuracy is None
            else 100.0 * (sosae.downstream_accuracy - grid.downstream_accuracy)
        )
        add(
            "sosae accuracy minus grid's, points",
            ">= -2",
            points,
            None if points is None else points >= -2.0,
        )
        off = (
            None
            if sosae.latent_dim is None or not grid.latent_dim
            else abs(sosae.latent_dim - grid.latent_dim) / grid.latent_dim
        )
        add(
            "sosae width off grid's, relative",
            f"<= {CLOSE_ENOUGH:.2f}",
            off,
            None if off is None else off <= CLOSE_ENOUGH,
        )
    return checks


def _cell(value: float | int | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def result_rows(summary: dict[str, Any]) -> list[list[str]]:
    """The result table as text cells, a header row first, from :meth:`Comparison.to_dict`."""
    rows = [
        [
            "method",
            "width",
            "tuning FLOPs",
            "total FLOPs",
            "val loss",
            "accuracy",
            "wall s",
            "FLOPs vs SOSAE",
            "wall vs SOSAE",
        ]
    ]
    for name, entry in summary["methods"].items():
        ratios = entry["vs_sosae"]
        accuracy = entry["downstream_accuracy"]
        rows.append(
            [
                name,
                _cell(entry["latent_dim"], "d"),
                _cell(entry["flops_tuning"], ".3g"),
                _cell(entry["flops_total"], ".3g"),
                _cell(entry["val_loss"], ".4g"),
                "n/a" if accuracy is None else f"{accuracy:.1%}",
                _cell(entry["wall_seconds"], ".1f"),
                _cell(ratios["flops_tuning"], ".1f") + "x",
                _cell(ratios["wall_seconds"], ".1f") + "x",
            ]
        )
    return rows
