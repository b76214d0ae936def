from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch

from optuna_sosae import width_within_tolerance
from optuna_sosae.cli import main
from optuna_sosae.cli import print_comparison
from optuna_sosae.compare import CLOSE_ENOUGH
from optuna_sosae.compare import TARGET_LOSS
from optuna_sosae.compare import Comparison
from optuna_sosae.compare import MethodResult
from optuna_sosae.compare import _median_run
from optuna_sosae.compare import check_targets
from optuna_sosae.compare import grid_widths
from optuna_sosae.compare import smallest_good_width
from optuna_sosae.dashboard import dashboard_available
from optuna_sosae.data import make_linear
from optuna_sosae.visualization import comparison_figures
from optuna_sosae.visualization import report_html


MAX_DIM = 8
TPE_SEEDS = 2
TPE_BUDGET = 5
KEYS = ("latent_dim", "flops_tuning", "flops_total", "val_loss", "downstream_accuracy")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One small comparison through the command line, shared by the tests below."""
    folder = tmp_path_factory.mktemp("compare")
    # Three factors in 16 features: small enough to train in a fraction of a second per trial,
    # large enough for the probe to settle within the 40 epochs.
    data = make_linear(k=3, n_features=16, n_samples=1000, seed=0)
    path = folder / "linear.npz"
    np.savez(
        path,
        X=np.concatenate([data.x_train, data.x_val]),
        y=np.concatenate([data.y_train, data.y_val]),  # type: ignore[list-item]
    )
    storage = f"sqlite:///{folder / 'compare.db'}"
    report = folder / "report.html"
    argv = ["compare", "--data", str(path), "--max-dim", str(MAX_DIM), "--epochs", "40"]
    argv += ["--baselines", "grid,tpe", "--tpe-seeds", str(TPE_SEEDS)]
    argv += ["--tpe-budget", str(TPE_BUDGET), "--final-seeds", "2", "--storage", storage]
    argv += ["--report", str(report), "--json"]
    # Module-scoped, so it runs before the per-test fixture of conftest.py that sets this.
    torch.set_num_threads(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    assert code == 0
    summary = json.loads(out.getvalue())
    return {"summary": summary, "storage": storage, "report": report, "argv": argv}


def _studies(run: dict[str, Any]) -> dict[str, optuna.Study]:
    names = run["summary"]["settings"]["studies"]
    return {n: optuna.load_study(study_name=n, storage=run["storage"]) for n in names}


def test_json_has_every_method_with_the_documented_keys(run: dict[str, Any]) -> None:
    methods = run["summary"]["methods"]
    assert list(methods) == ["sosae", "grid", "tpe"]
    for entry in methods.values():
        for key in (*KEYS, "wall_seconds"):
            assert key in entry
        assert isinstance(entry["latent_dim"], int) and 1 <= entry["latent_dim"] <= MAX_DIM
        assert entry["flops_total"] >= entry["flops_tuning"] > 0
        assert entry["val_loss"] > 0 and 0.0 <= entry["downstream_accuracy"] <= 1.0
        assert entry["wall_seconds"] > 0
    assert methods["sosae"]["vs_sosae"]["flops_tuning"] == pytest.approx(1.0)
    ratio = methods["grid"]["flops_tuning"] / methods["sosae"]["flops_tuning"]
    assert methods["grid"]["vs_sosae"]["flops_tuning"] == pytest.approx(ratio)


def test_grid_width_is_the_smallest_meeting_the_criterion_on_its_curve(
    run: dict[str, Any],
) -> None:
    summary = run["summary"]
    curve = {int(w): loss for w, loss in summary["curve"].items()}
    criterion = summary["criterion"]
    assert sorted(curve) == list(range(1, MAX_DIM + 1))
    target = curve[MAX_DIM] + criterion["tolerance"] * criterion["baseline_loss"]
    assert criterion["target_loss"] == pytest.approx(target)
    width = summary["methods"]["grid"]["latent_dim"]
    assert width == criterion["reference_width"]
    assert curve[width] <= target
    assert all(curve[w] > target for w in range(1, width))


def test_every_trial_records_its_flops_and_the_sums_match(run: dict[str, Any]) -> None:
    methods = run["summary"]["methods"]
    studies = _studies(run)
    assert len(studies) == 2 + TPE_SEEDS
    for name, study in studies.items():
        trials = study.get_trials(deepcopy=False)
        assert trials, name
        for trial in trials:
            assert isinstance(trial.user_attrs.get("flops"), int), (name, trial.number)
            assert trial.user_attrs["flops"] > 0, (name, trial.number)
    sosae = studies[methods["sosae"]["study_names"][0]].get_trials()
    assert methods["sosae"]["flops_total"] == sum(t.user_attrs["flops"] for t in sosae)
    probes = [t for t in sosae if t.user_attrs["sosae_role"] == "probe"]
    assert methods["sosae"]["flops_tuning"] == sum(t.user_attrs["flops"] for t in probes)
    grid = studies[methods["grid"]["study_names"][0]].get_trials()
    assert methods["grid"]["flops_tuning"] == sum(t.user_attrs["flops"] for t in grid)
    tpe = studies[methods["tpe"]["study_names"][0]].get_trials()
    assert methods["tpe"]["flops_tuning"] == sum(t.user_attrs["flops"] for t in tpe)


def test_sosae_tunes_with_fewer_flops_than_grid(run: dict[str, Any]) -> None:
    methods = run["summary"]["methods"]
    assert methods["sosae"]["flops_tuning"] < methods["grid"]["flops_tuning"]


def test_the_same_training_costs_the_same_flops_in_every_method(run: dict[str, Any]) -> None:
    # The grid's and TPE's max-dim trials train the same model with the same seed, and the
    # SOSAE tuned trial (if at max-dim) the same shape for the same epochs: one meter, one count.
    studies = _studies(run)
    methods = run["summary"]["methods"]
    grid = studies[methods["grid"]["study_names"][0]]
    at_max = [t for t in grid.trials if t.params["latent_dim"] == MAX_DIM][0]
    for name in methods["tpe"]["study_names"]:
        first = studies[name].trials[0]
        assert first.params["latent_dim"] == MAX_DIM
        assert first.user_attrs["flops"] == at_max.user_attrs["flops"]
        assert first.user_attrs["val_loss"] == pytest.approx(at_max.value, rel=1e-4)


def test_tpe_runs_stop_near_grid_or_spend_their_budget(run: dict[str, Any]) -> None:
    summary = run["summary"]
    reference = summary["criterion"]["reference_width"]
    runs = summary["methods"]["tpe"]["details"]["runs"]
    assert len(runs) == TPE_SEEDS
    for entry in runs:
        assert 1 <= entry["trials"] <= TPE_BUDGET
        close = abs(entry["latent_dim"] - reference) <= CLOSE_ENOUGH * reference
        assert entry["reached_reference"] == close
        assert close or entry["trials"] == TPE_BUDGET
    studies = _studies(run)
    for name in summary["methods"]["tpe"]["study_names"]:
        study = studies[name]
        target = study.user_attrs[TARGET_LOSS]
        for trial in study.trials:
            # Feasible exactly when the loss meets this run's own target.
            feasible = trial.user_attrs["val_loss"] <= target
            assert (max(trial.constraints.values()) <= 0) == feasible


def test_html_report_is_one_file_with_the_plotly_figures(run: dict[str, Any]) -> None:
    text = Path(run["report"]).read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("Plotly.newPlot") == 3
    # plotly.js itself is inside the page, so it opens offline.
    assert "<script src=" not in text
    assert len(text) > 1_000_000
    for title in ("Validation loss against latent width", "SOSAE probe: active latent width"):
        assert title in text


def test_figures_are_saved_to_the_studies_for_the_dashboard(run: dict[str, Any]) -> None:
    assert run["summary"]["dashboard"] is dashboard_available()
    if not dashboard_available():
        pytest.skip("optuna-dashboard is not installed")
    for study in _studies(run).values():
        keys = list(study._storage.get_study_system_attrs(study._study_id))
        for figure in ("loss-vs-width", "width-vs-flops", "probe-width"):
            assert any(k.startswith(f"dashboard:plot_data:{figure}:") for k in keys), figure
        assert any("note" in k for k in keys)


def test_table_names_every_method_and_every_target(
    run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    print_comparison(run["summary"])
    out = capsys.readouterr().out
    for name in ("sosae", "grid", "tpe", "tuning FLOPs, grid / sosae", "width off grid's"):
        assert name in out


def test_existing_studies_are_not_overwritten_unless_asked(
    run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a for a in run["argv"] if a != "--json"]
    assert main(argv) == 2
    assert "already exist" in capsys.readouterr().err


@pytest.mark.parametrize("baselines", ["grid,sgd", ""])
def test_unknown_baselines_are_a_usage_error(baselines: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["compare", "--baselines", baselines])
    assert info.value.code == 2


@pytest.mark.parametrize(
    ("max_dim", "kind", "expected"),
    [(8, "full", [1, 2, 3, 4, 5, 6, 7, 8]), (64, "pow2", [1, 2, 4, 8, 16, 32, 64])],
)
def test_grid_widths(max_dim: int, kind: str, expected: list[int]) -> None:
    assert grid_widths(max_dim, kind) == expected


def test_pow2_grid_keeps_max_dim_so_the_criterion_has_its_reference() -> None:
    assert grid_widths(48, "pow2") == [1, 2, 4, 8, 16, 32, 48]
    with pytest.raises(ValueError, match="'coarse'"):
        grid_widths(8, "coarse")


def test_smallest_good_width_agrees_with_the_bisection_on_a_falling_curve() -> None:
    curve = {d: 1.0 / (1 + d) for d in range(1, 33)}
    target = curve[32] + 0.05
    bisected = width_within_tolerance(
        lambda d: 1.0 / (1 + d), upper=32, baseline_loss=1.0, tolerance=0.05
    )
    assert smallest_good_width(curve, target) == bisected
    # On a wobbly curve the first width under the target wins, wherever it is.
    assert smallest_good_width({1: 0.5, 2: 0.1, 3: 0.3, 4: 0.1}, 0.2) == 2
    assert smallest_good_width({1: 0.5}, 0.2) is None


def _result(method: str, flops: int, width: int, seed: int = 0) -> MethodResult:
    return MethodResult(
        method=method,
        latent_dim=width,
        flops_tuning=flops,
        flops_total=flops,
        wall_seconds=flops / 1e9,
        wall_seconds_total=flops / 1e9,
        trials=1,
        study_names=[f"{method}-s{seed}"],
        val_loss=0.01,
        downstream_accuracy=0.9,
        details={"sampler_seed": seed, "reached_reference": True},
    )


def test_median_tpe_run_is_reported_whole() -> None:
    runs = [_result("tpe", f, w, s) for s, (f, w) in enumerate([(9, 4), (1, 6), (5, 5)])]
    median = _median_run(runs)
    assert (median.flops_tuning, median.latent_dim) == (5, 5)
    assert median.study_names[0] == "tpe-s2"
    assert len(median.details["runs"]) == 3


def test_targets_and_figures_from_a_hand_made_comparison() -> None:
    sosae = _result("sosae", 10**9, 12)
    grid = _result("grid", 140 * 10**9, 10)
    grid.val_loss, grid.downstream_accuracy = 0.0095, 0.93
    comparison = Comparison(
        dataset="toy",
        max_dim=16,
        tolerance=0.05,
        baseline_loss=1.0,
        target_loss=0.06,
        reference_width=10,
        methods={"sosae": sosae, "grid": grid},
        curve={d: 1.0 / d for d in range(1, 17)},
        probe_widths=[[1, 16], [5, 12]],
        histories={"sosae": [(10**8, 16), (10**9, 12)], "grid": [(10**9, None), (2e9, 10)]},
        settings={"final_seeds": 3, "tpe_seeds": 0, "studies": []},
    )
    met = {c["name"]: c["met"] for c in check_targets(comparison)}
    assert met["tuning FLOPs, grid / sosae"] is True
    assert met["wall ratio as a share of FLOP ratio, grid"] is True
    assert met["sosae val loss above grid's, relative"] is True  # 0.01 vs 0.0095: +5%
    assert met["sosae accuracy minus grid's, points"] is False  # 3 points below
    assert met["sosae width off grid's, relative"] is True  # 12 vs 10: 20%
    figures = comparison_figures(comparison)
    assert set(figures) == {"loss-vs-width", "width-vs-flops", "probe-width"}
    marked = [t.name for t in figures["loss-vs-width"].data]
    assert "sosae picks 12" in marked and "grid picks 10" in marked
    assert list(figures["probe-width"].data[0].y) == [16, 12]
    assert "Plotly.newPlot" in report_html(comparison)
