"""Data: datasets, a seeded minibatch loader, and the course's data sets.

* :class:`Dataset`, :class:`TensorDataset`, :class:`DataLoader` — PyTorch-style minibatching.
  Batches are tuples of :class:`dlkit.Tensor`; float arrays keep float32/float64, integer
  arrays (class labels) become int64.
* :func:`load_digits` — scikit-learn's bundled 8×8 digits (offline), X (n, 64) float32 in
  [0, 1], y (n,) int64, with a deterministic stratified train/test split.
* :func:`load_mnist` — MNIST from the standard IDX files (plain or ``.gz``), validated.
* :func:`spirals`, :func:`quadratic` — synthetic problems for the notebooks.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from .autograd import Tensor, tensor

__all__ = [
    "Dataset", "TensorDataset", "DataLoader", "load_digits", "load_mnist", "MNIST_FILES",
    "spirals", "Quadratic", "quadratic",
]


def _as_numpy(a: Any) -> np.ndarray:
    return a.numpy() if isinstance(a, Tensor) else np.asarray(a)


def _to_tensor(a: np.ndarray) -> Tensor:
    """float32/float64 stay; other floats → float32; ints/bools (labels) → int64."""
    a = np.asarray(a)
    if a.dtype.kind == "f":
        return tensor(a, dtype=str(a.dtype) if a.dtype in (np.float32, np.float64) else "float32")
    if a.dtype.kind in "iub":
        return tensor(a.astype(np.int64), dtype="int64")
    raise TypeError(f"cannot batch an array of dtype {a.dtype}; use float or integer arrays")


class Dataset:
    """A map-style dataset: ``len(ds)`` examples, ``ds[i]`` a tuple of numpy arrays."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple:
        raise NotImplementedError


class TensorDataset(Dataset):
    """Rows of equally long arrays: ``ds[i] == (a[i], b[i], ...)``.

    ``arrays`` are numpy arrays (or Tensors, copied to host) sharing their first dimension.
    """

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        self.arrays = tuple(_as_numpy(a) for a in arrays)
        lengths = [a.shape[0] if a.ndim else None for a in self.arrays]
        if None in lengths or len(set(lengths)) != 1:
            shapes = ", ".join(str(a.shape) for a in self.arrays)
            raise ValueError(f"TensorDataset: arrays must share their first dimension, got shapes {shapes}")

    def __len__(self) -> int:
        return self.arrays[0].shape[0]

    def __getitem__(self, index: Any) -> tuple:
        return tuple(a[index] for a in self.arrays)


