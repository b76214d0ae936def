"""Plotly figures of what optuna-sosae recorded in a study.

Each function reads only the study's storage, so it works in any process that loads the study,
and returns a small figure: these figures are also saved into the study for optuna-dashboard,
which re-reads them every few seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go

from optuna_sosae import _attrs


if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


def plot_width_trajectory(study: optuna.Study) -> go.Figure:
    """Plot how the active latent width of each SOSAE probe shrank, epoch by epoch.

    Each probe trial stores its trajectory in the ``sosae_widths`` user attribute as
    ``[epoch, width]`` pairs at each change of width. The figure draws it as a step line from
    the generous starting width down to the width where the probe settled, and marks the
    study's tuned width (``sosae_latent_dim``) with a dashed line once a probe has converged.

    Args:
        study:
            A study written by :class:`~optuna_sosae.SOSAESampler`, for example by
            ``optuna-sosae tune``.

    Returns:
        A :class:`plotly.graph_objects.Figure`; without any probe it has no traces and its
        title says so.

    Example:

        .. code-block:: python

            import optuna
            from optuna_sosae.visualization import plot_width_trajectory

            study = optuna.load_study(
                study_name="sosae-digits", storage="sqlite:///optuna-sosae.db"
            )
            plot_width_trajectory(study).show()
    """
    trials = study.get_trials(deepcopy=False)
    probes = [t for t in trials if t.user_attrs.get(_attrs.ROLE) == _attrs.PROBE]
    figure = go.Figure()
    for trial in probes:
        points = _trajectory_points(trial)
        if not points:
            continue
        figure.add_trace(
            go.Scatter(
                x=[epoch for epoch, _ in points],
                y=[width for _, width in points],
                mode="lines+markers",
                line={"shape": "hv"},
                name=f"probe trial {trial.number}",
            )
        )

    tuned = _attrs.decided_width(trials)
    if tuned is not None:
        figure.add_hline(
            y=tuned,
            line={"dash": "dash", "color": "gray"},
            annotation_text=f"tuned width {tuned}",
            annotation_position="bottom right",
        )

    title = "SOSAE probe: active latent width per epoch"
    if not figure.data:
        title = "SOSAE probe: no width trajectory recorded yet"
    figure.update_layout(
        title=title,
        xaxis_title="epoch",
        yaxis_title="active latent width",
        yaxis_rangemode="tozero",
        showlegend=len(figure.data) > 1,
    )
    return figure


def _trajectory_points(trial: FrozenTrial) -> list[tuple[int, int]]:
    # The stored trajectory lists only the epochs where the width changed; the step line must
    # run on to the probe's last epoch, which the per-epoch record in the system attributes
    # gives (its length), so that a width held for many epochs shows as a long flat run.
    compact = trial.user_attrs.get(_attrs.WIDTHS)
    if not isinstance(compact, list) or not compact:
        return []
    points = [(int(epoch), int(width)) for epoch, width in compact]
    record = trial.system_attrs.get(_attrs.SYS_TRAJECTORY)
    last_epoch = len(record[0]) if isinstance(record, list) and record else points[-1][0]
    if last_epoch > points[-1][0]:
        points.append((last_epoch, points[-1][1]))
    return points
