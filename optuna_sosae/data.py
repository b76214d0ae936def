"""Data sets: scikit-learn's digits, synthetic data of known dimension, and user files.

Everything here works offline: digits ships inside scikit-learn, synthetic data is generated,
and user files are read from disk with errors that say what is wrong with them.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
from pathlib import Path
import zipfile

import numpy as np


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A train/validation split of float32 features, with optional integer labels.

    Attributes:
        name:
            Where the data came from (``digits``, ``synthetic-linear-k5``, a file name).
        x_train, x_val:
            Features, shape ``[samples, features]``, already preprocessed.
        y_train, y_val:
            Labels for the downstream classifier, or ``None``.
        preprocessing:
            What was done to the raw features, in words.
        fingerprint:
            A digest of the features, labels and split; a study records it so that joining it
            with other data fails instead of mixing results.
        intrinsic_dim:
            The true dimension for generated data, else ``None``.
        input_offset, input_scale:
            The per-feature map from raw features to the model's input,
            ``(x - input_offset) / input_scale`` (see :meth:`transform`); ``optuna-sosae tune
            --output`` saves them with the model so that it can encode new raw data.
    """

    name: str
    x_train: np.ndarray
    x_val: np.ndarray
    y_train: np.ndarray | None
    y_val: np.ndarray | None
    preprocessing: str
    fingerprint: str
    intrinsic_dim: int | None = None
    input_offset: np.ndarray | None = None
    input_scale: np.ndarray | None = None

    def input_map(self) -> tuple[np.ndarray, np.ndarray]:
        """The per-feature ``(offset, scale)`` of :meth:`transform` (0 and 1 when unset)."""
        n = self.n_features
        offset = np.zeros(n) if self.input_offset is None else np.asarray(self.input_offset)
        scale = np.ones(n) if self.input_scale is None else np.asarray(self.input_scale)
        return offset, scale

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Map raw features (rows like the data this set was made from) to the model's input."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(
                f"expected an array of shape [samples, {self.n_features}], got {x.shape}."
            )
        offset, scale = self.input_map()
        mapped: np.ndarray = ((x - offset) / scale).astype(np.float32)
        return mapped

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def baseline_loss(self) -> float:
        """Validation MSE of predicting the training mean: the loss of a width-0 code."""
        mean = self.x_train.mean(axis=0, keepdims=True)
        return float(((self.x_val - mean) ** 2).mean())


def _fingerprint(x: np.ndarray, y: np.ndarray | None, extra: str) -> str:
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    if y is not None:
        digest.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    digest.update(extra.encode())
    return digest.hexdigest()[:16]