class DataLoader:
    """Iterate over ``dataset`` in minibatches of ``batch_size`` rows.

    With ``shuffle=True`` every epoch (every ``iter(loader)``) uses the order
    ``generator.permutation(len(dataset))``; pass ``generator=np.random.default_rng(seed)``
    for a reproducible sequence of epochs (``None``: a fresh unseeded generator, created once).
    ``drop_last=True`` skips a final batch smaller than ``batch_size``.
    Each batch is a tuple of Tensors (labels int64).
    """

    def __init__(self, dataset: Dataset, batch_size: int = 32, shuffle: bool = False,
                 drop_last: bool = False, generator: np.random.Generator | None = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        if generator is not None and not isinstance(generator, np.random.Generator):
            raise TypeError(f"DataLoader: generator must be a numpy.random.Generator, got {type(generator).__name__}")
        if not isinstance(dataset, Dataset) and isinstance(dataset, (tuple, list)):
            dataset = TensorDataset(*dataset)
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator if generator is not None or not shuffle else np.random.default_rng()

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _order(self) -> np.ndarray:
        n = len(self.dataset)
        return self.generator.permutation(n) if self.shuffle else np.arange(n)

    def _collate(self, indices: np.ndarray) -> tuple:
        if isinstance(self.dataset, TensorDataset):  # fast path: one fancy index per array
            columns = self.dataset[indices]
        else:
            items = [self.dataset[int(i)] for i in indices]
            if not isinstance(items[0], tuple):
                items = [(item,) for item in items]
            columns = tuple(np.stack([_as_numpy(item[k]) for item in items]) for k in range(len(items[0])))
        return tuple(_to_tensor(c) for c in columns)

    def __iter__(self) -> Iterator[tuple]:
        order = self._order()
        stop = len(self) * self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            yield self._collate(order[start:start + self.batch_size])


# -- the course's data sets ---------------------------------------------------------------------

def _stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a seeded permutation puts round(test_fraction·count) examples in the test set."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        k = int(round(test_fraction * idx.size))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_digits(split: str = "train", test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8×8 handwritten digits (1797 images, no download).

    Returns ``(X, y)``: X (n, 64) float32 scaled to [0, 1] (pixel/16), y (n,) int64 in 0..9.
    ``split`` is "train", "test" or "all"; the split is stratified by class and depends only
    on ``seed`` and ``test_fraction`` (train and test are disjoint and cover all examples).
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"load_digits: split must be 'train', 'test' or 'all', got {split!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"load_digits: test_fraction must be in (0, 1), got {test_fraction}")
    from sklearn.datasets import load_digits as _sk_digits

    bunch = _sk_digits()
    X = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    if split == "all":
        return X, y
    train, test = _stratified_split(y, test_fraction, seed)
    idx = train if split == "train" else test
    return X[idx], y[idx]


#: IDX file names per split: (images, labels).
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_idx(path: str, expected_ndim: int) -> np.ndarray:
    """Parse one IDX file: magic (0, 0, dtype code, ndim), ndim big-endian uint32 sizes, data."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:  # gzip raises these on corrupt/truncated archives
        raise ValueError(f"{path}: cannot read IDX file ({exc})") from exc
    if len(raw) < 4:
        raise ValueError(f"{path}: truncated IDX file: {len(raw)} bytes, expected at least a 4-byte header")
    zero1, zero2, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero1 != 0 or zero2 != 0 or code not in _IDX_DTYPES:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()}; expected 0x0000{0x08:02x}{expected_ndim:02x} "
            "(two zero bytes, a dtype code, the number of dimensions)"
        )
    if ndim != expected_ndim:
        raise ValueError(f"{path}: IDX file has {ndim} dimensions, expected {expected_ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header: {len(raw)} bytes, expected {header}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        kind = "truncated" if len(raw) < expected else "oversized"
        raise ValueError(
            f"{path}: {kind} IDX file: {len(raw)} bytes, expected {expected} for shape {tuple(dims)}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _find(directory: str, name: str) -> str | None:
    for candidate in (name, name + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def load_mnist(directory: str, split: str = "train", flatten: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """MNIST from the standard IDX files in ``directory`` (no download).

    Reads ``train-images-idx3-ubyte`` / ``train-labels-idx1-ubyte`` (split "train") or
    ``t10k-images-idx3-ubyte`` / ``t10k-labels-idx1-ubyte`` (split "test"), each plain or
    ``.gz``.  Returns X float32 in [0, 1], shape (n, rows·cols) (or (n, rows, cols) with
    ``flatten=False``), and y (n,) int64.  Missing files raise ``FileNotFoundError`` naming the
    expected files; malformed ones raise ``ValueError`` naming the file and what was expected.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"load_mnist: split must be 'train' or 'test', got {split!r}")
    images_name, labels_name = MNIST_FILES[split]
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"load_mnist: directory {directory!r} not found; it should contain {images_name}[.gz] "
            f"and {labels_name}[.gz]"
        )
    paths = {name: _find(directory, name) for name in (images_name, labels_name)}
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        raise FileNotFoundError(
            f"load_mnist: {directory!r} lacks {' and '.join(n + '[.gz]' for n in missing)} "
            f"(expected {images_name}[.gz] and {labels_name}[.gz])"
        )
    images = _read_idx(paths[images_name], expected_ndim=3)
    labels = _read_idx(paths[labels_name], expected_ndim=1)
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise ValueError(f"load_mnist: expected unsigned-byte IDX data (code 0x08) in {directory!r}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"load_mnist: {paths[images_name]} has {images.shape[0]} images but "
            f"{paths[labels_name]} has {labels.shape[0]} labels"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{paths[labels_name]}: labels must be digits 0..9, found {int(labels.max())}")
    X = images.astype(np.float32) / 255.0
    if flatten:
        X = X.reshape(X.shape[0], -1)
    return X, labels.astype(np.int64)


def spirals(n_per_class: int, n_classes: int = 3, noise: float = 0.2,
            generator: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved 2-D spirals (not linearly separable): X (n_per_class·n_classes, 2) float32, y int64.

    Class k: radius r = linspace(0, 1, n), angle t = linspace(4k, 4(k+1), n) + noise·N(0, 1),
    point (r sin t, r cos t).  Draws: one ``standard_normal(n)`` per class, in class order.
    """
    if n_per_class < 1 or n_classes < 1:
        raise ValueError(f"spirals: need n_per_class >= 1 and n_classes >= 1, got {n_per_class}, {n_classes}")
    rng = np.random.default_rng() if generator is None else generator
    X = np.empty((n_per_class * n_classes, 2))
    y = np.repeat(np.arange(n_classes, dtype=np.int64), n_per_class)
    r = np.linspace(0.0, 1.0, n_per_class)
    for k in range(n_classes):
        t = np.linspace(4.0 * k, 4.0 * (k + 1), n_per_class) + noise * rng.standard_normal(n_per_class)
        X[k * n_per_class:(k + 1) * n_per_class] = np.column_stack([r * np.sin(t), r * np.cos(t)])
    return X.astype(np.float32), y


@dataclass
class Quadratic:
    """f(θ) = ½θᵀPθ + qᵀθ with P symmetric positive definite.

    ∇f(θ) = Pθ + q, Hessian P, minimizer θ* = −P⁻¹q.  Plain GD with step α converges iff
    α < 2/λ_max(P); Newton's method reaches θ* in one step.
    """

    P: np.ndarray
    q: np.ndarray
    eigenvalues: np.ndarray = field(repr=False)

    @property
    def minimizer(self) -> np.ndarray:
        return np.linalg.solve(self.P, -self.q)

    @property
    def hessian(self) -> np.ndarray:
        return self.P

    def f(self, theta: np.ndarray) -> float | np.ndarray:
        """f at θ (n,) or at a stack of points (..., n)."""
        theta = np.asarray(theta, dtype=np.float64)
        return 0.5 * np.einsum("...i,ij,...j->...", theta, self.P, theta) + theta @ self.q

    def grad(self, theta: np.ndarray) -> np.ndarray:
        return np.asarray(theta, dtype=np.float64) @ self.P + self.q

    def loss(self, theta: Tensor) -> Tensor:
        """f as a differentiable dlkit expression of a Tensor θ of shape (n,)."""
        P = tensor(self.P, dtype=theta.dtype)
        q = tensor(self.q, dtype=theta.dtype)
        return 0.5 * (theta * (P @ theta)).sum() + (q * theta).sum()


def quadratic(n: int = 2, condition: float = 10.0, generator: np.random.Generator | None = None) -> Quadratic:
    """A random quadratic problem with eigenvalues geomspace(1, condition, n).

    P = Q diag(λ) Qᵀ with Q orthogonal from the QR of an (n, n) standard normal draw, then
    q ~ N(0, I) (draw order: the matrix, then q).  Condition number λ_max/λ_min = ``condition``.
    """
    if n < 1 or not condition >= 1.0:
        raise ValueError(f"quadratic: need n >= 1 and condition >= 1, got n={n}, condition={condition}")
    rng = np.random.default_rng() if generator is None else generator
    Q, R = np.linalg.qr(rng.standard_normal((n, n)))
    Q = Q * np.sign(np.diag(R))  # a unique orthogonal factor
    lam = np.geomspace(1.0, condition, n)
    P = (Q * lam) @ Q.T
    P = 0.5 * (P + P.T)
    q = rng.standard_normal(n)
    return Quadratic(P=P, q=q, eigenvalues=lam)
