from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest

from optuna_sosae.cli import main
from optuna_sosae.data import make_linear
from optuna_sosae.models import load_model


def _write_k5(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((2000, 5))
    x = factors @ rng.standard_normal((5, 40)) + 0.05 * rng.standard_normal((2000, 40))
    np.savez(path, X=x)
    return path


@pytest.mark.parametrize("seed", [0, 1])
def test_tune_finds_the_intrinsic_dimension_of_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    data = _write_k5(tmp_path / "k5.npz", seed)
    storage = f"sqlite:///{tmp_path}/tune.db"
    code = main(["tune", "--data", str(data), "--max-dim", "32", "--storage", storage, "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["latent_dim"] == 5
    assert summary["downstream_accuracy"] is None  # no labels in the file
    assert 0 < summary["flops_tuning"] < summary["flops_total"]
    assert summary["val_loss"] < 0.05 * summary["baseline_loss"]
    assert summary["study_name"] == "sosae-k5.npz"
    assert summary["storage"] == storage


def test_tune_saves_a_loadable_model_and_joins_the_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path}/tune.db"
    args = ["tune", "--dataset", "synthetic", "--max-dim", "16", "--storage", storage]
    assert main([*args, "--json", "--output", str(tmp_path / "m.pt")]) == 0
    first = json.loads(capsys.readouterr().out)
    model, metadata = load_model(tmp_path / "m.pt")
    assert model.config.latent_dim == first["latent_dim"] == metadata["latent_dim"]
    # What a user needs to encode new raw data: the map from raw features to the model's input.
    offset, scale = make_linear(seed=0).input_map()
    assert np.allclose(metadata["input_offset"], offset)
    assert np.allclose(metadata["input_scale"], scale)
    assert metadata["preprocessing"].startswith("standardized")
    assert first["downstream_accuracy"] is not None and first["downstream_accuracy"] > 0.8
    # Joining the same study runs no second probe: only a tuned trial at the stored width.
    assert main([*args, "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["latent_dim"] == first["latent_dim"]
    assert second["flops_tuning"] == first["flops_tuning"]
    assert second["flops_total"] > first["flops_total"]


def test_text_summary_mentions_the_width(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_linear(k=2, n_features=12, n_samples=1000, seed=0)
    path = tmp_path / "small.npy"
    np.save(path, np.concatenate([data.x_train, data.x_val]))
    code = main(
        ["tune", "--data", str(path), "--max-dim", "6", "--storage", f"sqlite:///{tmp_path}/s.db"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Tuned latent width:" in out and "optuna-dashboard" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-dim", "0"], "--max-dim"),
        (["--dataset", "digits", "--data", "x.npz"], "not allowed with"),
        (["--data", "missing.npz"], "does not exist"),
        (["--tolerance", "2"], "--tolerance"),
        (["--storage", "not-a-url"], "not a database URL"),
        (["--device", "tpu"], "--device"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    storage = ["--storage", f"sqlite:///{tmp_path}/bad.db"]
    result = subprocess.run(
        [sys.executable, "-m", "optuna_sosae.cli", "tune", *storage, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") <= 1 or "usage:" in result.stderr