def split(
    name: str,
    x: np.ndarray,
    y: np.ndarray | None,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    standardize: bool = True,
    preprocessing: str | None = None,
    intrinsic_dim: int | None = None,
) -> Dataset:
    """Shuffle and split features (and labels) into a :class:`Dataset`.

    With ``standardize`` each feature is centred and scaled by the training split's mean and
    standard deviation (constant features are only centred).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(
            f"data must be a 2-D array with at least 2 samples and 1 feature, got shape {x.shape}."
        )
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise ValueError(f"data holds {bad} NaN or infinite values; clean them first.")
    if y is not None and len(y) != len(x):
        raise ValueError(f"labels have {len(y)} entries but the data has {len(x)} samples.")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}.")
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = max(1, int(round(val_fraction * len(x))))
    val, train = order[:n_val], order[n_val:]
    if len(train) < 1:
        raise ValueError(f"{len(x)} samples are too few to split off a validation set.")
    x_train, x_val = x[train], x[val]
    mean = np.zeros(x.shape[1])
    std = np.ones(x.shape[1])
    if standardize:
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0)
        std[std < 1e-12] = 1.0
        x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
        preprocessing = preprocessing or "standardized per feature (training mean and std)"
    y_arr = None if y is None else np.asarray(y)
    extra = f"{name}|{val_fraction}|{seed}|{preprocessing}"
    return Dataset(
        name=name,
        x_train=x_train.astype(np.float32),
        x_val=x_val.astype(np.float32),
        y_train=None if y_arr is None else y_arr[train],
        y_val=None if y_arr is None else y_arr[val],
        preprocessing=preprocessing or "none",
        fingerprint=_fingerprint(x, y_arr, extra),
        intrinsic_dim=intrinsic_dim,
        input_offset=mean,
        input_scale=std,
    )


def load_digits(*, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1797 samples, 64 pixels, 10 classes).

    Pixels are scaled from 0..16 to 0..1 rather than standardized: many border pixels are
    almost always 0, and standardizing would blow their rare non-zero values up.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    dataset = split(
        "digits",
        bunch.data / 16.0,
        bunch.target,
        seed=seed,
        standardize=False,
        preprocessing="pixels scaled to [0, 1]",
    )
    # The raw pixels (0..16) reach the model divided by 16.
    return dataclasses.replace(dataset, input_scale=np.full(dataset.n_features, 16.0))


def make_linear(
    *,
    k: int = 5,
    n_features: int = 40,
    n_samples: int = 2000,
    noise: float = 0.05,
    seed: int = 0,
) -> Dataset:
    """A linear mixture of ``k`` independent factors into ``n_features`` features plus noise.

    Factors are standard normal, the mixing matrix has standard normal entries, and the
    features are standardized, so ``noise`` is relative to each feature's scale. The
    intrinsic dimension is ``k``. Labels are the sign pattern of the first two factors, so that
    downstream accuracy is defined.
    """
    _check_generator_args(k, n_features, n_samples, noise)
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((n_samples, k))
    mixing = rng.standard_normal((k, n_features))
    x = factors @ mixing
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    x += noise * rng.standard_normal(x.shape)
    y = _labels_from(factors)
    return split(f"synthetic-linear-k{k}", x, y, seed=seed, intrinsic_dim=k)


def make_manifold(
    *,
    k: int = 3,
    n_features: int = 40,
    n_samples: int = 2000,
    noise: float = 0.02,
    seed: int = 0,
) -> Dataset:
    """A curved ``k``-dimensional manifold in ``n_features`` features plus noise.

    Each factor ``t_j`` (uniform on an arc of 3/4 of a circle) is embedded as ``(cos t_j,
    sin t_j)``, and the ``2k`` coordinates are mixed linearly into the features. A linear
    method needs ``2k`` dimensions to reconstruct it; a nonlinear autoencoder needs ``k``.
    """
    _check_generator_args(k, n_features, n_samples, noise)
    if 2 * k > n_features:
        raise ValueError(f"n_features must be at least 2*k = {2 * k}, got {n_features}.")
    rng = np.random.default_rng(seed)
    angles = rng.uniform(0.0, 1.5 * np.pi, size=(n_samples, k))
    circle = np.concatenate([np.cos(angles), np.sin(angles)], axis=1)
    mixing = rng.standard_normal((2 * k, n_features))
    x = circle @ mixing
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    x += noise * rng.standard_normal(x.shape)
    y = _labels_from(angles - angles.mean(axis=0))
    return split(f"synthetic-manifold-k{k}", x, y, seed=seed, intrinsic_dim=k)


def _check_generator_args(k: int, n_features: int, n_samples: int, noise: float) -> None:
    if k < 1 or n_features < k or n_samples < 10 or noise < 0:
        raise ValueError(
            "expected k >= 1, n_features >= k, n_samples >= 10 and noise >= 0, got "
            f"k={k}, n_features={n_features}, n_samples={n_samples}, noise={noise}."
        )


def _labels_from(factors: np.ndarray) -> np.ndarray:
    bits = (factors[:, : min(2, factors.shape[1])] > 0).astype(np.int64)
    labels: np.ndarray = (bits * (2 ** np.arange(bits.shape[1]))).sum(axis=1)
    return labels


def load_file(path: str | Path, *, seed: int = 0) -> Dataset:
    """Read a user's data file and split it.

    Accepted: ``.npz`` with an array ``X`` and optionally integer labels ``y``; ``.npy`` with
    a 2-D array; ``.csv`` of numbers, with or without a header row, one sample per row.
    Features are standardized with the training split's statistics.

    Raises:
        ValueError: The file is missing, empty, ragged, non-numeric or has the wrong shape;
            the message names the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data file {str(path)!r} does not exist.")
    if path.stat().st_size == 0:
        raise ValueError(f"data file {str(path)!r} is empty.")
    suffix = path.suffix.lower()
    y: np.ndarray | None = None
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if "X" not in archive.files:
                    raise ValueError(
                        f"{str(path)!r} has no array 'X' (found: {', '.join(archive.files)})."
                    )
                x = archive["X"]
                y = archive["y"] if "y" in archive.files else None
        elif suffix == ".npy":
            x = np.load(path, allow_pickle=False)
        elif suffix == ".csv":
            x = _read_csv(path)
        else:
            raise ValueError(
                f"data file {str(path)!r} has suffix {suffix!r}; expected .npz, .npy or .csv."
            )
    except ValueError as err:
        if str(path) in str(err):
            raise
        raise ValueError(f"could not read {str(path)!r}: {err}") from err
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        # A damaged or truncated archive, or a file that cannot be read at all.
        raise ValueError(f"could not read {str(path)!r}: {err}") from err
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{str(path)!r} holds {x.dtype} values; expected numbers.")
    if x.ndim != 2:
        raise ValueError(f"{str(path)!r} holds an array of shape {x.shape}; expected 2-D.")
    if y is not None and (y.ndim != 1 or y.dtype.kind not in "biu"):
        raise ValueError(
            f"{str(path)!r}: 'y' must be a 1-D array of integer labels, got {y.dtype} {y.shape}."
        )
    return split(path.name, x, y, seed=seed)


def _read_csv(path: Path) -> np.ndarray:
    with path.open(newline="") as handle:
        rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError(f"data file {str(path)!r} has no rows.")
    try:
        [float(cell) for cell in rows[0]]
    except ValueError:
        rows = rows[1:]  # a header row
    if not rows:
        raise ValueError(f"data file {str(path)!r} has a header but no data rows.")
    width = len(rows[0])
    for number, row in enumerate(rows, start=1):
        if len(row) != width:
            raise ValueError(
                f"{str(path)!r} is ragged: data row {number} has {len(row)} fields, "
                f"the first has {width}."
            )
        for cell in row:
            try:
                float(cell)
            except ValueError:
                raise ValueError(
                    f"{str(path)!r} data row {number} holds {cell!r}, which is not a number."
                ) from None
    values: np.ndarray = np.array(rows, dtype=np.float64)
    return values
