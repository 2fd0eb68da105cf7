"""MNIST for the Section 6 experiments: the full data set shipped with the project, verified.

Sources
-------
* ``"idx"`` (the default): the four original IDX files of MNIST, gzip-compressed, shipped in
  ``data/mnist/`` at the repository root (or ``$QATLIB_MNIST_DIR``, or ``data_dir``). Before use,
  each file's *decompressed* bytes are checked against the published size and MD5
  (:data:`MNIST_FILES`); a missing file is a :class:`FileNotFoundError` and a corrupt or truncated
  one a :class:`CorruptDataError`, both naming the file, raised before any training starts.
* ``"tfds"``: tensorflow-datasets ``mnist`` for users who have it *prepared* on disk
  (``<data_dir>/mnist/<version>/dataset_info.json``); this module never starts a download. To
  prepare it once on a machine with network access::

      pip install tensorflow-cpu tensorflow-datasets
      python -c "import tensorflow_datasets as tfds; tfds.builder('mnist').download_and_prepare()"

  ``data_dir`` defaults to ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``; tensorflow and
  tensorflow-datasets are an optional extra (``pip install qatlib[imagenet]``), imported lazily.

Both give the paper's split: the 60,000 training images for training and the 10,000 test images
for evaluation (the paper's Table 5 reports them as "val"; no validation set is carved out of the
training images). Images are float32 in [0, 1] of shape (N, 28, 28, 1) (pixel / 255); labels are
int32.

>>> data = load_mnist()
>>> data.train_images.shape, data.val_images.shape, data.source
((60000, 28, 28, 1), (10000, 28, 28, 1), 'idx')
>>> batch = next(batch_stream(data.train_images, data.train_labels, batch_size=32, seed=0))
>>> batch["image"].shape, batch["label"].dtype
((32, 28, 28, 1), dtype('int32'))
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = [
    "SOURCES",
    "PREPARE_HINT",
    "MNIST_FILES",
    "CorruptDataError",
    "MNIST",
    "mnist_dir",
    "read_idx",
    "mnist_pixels",
    "verify_mnist",
    "load_mnist",
    "tfds_data_dir",
    "tfds_prepared_dir",
    "batch_stream",
    "eval_batches",
    "MNIST_TRAIN_SIZE",
    "MNIST_TEST_SIZE",
    "MNIST_SOURCE",
    "mnist_sample",
]

#: The number of training images of full MNIST, the pool :func:`mnist_sample` draws from.
MNIST_TRAIN_SIZE = 60_000
MNIST_TEST_SIZE = 10_000
MNIST_SOURCE = "shipped full MNIST (MD5-verified IDX files)"

SOURCES = ("idx", "tfds")

#: The published (decompressed size, MD5) of each original MNIST IDX file, by role.
MNIST_FILES: dict[str, tuple[str, int, str]] = {
    "train_images": ("train-images-idx3-ubyte.gz", 47_040_016, "6bbc9ace898e44ae57da46a324031adb"),
    "train_labels": ("train-labels-idx1-ubyte.gz", 60_008, "a25bea736e30d166cdddb491f175f624"),
    "test_images": ("t10k-images-idx3-ubyte.gz", 7_840_016, "2646ac647ad5339dbf082846283269ea"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", 10_008, "27ae3e4e09519cfbb04c329615203637"),
}

PREPARE_HINT = (
    "tfds MNIST is not prepared on disk under {data_dir}. This library never downloads data. On a "
    "machine with network access run once:\n"
    "  pip install tensorflow-cpu tensorflow-datasets\n"
    "  python -c \"import tensorflow_datasets as tfds; tfds.builder('mnist', data_dir='{data_dir}')"
    ".download_and_prepare()\"\n"
    "(or set $TFDS_DATA_DIR to a directory holding a prepared mnist/), or use source='idx' for the "
    "MNIST files shipped in data/mnist/."
)


class CorruptDataError(ValueError):
    """A data file whose content does not match its published checksum (or is not readable)."""


@dataclasses.dataclass(frozen=True)
class MNIST:
    """MNIST's training images and the images it is evaluated on, with where they came from.

    ``val_*`` are the 10,000 test images (the paper's "val" columns of Table 5).
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    source: str
    note: str

    def describe(self) -> str:
        """One line: source, sizes and how the split was made."""
        return f"{self.note} ({len(self.train_labels):,} train / {len(self.val_labels):,} test images)"


def mnist_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the shipped IDX files are: ``data_dir``, else ``$QATLIB_MNIST_DIR``, else ``<repo>/data/mnist``."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("QATLIB_MNIST_DIR"):
        return Path(os.environ["QATLIB_MNIST_DIR"]).expanduser()
    return Path(__file__).resolve().parents[3] / "data" / "mnist"


def read_idx(path: str | os.PathLike[str], size: int, md5: str) -> np.ndarray:
    """The array in a gzip-compressed IDX file, after checking its decompressed bytes' size and MD5.

    Raises :class:`FileNotFoundError` when the file is missing and :class:`CorruptDataError` when
    it cannot be decompressed, has the wrong size or MD5, or its IDX header does not fit its bytes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MNIST file {path} is missing (expected the original IDX file, gzip-compressed)")
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError, zlib.error) as error:
        raise CorruptDataError(f"MNIST file {path} is corrupt: it does not decompress ({error})") from None
    if len(raw) != size:
        raise CorruptDataError(
            f"MNIST file {path} is corrupt: {len(raw):,} bytes after decompression, expected {size:,}"
        )
    digest = hashlib.md5(raw).hexdigest()
    if digest != md5:
        raise CorruptDataError(
            f"MNIST file {path} is corrupt: the MD5 of its decompressed bytes is {digest}, "
            f"expected the published {md5}"
        )
    # IDX: two zero bytes, a type code (0x08 = uint8), the number of dimensions, then big-endian
    # int32 sizes and the data.
    if raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise CorruptDataError(f"MNIST file {path} is corrupt: not an unsigned-byte IDX file")
    ndim = raw[3]
    shape = tuple(int(v) for v in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if int(np.prod(shape)) != len(raw) - offset:
        raise CorruptDataError(f"MNIST file {path} is corrupt: its IDX header says {shape}")
    return np.frombuffer(raw, np.uint8, offset=offset).reshape(shape)


@functools.cache
def _idx_arrays(directory: Path) -> dict[str, np.ndarray]:
    arrays = {role: read_idx(directory / name, size, md5) for role, (name, size, md5) in MNIST_FILES.items()}
    for kind in ("train", "test"):
        if len(arrays[f"{kind}_images"]) != len(arrays[f"{kind}_labels"]):
            raise CorruptDataError(f"MNIST {kind} images and labels differ in number in {directory}")
    return arrays


def mnist_pixels(data_dir: str | os.PathLike[str] | None = None) -> dict[str, np.ndarray]:
    """The verified IDX arrays as stored, read once: uint8 images (N, 28, 28) and uint8 labels under
    ``train_images``, ``train_labels``, ``test_images``, ``test_labels`` (read-only)."""
    return _idx_arrays(mnist_dir(data_dir).resolve())


def verify_mnist(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Check the shipped MNIST files (sizes and MD5s) and return their folder; raises on any problem."""
    mnist_pixels(data_dir)
    return mnist_dir(data_dir)


def _as_float(images: np.ndarray) -> np.ndarray:
    out = (images.astype(np.float32) / 255.0).reshape(-1, 28, 28, 1)
    out.setflags(write=False)
    return out


@functools.cache
def _load_idx(directory: Path) -> MNIST:
    arrays = _idx_arrays(directory)
    note = "full MNIST from the shipped IDX files (MD5-verified): 60,000 training images; the 10,000 test images for evaluation"
    return MNIST(
        _as_float(arrays["train_images"]),
        arrays["train_labels"].astype(np.int32),
        _as_float(arrays["test_images"]),
        arrays["test_labels"].astype(np.int32),
        "idx",
        note,
    )


def tfds_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The tfds data directory: ``data_dir``, else ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``."""
    if data_dir:
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
    note = f"tfds MNIST from {root}: 60,000 training images; the 10,000 test images for evaluation"
    return MNIST(*arrays["train"], *arrays["test"], "tfds", note)


def load_mnist(source: str = "idx", *, data_dir: str | os.PathLike[str] | None = None) -> MNIST:
    """Full MNIST from ``source`` (``"idx"``: the shipped, MD5-verified files; ``"tfds"``), never downloading.

    ``data_dir`` is the folder of the IDX files (``"idx"``) or the tfds data directory (``"tfds"``).
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if source == "tfds":
        return _load_tfds(data_dir)
    return _load_idx(mnist_dir(data_dir).resolve())  # converted once per folder; the arrays are read-only


def batch_stream(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    seed: int,
    start_step: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
    """An endless, deterministic stream of training batches, from batch ``start_step`` on.

    Indices come from successive permutations (``default_rng(seed)``, one per epoch) read as one
    continuous sequence, so every image is seen once per epoch and no image is dropped. (With 600
    images per batch, each of the 100 batches of an epoch of 60,000 comes from that epoch's own
    permutation, as in the authors' code.) ``start_step`` skips the first batches without building
    them, so a resumed run sees exactly the batches an uninterrupted one would.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if start_step < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step}")
    if len(images) != len(labels) or len(labels) == 0:
        raise ValueError(f"need as many labels as images (>0), got {len(images)} and {len(labels)}")
    rng = np.random.default_rng(seed)
    buffer = np.empty(0, dtype=np.int64)
    step = 0
    while True:
        while len(buffer) < batch_size:
            buffer = np.concatenate([buffer, rng.permutation(len(labels))])
        index, buffer = buffer[:batch_size], buffer[batch_size:]
        if step >= start_step:
            yield {"image": images[index], "label": labels[index]}
        step += 1


def eval_batches(images: np.ndarray, labels: np.ndarray, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """The images once, in order, in batches of ``batch_size`` (the last may be smaller).

    >>> [len(b["label"]) for b in eval_batches(np.zeros((5, 1)), np.zeros(5, np.int32), 2)]
    [2, 2, 1]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(labels), batch_size):
        yield {"image": images[start : start + batch_size], "label": labels[start : start + batch_size]}


def mnist_sample(n_examples: int = 5000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n_examples`` of the 60,000 training images of the shipped full MNIST, shuffled, flattened.

    The images are the first ``n_examples`` of ``np.random.default_rng(seed).permutation(60000)``,
    as float64 pixel / 255 in [0, 1] of shape (n, 784), with int32 labels (the softmax-regression
    problem of the Intuition and Theorems chapters).

    >>> x, y = mnist_sample(100)
    >>> x.shape, y.shape, x.dtype
    ((100, 784), (100,), dtype('float64'))
    """
    if isinstance(n_examples, bool) or not isinstance(n_examples, (int, np.integer)) or not (
        1 <= n_examples <= MNIST_TRAIN_SIZE
    ):
        raise ValueError(
            f"n_examples must be an integer in [1, {MNIST_TRAIN_SIZE}] (the shipped full MNIST has "
            f"{MNIST_TRAIN_SIZE:,} training images), got {n_examples!r}"
        )
    pixels = mnist_pixels()
    order = np.random.default_rng(seed).permutation(len(pixels["train_labels"]))[:n_examples]
    x = pixels["train_images"][order].reshape(n_examples, -1).astype(np.float64) / 255.0  # pixel / 255 in float64
    return x, pixels["train_labels"][order].astype(np.int32)
