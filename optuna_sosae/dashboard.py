"""What optuna-sosae shows in optuna-dashboard: saved figures and a study note.

optuna-dashboard is an optional dependency (``pip install optuna-sosae[dashboard]``); without
it these functions log that nothing was saved and return ``False``.
"""

from __future__ import annotations

from collections.abc import Mapping
import logging
import re
from typing import TYPE_CHECKING

from optuna_sosae import _attrs


if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go


_logger = logging.getLogger(__name__)


def dashboard_available() -> bool:
    try:
        import optuna_dashboard  # noqa: F401
    except ImportError:
        return False
    return True


def _graph_id(name: str) -> str:
    # The dashboard accepts ids of letters, digits, '-' and '_'; a stable id per name means a
    # figure saved again replaces the old one instead of piling up.
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)[:64] or "figure"


def publish(
    study: optuna.Study,
    *,
    figures: Mapping[str, go.Figure] | None = None,
    note: str | None = None,
) -> bool:
    """Save plotly figures and a markdown note to the study for optuna-dashboard.

    Figures are stored in the study's system attributes in chunks, and the dashboard re-reads
    them often, so each is saved with the plain ``"none"`` template: plotly's default
    template alone adds several kB per figure.

    Args:
        study:
            The study to annotate.
        figures:
            Figures by name; a figure saved again under the same name replaces the old one.
        note:
            Markdown shown as the study's note.

    Returns:
        Whether optuna-dashboard was available to save them.
    """
    if not dashboard_available():
        _logger.info("optuna-dashboard is not installed; no figures or note saved.")
        return False
    from optuna_dashboard import save_note
    from optuna_dashboard import save_plotly_graph_object

    for name, figure in (figures or {}).items():
        figure.update_layout(template="none")
        save_plotly_graph_object(study, figure, graph_object_id=_graph_id(name))
    if note is not None:
        save_note(study, note)
    _logger.info(
        "Saved %d figure(s)%s to study %r for optuna-dashboard.",
        len(figures or {}),
        " and a note" if note is not None else "",
        study.study_name,
    )
    return True


def tune_note(
    study: optuna.Study,
    *,
    max_dim: int,
    tolerance: float,
    val_loss: float | None,
    baseline_loss: float,
    downstream_accuracy: float | None,
    tuned_trial: int,
) -> str:
    """Explain the result of ``optuna-sosae tune`` in words, as markdown for the study's note.

    The note says which width was found and against what (the generous width the probe
    started from), what finding it cost in FLOPs compared with the whole study, and how good
    the model trained at that width is. The width and the FLOP counts are read from the
    study's storage; the arguments give what the storage does not hold.

    Args:
        study:
            The study that ``optuna-sosae tune`` ran.
        max_dim:
            The generous width the probe started from.
        tolerance:
            Share of the data's variance the tuned model may leave unexplained.
        val_loss:
            Validation loss of the tuned trial.
        baseline_loss:
            Loss of predicting the mean, that is the data's variance per feature.
        downstream_accuracy:
            Accuracy of a classifier on the tuned model's codes, or ``None`` without labels.
        tuned_trial:
            Number of the trial that trained at the tuned width.

    Returns:
        The note's markdown.
    """
    trials = study.get_trials(deepcopy=False)
    width = _attrs.decided_width(trials)
    probes = _attrs.converged_probes(trials)
    flops_probes = _attrs.sum_flops(
        [t for t in trials if t.user_attrs.get(_attrs.ROLE) == _attrs.PROBE]
    )
    flops_total = _attrs.sum_flops(trials)

    if width is None or not probes:
        return (
            "## SOSAE: no width found yet\n\n"
            f"No probe trial has converged from the generous width of {max_dim} latent units; "
            f"the study has spent {_flops_text(flops_total)} so far."
        )
    probe = probes[0]
    record = probe.system_attrs.get(_attrs.SYS_TRAJECTORY)
    epochs = len(record[0]) if isinstance(record, list) and record else None
    if str(probe.system_attrs.get(_attrs.SYS_OUTCOME, "")).startswith("ran out"):
        # A probe that used its whole budget while its penalty was binding keeps its last
        # width; say so instead of calling it settled.
        ending = (
            f"until its {epochs or 'allowed'} epochs ran out before the width had held for the "
            f"pruner's patience; it took its last active width, **{width}** (more epochs may "
            "give a smaller width). "
        )
    else:
        after = f" after {epochs} epochs" if epochs else ""
        ending = f"until its active width settled at **{width}**{after}. "
    share = flops_probes / flops_total if flops_total else 0.0

    lines = [
        f"## SOSAE tuned latent width: {width} (of at most {max_dim})",
        "",
        f"The probe (trial {probe.number}) started at the generous width of {max_dim} latent "
        "units and trained under SOSAE's position-weighted penalty, which charges units more "
        "the further back they sit and so silences the tail of the code, "
        + ending
        + f"Trial {tuned_trial} then trained a fresh model at width {width}.",
        "",
        "| | |",
        "|---|---|",
        f"| Tuned width | **{width}** of {max_dim} latent units "
        f"({1 - width / max_dim:.0%} fewer) |",
        f"| FLOPs to find the width (probes) | {_flops_text(flops_probes)} "
        f"({share:.0%} of the study) |",
        f"| FLOPs in the whole study | {_flops_text(flops_total)} |",
    ]
    if val_loss is not None:
        lines.append(
            f"| Validation loss at width {width} | {val_loss:.4g} "
            f"({val_loss / baseline_loss:.2%} of the data's variance) |"
        )
    if downstream_accuracy is not None:
        lines.append(
            f"| Downstream accuracy | {downstream_accuracy:.1%} "
            "(logistic regression on the codes) |"
        )
    lines += [
        f"| Tolerance | {tolerance:g}: the probe shrinks the code while its reconstruction "
        f"leaves at most {tolerance:.0%} of the data's variance unexplained |",
        "",
        "Each trial's FLOP count is its `flops` user attribute and its role (probe or tuned) "
        "is `sosae_role`; the figure *width-trajectory* shows the probe's active width per "
        "epoch.",
    ]
    return "\n".join(lines)


def _flops_text(flops: int) -> str:
    for scale, unit in ((1e12, "TFLOPs"), (1e9, "GFLOPs"), (1e6, "MFLOPs")):
        if flops >= scale:
            return f"{flops / scale:.3g} {unit}"
    return f"{flops} FLOPs"
