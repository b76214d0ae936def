from __future__ import annotations

import importlib.util
import json
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import IntDistribution
from optuna.trial import TrialState
from optuna.trial import create_trial
import pytest

from optuna_sosae import dashboard
from optuna_sosae.visualization import plot_width_trajectory


# optuna-dashboard stores a saved figure in system attributes of at most this many characters.
CHUNK = 2045
PROBE_FLOPS = 2_256_076_800
TUNED_FLOPS = 2_174_976_000


def _study(
    *, with_tuned: bool = True, outcome: str = "converged to 7 after 17 epochs"
) -> optuna.Study:
    """A study shaped like one ``optuna-sosae tune`` writes: a converged probe, a tuned trial."""
    study = optuna.create_study()
    distribution: dict[str, BaseDistribution] = {"latent_dim": IntDistribution(1, 16)}
    study.add_trial(
        create_trial(
            state=TrialState.PRUNED,
            params={"latent_dim": 16},
            distributions=distribution,
            user_attrs={
                "flops": PROBE_FLOPS,
                "sosae_role": "probe",
                "sosae_width": 7,
                "sosae_widths": [[1, 16], [11, 14], [12, 9], [13, 7]],
            },
            system_attrs={
                "sosae:role": "probe",
                "sosae:converged_width": 7,
                "sosae:outcome": outcome,
                "sosae:trajectory": [[16] * 10 + [14, 9] + [7] * 5, [False] * 17],
            },
        )
    )
    if with_tuned:
        study.add_trial(
            create_trial(
                value=0.0034,
                params={"latent_dim": 7},
                distributions=distribution,
                user_attrs={"flops": TUNED_FLOPS, "sosae_role": "tuned"},
                system_attrs={"sosae:role": "tuned"},
            )
        )
    return study


def test_width_trajectory_runs_to_the_last_epoch_and_marks_the_tuned_width() -> None:
    figure = plot_width_trajectory(_study())

    assert len(figure.data) == 1
    trace = figure.data[0]
    assert list(trace.x) == [1, 11, 12, 13, 17]
    assert list(trace.y) == [16, 14, 9, 7, 7]
    assert trace.line.shape == "hv"
    assert [shape.y0 for shape in figure.layout.shapes] == [7]
    assert figure.layout.annotations[0].text == "tuned width 7"


def test_width_trajectory_without_a_probe_is_empty_and_says_so() -> None:
    study = optuna.create_study()
    study.add_trial(create_trial(value=1.0, user_attrs={"sosae_role": "tuned"}))

    figure = plot_width_trajectory(study)

    assert len(figure.data) == 0
    assert len(figure.layout.shapes) == 0
    assert "no width trajectory" in figure.layout.title.text


@pytest.mark.parametrize("probes", [1, 3])
def test_width_trajectory_fits_one_dashboard_chunk(probes: int) -> None:
    study = _study(with_tuned=False)
    for _ in range(probes - 1):
        study.add_trial(study.trials[0])
    figure = plot_width_trajectory(study)
    figure.update_layout(template="none")

    stored = figure.to_json()

    assert len(figure.data) == probes
    assert len(stored) <= CHUNK, len(stored)
    assert json.loads(stored)["layout"]["showlegend"] is (probes > 1)


def _note(study: optuna.Study, **changes: Any) -> str:
    """The note for a study, with the arguments ``optuna-sosae tune`` would pass, changed."""
    arguments: dict[str, Any] = {
        "max_dim": 16,
        "tolerance": 0.05,
        "val_loss": 0.0034,
        "baseline_loss": 1.0,
        "downstream_accuracy": None,
        "tuned_trial": 1,
    }
    return dashboard.tune_note(study, **{**arguments, **changes})


def test_tune_note_explains_width_flops_and_tolerance() -> None:
    note = _note(_study(), downstream_accuracy=0.985)

    assert note.startswith("## SOSAE tuned latent width: 7 (of at most 16)")
    assert "settled at **7** after 17 epochs" in note
    assert "| Tuned width | **7** of 16 latent units (56% fewer) |" in note
    assert "2.26 GFLOPs (51% of the study)" in note
    assert "| FLOPs in the whole study | 4.43 GFLOPs |" in note
    assert "0.34% of the data's variance" in note
    assert "98.5%" in note
    assert "at most 5% of the data's variance unexplained" in note
    assert len(note) <= CHUNK


def test_tune_note_says_when_the_probe_ran_out_of_epochs() -> None:
    study = _study(outcome="ran out of epochs at width 7 before settling")
    note = _note(study)
    assert "settled" not in note
    assert "until its 17 epochs ran out" in note
    assert "it took its last active width, **7**" in note


def test_tune_note_without_labels_or_width() -> None:
    without_labels = _note(_study())
    assert "Downstream accuracy" not in without_labels

    study = optuna.create_study()
    study.add_trial(create_trial(value=1.0, user_attrs={"flops": 5_000_000}))
    unconverged = _note(study, val_loss=1.0, tuned_trial=0)
    assert unconverged.startswith("## SOSAE: no width found yet")
    assert "5 MFLOPs" in unconverged


@pytest.mark.skipif(
    importlib.util.find_spec("optuna_dashboard") is None, reason="optuna-dashboard missing"
)
def test_publish_stores_the_figure_in_one_chunk_and_the_note() -> None:
    from optuna_dashboard import get_note

    study = _study()
    note = "## a note"

    assert dashboard.publish(
        study, figures={"width-trajectory": plot_width_trajectory(study)}, note=note
    )

    attrs = study._storage.get_study_system_attrs(study._study_id)
    chunks = [k for k in attrs if k.startswith("dashboard:plot_data:width-trajectory:")]
    assert chunks == ["dashboard:plot_data:width-trajectory:0"]
    # Plotly's default template would bring several kB of layout defaults with it.
    assert "layout" not in json.loads(attrs[chunks[0]])["layout"]["template"]
    assert get_note(study) == note
