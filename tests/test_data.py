from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from sklearn.datasets import load_digits as sklearn_digits

from optuna_sosae import SOSAEPruner
from optuna_sosae import SOSAESampler
from optuna_sosae import tuned_latent_dim
from optuna_sosae.data import load_digits
from optuna_sosae.data import load_file
from optuna_sosae.data import make_linear
from optuna_sosae.data import make_manifold
from optuna_sosae.training import SOSAEObjective
from optuna_sosae.training import TrainingConfig


def test_digits_is_bundled_and_scaled() -> None:
    data = load_digits()
    assert data.n_features == 64
    assert len(data.x_train) + len(data.x_val) == 1797
    assert data.x_train.min() >= 0 and data.x_train.max() <= 1
    assert data.y_val is not None and set(np.unique(data.y_val)) == set(range(10))


def test_generators_have_the_stated_dimension() -> None:
    linear = make_linear(k=4, n_features=20, n_samples=500, noise=0.0)
    centred = linear.x_train - linear.x_train.mean(axis=0)
    assert np.linalg.matrix_rank(centred, tol=1e-3) == 4
    assert linear.fingerprint != make_linear(k=4, n_features=20, n_samples=500, seed=1).fingerprint
    with pytest.raises(ValueError, match="n_features"):
        make_manifold(k=5, n_features=8)


def test_a_curved_manifold_gets_a_width_at_or_above_its_dimension() -> None:
    # A nonlinear decoder could use 3 units; the probe settles on the 2k = 6 coordinates of
    # the circles it is made of or close to it (see the README's known limits).
    data = make_manifold(k=3, n_features=40, n_samples=2000, seed=0)
    study = optuna.create_study(sampler=SOSAESampler(seed=0), pruner=SOSAEPruner())
    study.optimize(SOSAEObjective(data, max_dim=32, config=TrainingConfig(epochs=40)), n_trials=1)
    width = tuned_latent_dim(study)
    assert width is not None and 3 <= width <= 7


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", "", "is empty"),
        ("ragged.csv", "1,2,3\n4,5\n", "ragged"),
        ("words.csv", "a,b\n1,x\n", "'x'"),
        ("data.txt", "1,2\n", ".txt"),
    ],
)
def test_bad_files_are_named(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_file(path)


def test_csv_with_header_and_npz_with_labels(tmp_path: Path) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,c\n" + "\n".join(f"{i},{i * 2},{i % 3}" for i in range(20)))
    assert load_file(csv).n_features == 3
    npz = tmp_path / "d.npz"
    np.savez(npz, X=np.random.default_rng(0).random((30, 4)), y=np.arange(30) % 2)
    loaded = load_file(npz)
    assert loaded.y_train is not None and loaded.n_features == 4
    np.savez(npz, X=np.ones((5, 2)), y=np.ones(5) * 0.5)
    with pytest.raises(ValueError, match="integer labels"):
        load_file(npz)


def test_transform_maps_raw_rows_onto_the_prepared_features(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(5.0, 3.0, size=(60, 4))
    np.save(tmp_path / "raw.npy", raw)
    for dataset in (load_file(tmp_path / "raw.npy"), load_digits()):
        source = raw if dataset.name != "digits" else sklearn_digits().data
        mapped = dataset.transform(source)
        # Every validation row is one of the raw rows, mapped as the model saw it.
        for row in dataset.x_val[:20]:
            assert np.isclose(mapped, row, atol=1e-5).all(axis=1).any()
    with pytest.raises(ValueError, match=r"shape \[samples, 4\], got \(3,\)"):
        load_file(tmp_path / "raw.npy").transform(np.zeros(3))
