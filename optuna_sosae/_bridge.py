"""SOSAEBridge: what a user's training loop calls, and tuned_latent_dim."""

from __future__ import annotations

from collections.abc import Callable
import logging
import math
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar
import weakref

import optuna
import torch

from optuna_sosae import _attrs
from optuna_sosae._flops import FlopMeter
from optuna_sosae._penalty import SOSAEPenalty
from optuna_sosae._penalty import WeightKind
from optuna_sosae._penalty import unit_activity
from optuna_sosae._penalty import width_of_activity


if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial


_logger = logging.getLogger(__name__)

T = TypeVar("T")

# Bridges of trials running in this process, so that the sampler's after_trial can write their
# final FLOP count even when the objective ends with an exception. Keyed by storage and trial.
_LIVE: weakref.WeakValueDictionary[tuple[int, int], SOSAEBridge] = weakref.WeakValueDictionary()


def _flush_live_bridge(study: Study, trial: FrozenTrial) -> None:
    bridge = _LIVE.pop((id(study._storage), trial._trial_id), None)
    if bridge is not None:
        bridge.flush(final=True)


class SOSAEBridge:
    """Connects a training loop to the SOSAE sampler and pruner.

    Create one per trial, after the objective has suggested the latent width. Each step of the
    loop adds :meth:`penalty` to its loss and runs through :meth:`run`, which counts its FLOPs.
    After each epoch (or evaluation interval) call :meth:`epoch_end` with the validation loss
    and the validation latent codes.

    On a *probe* trial the bridge adds the SOSAE penalty, adapts its strength, reads the active
    width each epoch and asks :class:`~optuna_sosae.SOSAEPruner` whether the width has settled;
    when it has, the bridge stores the width and ends the trial with
    :class:`optuna.TrialPruned` (a probe never completes with a value, so it can never become
    the study's best trial, and TPE never models its loss as if it were the objective). On a
    *tuned* trial the penalty is zero and the bridge only counts FLOPs.

    How the probe's strength adapts: the reconstruction may give up ``tolerance`` of the data's
    variance (``tolerance * baseline_loss`` of MSE). After each epoch the strength is multiplied
    by ``exp(adapt_rate * slack)``, where ``slack`` is how far below that budget the validation
    loss sits, relative to the budget and clipped to ``[-1, 1]``. The strength never drops below
    its starting value. So the penalty keeps silencing units while the loss has room, and backs
    off when it has none; the width it settles to is the smallest the training run finds that
    reconstructs within the tolerance. This is the constrained formulation of GECO (Rezende and
    Viola, 2018) applied to the SOSAE penalty, and it makes one default work across data sets
    whose loss scales differ.

    The FLOP count is written to the trial's ``flops`` user attribute every ``write_every``
    epochs and when the trial ends, never at every step: a storage write costs as much as an
    epoch of a small model.

    Args:
        trial:
            The running trial.
        decoder_weight:
            The weight of the layer consuming the latent code (``decoder[0].weight`` for an
            MLP), used to make the penalty rescaling-proof; see :class:`SOSAEPenalty`.
        baseline_loss:
            Validation MSE of predicting the training mean (what a width of 0 achieves); see
            :func:`optuna_sosae.data.Dataset.baseline_loss`. It sets the scale of the penalty
            and the loss budget.
        tolerance:
            Share of the data's variance the probe's reconstruction may give up. The
            criterion of ``optuna-sosae compare`` allows this share on top of the loss at the
            generous width, which the probe cannot know; keeping within the share alone is
            stricter by that loss (on digits 15% of the budget, so a few units wider).
        latent_param:
            Name of the latent parameter; taken from the study's
            :class:`~optuna_sosae.SOSAESampler` when omitted.
        initial_strength:
            Starting (and lowest) penalty strength, relative to ``sqrt(baseline_loss)``.
        adapt_rate:
            How fast the strength adapts per epoch.
        threshold:
            Relative activity under which a latent unit counts as silent; see
            :func:`~optuna_sosae.active_width`. 5% rather than 1%: on digits 1% left a long
            tail of weak units in use (widths 36-51 over three seeds, 25 by grid search under
            the same tolerance) where 5% gives 31, 29 and 26 (``benchmarks/warm_start.py``); on
            the synthetic data of known dimension both find it, 5% a few epochs sooner.
        weight, beta, gamma:
            Position weight of the penalty; see :func:`~optuna_sosae.position_weights`.
        write_every:
            Epochs between storage writes of the running FLOP count.
        max_epochs:
            The training budget, if the bridge should end a probe that reaches it unsettled:
            with the penalty binding below the generous width its last width is taken (a
            warning says so), otherwise it ends unconverged. Without it, a probe that runs
            out of epochs completes normally and counts as unconverged.
    """

    def __init__(
        self,
        trial: optuna.Trial,
        *,
        decoder_weight: torch.Tensor,
        baseline_loss: float,
        tolerance: float = 0.05,
        latent_param: str | None = None,
        initial_strength: float = 1e-4,
        adapt_rate: float = 1.0,
        threshold: float = 0.05,
        weight: WeightKind = "power",
        beta: float = 0.1,
        gamma: float = 1.0,
        write_every: int = 10,
        max_epochs: int | None = None,
    ) -> None:
        if not isinstance(trial, optuna.Trial):
            raise TypeError(f"trial must be an optuna.Trial, got {type(trial).__name__}.")
        if not math.isfinite(baseline_loss) or baseline_loss <= 0:
            raise ValueError(
                f"baseline_loss must be a positive finite number, got {baseline_loss!r}."
            )
        if not math.isfinite(tolerance) or not 0 < tolerance < 1:
            raise ValueError(f"tolerance must be in (0, 1), got {tolerance!r}.")
        if initial_strength <= 0 or adapt_rate < 0 or write_every < 1:
            raise ValueError(
                "expected initial_strength > 0, adapt_rate >= 0 and write_every >= 1, got "
                f"{initial_strength!r}, {adapt_rate!r}, {write_every!r}."
            )
        self.trial = trial
        self.decoder_weight = decoder_weight
        self.baseline_loss = float(baseline_loss)
        self.tolerance = float(tolerance)
        self.threshold = threshold
        self.adapt_rate = adapt_rate
        self.write_every = write_every
        self.max_epochs = max_epochs
        self.meter = FlopMeter()

        self.latent_param = latent_param or _sampler_latent_param(trial)
        if self.latent_param not in trial.params:
            raise ValueError(
                f"the trial has no parameter {self.latent_param!r}: call "
                f"trial.suggest_int({self.latent_param!r}, low, high) before creating the bridge."
            )
        self.width = int(trial.params[self.latent_param])
        if decoder_weight.dim() != 2 or decoder_weight.shape[1] != self.width:
            raise ValueError(
                f"decoder_weight must have shape [out, {self.width}] for latent width "
                f"{self.width}, got {tuple(decoder_weight.shape)}."
            )
        self.role: str = trial.user_attrs.get(_attrs.ROLE, _attrs.FIXED)
        self._scale = math.sqrt(self.baseline_loss)
        self._floor = initial_strength
        self._penalty = SOSAEPenalty(
            initial_strength * self._scale, kind=weight, beta=beta, gamma=gamma
        )
        self._zero = torch.zeros((), device=decoder_weight.device)
        self.epochs = 0
        self.last_val_loss = math.nan
        self.widths: list[int] = []
        self.binding: list[bool] = []
        self.tail: list[float] = []
        self._written_flops = -1
        self._finished = False
        _LIVE[(id(trial.storage), trial._trial_id)] = self

        if self.role == _attrs.SUPERSEDED:
            _logger.info(
                "Trial %d re-runs a probe, but a width has converged since; ending it.",
                trial.number,
            )
            self._end("superseded by a converged width", converged=None)

    @property
    def is_probe(self) -> bool:
        return self.role == _attrs.PROBE

    @property
    def strength(self) -> float:
        """Current penalty strength, relative to ``sqrt(baseline_loss)``."""
        return self._penalty.strength / self._scale

    def penalty(self, latent: torch.Tensor) -> torch.Tensor:
        """The SOSAE penalty for a batch of latent codes; zero unless this trial is a probe."""
        if not self.is_probe:
            return self._zero
        return self._penalty(latent, self.decoder_weight)

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one training or validation step, ``fn(*args)``, counting its FLOPs."""
        return self.meter.run(fn, *args)

    def epoch_end(self, val_loss: float, val_latent: torch.Tensor) -> None:
        """Record one epoch; on a probe, adapt the penalty and end the trial once settled.

        Args:
            val_loss:
                Reconstruction loss (MSE) on validation data, without the penalty.
            val_latent:
                Latent codes of the validation data, shape ``[samples, width]``.

        Raises:
            optuna.TrialPruned: The probe has settled (its width is stored), or it cannot
                converge (its loss is NaN or infinite, or every unit went silent).
        """
        self.epochs += 1
        if self.is_probe:
            self._probe_epoch(float(val_loss), val_latent)
        if self.epochs % self.write_every == 0:
            self.flush()
            if self.is_probe:
                # Another worker's probe may have decided the width meanwhile; this probe's
                # answer would no longer be used, so it stops spending compute.
                self._stand_down_if_decided()

    def finish(self) -> None:
        """Call once the training budget is spent, after the last :meth:`epoch_end`.

        A probe whose width has not settled by then ends as out of budget, as with
        ``max_epochs``: its last width is taken if the penalty was binding below the generous
        width, otherwise it is not taken as converged and the next trial probes again. Any
        other trial writes its final FLOP count.

        Raises:
            optuna.TrialPruned: This trial is a probe.
        """
        if self.is_probe and not self._finished:
            if self.widths:
                self._out_of_budget(self.widths[-1])
            self._end("out of budget before its first epoch ended", None)
        self.flush(final=True)

    def _probe_epoch(self, val_loss: float, val_latent: torch.Tensor) -> None:
        if not math.isfinite(val_loss):
            _logger.warning(
                "Probe trial %d: validation loss is %s at epoch %d; the probe cannot converge.",
                self.trial.number,
                val_loss,
                self.epochs,
            )
            self._end(f"diverged: validation loss {val_loss} at epoch {self.epochs}", None)
        self.last_val_loss = val_loss
        activity = unit_activity(val_latent, self.decoder_weight)
        width = width_of_activity(activity, threshold=self.threshold)
        budget = self.tolerance * self.baseline_loss
        self.widths.append(width)
        # How strong the weakest kept unit is, relative to the strongest: the pruner reads
        # from its trend whether that unit is still on its way out.
        tail = float(activity[width - 1] / activity.max()) if width else 0.0
        self.tail.append(round(tail, 4))
        if width == 0:
            self._end(f"collapsed: every latent unit went silent at epoch {self.epochs}", None)
        # Cut the silent tail as training goes: with its decoder columns at zero the network
        # learns to do without it, so the final truncation loses nothing, and a unit once
        # silent cannot drift back in through small residual activity.
        with torch.no_grad():
            self.decoder_weight[:, width:] = 0.0

        slack = max(-1.0, min(1.0, (budget - val_loss) / budget))
        strength = self._penalty.strength * math.exp(self.adapt_rate * slack)
        self._penalty.strength = max(self._floor * self._scale, strength)
        # The penalty binds when it has grown past its floor (the loss has been under budget)
        # and the loss sits near the budget: far below it, the penalty still has room to
        # silence units; at the floor, the loss is only passing through on its way down.
        self.binding.append(
            self.strength > 2 * self._floor and 0.5 * budget <= val_loss <= 1.1 * budget
        )
        _logger.debug(
            "Probe trial %d epoch %d: width %d, loss %.4g (budget %.4g), strength %.3g.",
            self.trial.number,
            self.epochs,
            width,
            val_loss,
            budget,
            self.strength,
        )

        pruner = self.trial.study.pruner
        settle = getattr(pruner, "settled", None)
        if settle is not None and settle(self.widths, self.binding, self.width, tail=self.tail):
            # Check before storing: once a probe has decided the width, a later one must not
            # store a second converged width that a race on the finish times could promote.
            self._stand_down_if_decided()
            _logger.info(
                "Probe trial %d converged to %d latent dimensions after %d epochs, %.3g GFLOPs.",
                self.trial.number,
                width,
                self.epochs,
                self.meter.total / 1e9,
            )
            self._end(f"converged to {width} after {self.epochs} epochs", width)
        if self.max_epochs is not None and self.epochs >= self.max_epochs:
            self._out_of_budget(width)

    def _out_of_budget(self, width: int) -> None:
        # As on settling: a width decided meanwhile by another probe stands, and this probe's
        # last width, taken or not, would not be used.
        self._stand_down_if_decided()
        # The width only shrinks while the penalty binds, so a probe that ran out of epochs
        # while binding below its generous width gives an upper bound worth using; one that
        # never got there has shown nothing.
        if self.binding[-1] and width < self.width:
            _logger.warning(
                "Probe trial %d used its %d epochs before its width settled; taking its last "
                "width, %d. More epochs may give a smaller width.",
                self.trial.number,
                self.epochs,
                width,
            )
            self._end(f"ran out of epochs at width {width} before settling", width)
        reason = "the penalty not binding" if width < self.width else "every unit still in use"
        self._end(f"ran out of epochs at width {width} with {reason}", None)

    def _stand_down_if_decided(self) -> None:
        probes = _attrs.converged_probes(self.trial.study.get_trials(deepcopy=False))
        if not probes:
            return
        first = probes[0]
        width = first.system_attrs[_attrs.SYS_CONVERGED]
        _logger.info(
            "Probe trial %d stops at epoch %d: probe trial %d already converged to %d latent "
            "dimensions.",
            self.trial.number,
            self.epochs,
            first.number,
            width,
        )
        self._end(f"superseded: trial {first.number} converged first, to {width}", None)

    def _end(self, outcome: str, converged: int | None) -> None:
        storage, trial_id = self.trial.storage, self.trial._trial_id
        storage.set_trial_system_attr(trial_id, _attrs.SYS_OUTCOME, outcome)
        if math.isfinite(self.last_val_loss):
            # Recorded before the last cut of the tail, so truncation can be checked later.
            storage.set_trial_system_attr(trial_id, _attrs.SYS_LAST_LOSS, self.last_val_loss)
        if converged is not None:
            storage.set_trial_system_attr(trial_id, _attrs.SYS_CONVERGED, converged)
            storage.set_trial_user_attr(trial_id, _attrs.WIDTH, converged)
        self.flush(final=True)
        raise optuna.TrialPruned(f"SOSAE probe {outcome}.")

    def trajectory(self) -> list[list[int]]:
        """The probe's width trajectory, compacted to ``[epoch, width]`` at each change."""
        changes: list[list[int]] = []
        for epoch, width in enumerate(self.widths, start=1):
            if not changes or changes[-1][1] != width:
                changes.append([epoch, width])
        return changes

    def flush(self, *, final: bool = False) -> None:
        """Write the FLOP count (and a probe's trajectory) to the storage now."""
        if self._finished:
            return
        storage, trial_id = self.trial.storage, self.trial._trial_id
        if self.meter.total != self._written_flops:
            storage.set_trial_user_attr(trial_id, _attrs.FLOPS, int(self.meter.total))
            self._written_flops = self.meter.total
        if self.is_probe and self.widths:
            compact = self.trajectory()
            storage.set_trial_user_attr(trial_id, _attrs.WIDTHS, compact)
            storage.set_trial_system_attr(
                trial_id,
                _attrs.SYS_TRAJECTORY,
                [self.widths, self.binding, self.width, self.tail],
            )
        if final:
            self._finished = True
            _LIVE.pop((id(storage), trial_id), None)


def _sampler_latent_param(trial: optuna.Trial) -> str:
    name = getattr(trial.study.sampler, "latent_param", None)
    if not isinstance(name, str):
        raise ValueError(
            "the study's sampler is not an SOSAESampler; pass latent_param= to SOSAEBridge."
        )
    return name
