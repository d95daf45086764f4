"""dlkit.data: loader determinism, the digits split, the IDX reader, synthetic problems."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

import dlkit
from dlkit import data


# -- DataLoader -------------------------------------------------------------------------------

def _dataset(n=10):
    X = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    y = np.arange(n) % 3
    return data.TensorDataset(X, y)


def test_batches_in_order_with_a_short_last_batch():
    loader = data.DataLoader(_dataset(10), batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and [b[0].shape for b in batches] == [(4, 2), (4, 2), (2, 2)]
    X, y = batches[0]
    assert isinstance(X, dlkit.Tensor) and X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), np.arange(10) % 3)


def test_drop_last():
    loader = data.DataLoader(_dataset(10), batch_size=4, drop_last=True)
    assert len(loader) == 2 and [b[0].shape[0] for b in loader] == [4, 4]


def test_shuffling_is_seeded_per_epoch():
    def epochs(seed):
        loader = data.DataLoader(_dataset(10), batch_size=3, shuffle=True, generator=np.random.default_rng(seed))
        return [np.concatenate([b[1].numpy() for b in loader]) for _ in range(2)], loader

    (e1, e2), _ = epochs(0)
    (f1, f2), _ = epochs(0)
    np.testing.assert_array_equal(e1, f1)
    np.testing.assert_array_equal(e2, f2)
    assert not np.array_equal(e1, e2)                     # a new permutation every epoch
    rng = np.random.default_rng(0)
    perm = rng.permutation(10)                            # documented: generator.permutation(n)
    np.testing.assert_array_equal(e1, perm % 3)
    loader = data.DataLoader(_dataset(10), batch_size=3, shuffle=True, generator=np.random.default_rng(1))
    rows = np.concatenate([b[0].numpy()[:, 0] for b in loader])
    np.testing.assert_array_equal(np.sort(rows), np.arange(0, 20, 2))   # every row exactly once


def test_generic_dataset_is_collated():
    class Squares(data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.array([i, i * i], dtype=np.float64), i

    (X, y), = list(data.DataLoader(Squares(), batch_size=5))
    assert X.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_array_equal(X.numpy()[:, 1], [0, 1, 4, 9, 16])


def test_loader_and_dataset_errors():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        data.DataLoader(_dataset(), batch_size=0)
    with pytest.raises(ValueError, match=r"share their first dimension, got shapes \(3, 2\), \(4,\)"):
        data.TensorDataset(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        data.DataLoader(_dataset(), shuffle=True, generator=0)


# -- digits -------------------------------------------------------------------------------------

def test_load_digits_shapes_range_and_split():
    X, y = data.load_digits("train")
    Xt, yt = data.load_digits("test")
    Xa, ya = data.load_digits("all")
    assert X.dtype == np.float32 and y.dtype == np.int64 and X.shape[1] == 64
    assert X.min() >= 0.0 and X.max() <= 1.0 and Xa.max() == 1.0
    assert len(y) + len(yt) == len(ya) == 1797
    assert abs(len(yt) - 0.2 * 1797) <= 10
    counts, test_counts = np.bincount(ya), np.bincount(yt)
    np.testing.assert_array_equal(test_counts, np.round(0.2 * counts))   # stratified, per class
    rows = {r.tobytes() for r in Xa}
    assert len(rows) > 1700
    X2, y2 = data.load_digits("train")
    np.testing.assert_array_equal(X, X2)                                   # deterministic
    X3, _ = data.load_digits("train", seed=1)
    assert not np.array_equal(X, X3)
    with pytest.raises(ValueError, match="split must be 'train', 'test' or 'all'"):
        data.load_digits("val")


def test_digits_train_and_test_are_disjoint():
    (X, _), (Xt, _) = data.load_digits("train", seed=3), data.load_digits("test", seed=3)
    Xa, _ = data.load_digits("all")
    index = {}
    for i, r in enumerate(Xa):
        index.setdefault(r.tobytes(), []).append(i)
    train_rows = {i for r in X for i in index[r.tobytes()]}
    test_rows = {i for r in Xt for i in index[r.tobytes()]}
    assert len(train_rows | test_rows) == 1797


# -- MNIST IDX files -------------------------------------------------------------------------------

def _idx(array: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) \
        + array.astype(np.uint8).tobytes()


def _write_mnist(directory, n=5, rows=4, cols=3, gz=False, split="train"):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, rows, cols), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    names = data.MNIST_FILES[split]
    for name, array in zip(names, (images, labels)):
        payload = _idx(array)
        if gz:
            with gzip.open(directory / (name + ".gz"), "wb") as f:
                f.write(payload)
        else:
            (directory / name).write_bytes(payload)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_plain_and_gzip(tmp_path, gz):
    images, labels = _write_mnist(tmp_path, gz=gz, split="test")
    X, y = data.load_mnist(tmp_path, split="test")
    assert X.shape == (5, 12) and X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(X, images.reshape(5, 12) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels)
    X3, _ = data.load_mnist(tmp_path, split="test", flatten=False)
    assert X3.shape == (5, 4, 3)


def test_load_mnist_missing_directory_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        data.load_mnist(tmp_path / "nowhere")
    _write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks train-labels-idx1-ubyte\[\.gz\]"):
        data.load_mnist(tmp_path)


def test_load_mnist_truncated_file(tmp_path):
    _write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: truncated IDX file: 69 bytes, "
                                         r"expected 76 for shape \(5, 4, 3\)"):
        data.load_mnist(tmp_path)


def test_load_mnist_corrupt_magic_and_dims(tmp_path):
    _write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    raw[0] = 0x1F
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: bad IDX magic number 0x1f000803"):
        data.load_mnist(tmp_path)
    path.write_bytes(_idx(np.zeros((5, 12), dtype=np.uint8)))          # 2-D where 3-D is expected
    with pytest.raises(ValueError, match="has 2 dimensions, expected 3"):
        data.load_mnist(tmp_path)
    path.write_bytes(_idx(np.zeros((6, 4, 3), dtype=np.uint8)))        # 6 images, 5 labels
    with pytest.raises(ValueError, match="has 6 images but .* has 5 labels"):
        data.load_mnist(tmp_path)


def test_load_mnist_corrupt_gzip(tmp_path):
    _write_mnist(tmp_path, gz=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:15])
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz: cannot read IDX file"):
        data.load_mnist(tmp_path)


def test_load_mnist_rejects_labels_above_nine(tmp_path):
    _write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(np.array([0, 1, 2, 3, 12], dtype=np.uint8)))
    with pytest.raises(ValueError, match="labels must be digits 0..9, found 12"):
        data.load_mnist(tmp_path)


# -- synthetic problems -----------------------------------------------------------------------------

def test_spirals_shapes_and_determinism():
    X, y = data.spirals(50, n_classes=4, noise=0.1, generator=np.random.default_rng(0))
    assert X.shape == (200, 2) and X.dtype == np.float32 and np.bincount(y).tolist() == [50] * 4
    X2, _ = data.spirals(50, n_classes=4, noise=0.1, generator=np.random.default_rng(0))
    np.testing.assert_array_equal(X, X2)
    assert np.all(np.linalg.norm(X, axis=1) <= 1.0 + 1e-6)
    clean, _ = data.spirals(5, n_classes=1, noise=0.0)
    t = np.linspace(0, 4, 5)
    np.testing.assert_allclose(clean, np.column_stack([np.linspace(0, 1, 5) * np.sin(t),
                                                       np.linspace(0, 1, 5) * np.cos(t)]), atol=1e-6)


def test_quadratic_problem():
    q = data.quadratic(n=4, condition=50.0, generator=np.random.default_rng(0))
    np.testing.assert_allclose(q.P, q.P.T)
    eig = np.linalg.eigvalsh(q.P)
    np.testing.assert_allclose(eig, np.geomspace(1, 50, 4), rtol=1e-10)
    theta = np.random.default_rng(1).standard_normal(4)
    assert q.f(theta) == pytest.approx(0.5 * theta @ q.P @ theta + q.q @ theta)
    np.testing.assert_allclose(q.grad(theta), q.P @ theta + q.q)
    np.testing.assert_allclose(q.grad(q.minimizer), 0, atol=1e-12)
    assert q.f(q.minimizer) < q.f(q.minimizer + 0.01)
    t = dlkit.tensor(theta, requires_grad=True, dtype="float64")
    value = q.loss(t)
    value.backward()
    assert float(value.item()) == pytest.approx(q.f(theta), rel=1e-12)
    np.testing.assert_allclose(t.grad.numpy(), q.grad(theta), rtol=1e-12)
    batch = np.stack([theta, q.minimizer])
    np.testing.assert_allclose(q.f(batch), [q.f(theta), q.f(q.minimizer)])
    with pytest.raises(ValueError, match="condition >= 1"):
        data.quadratic(2, condition=0.5)
