"""Input pipelines for the ResNet50 chapter: ImageNet via tfds, or a small real stand-in on CPU.

Both sources hand the training loop the same thing -- dicts ``{"image": float32 [B, H, W, 3],
"label": int32 [B]}`` normalised with the Flax ImageNet example's per-channel ``MEAN_RGB`` /
``STDDEV_RGB`` (0-255 scale) -- so the model, trainer, sharding and checkpoints run one code path:

- ``"imagenet2012"``: tensorflow-datasets ``imagenet2012`` with the Flax ImageNet example's
  preprocessing (random-resized crop + flip for training, 224/256 centre crop for evaluation,
  bicubic resize). TensorFlow is an optional extra (``pip install qatlib[imagenet]``) imported only
  here, and the data must already be prepared in ``data_dir``: nothing is ever downloaded. Its
  tests run on ``tfds.testing.mock_data`` (``tests/data/test_imagenet_mock.py``).
- ``"mnist32"`` (the CPU default): **full MNIST, not ImageNet** -- the 60,000 training images
  for training and the 10,000 test images for evaluation, read by :func:`qatlib.data.load_mnist`
  from the shipped, MD5-verified IDX files, zero-padded from 28x28 to 32x32 and repeated to three
  channels. Ten classes of centred grey digits at 32x32 instead of 1,000 classes of photographs at
  224x224. No augmentation (a flipped digit is another symbol). Only the 28x28 uint8 pixels are
  kept in memory (55 MB); padding, channel repeat and normalisation are applied to each batch as
  it is built (all 60,000 images as normalised float32 32x32x3 would take 737 MB).

Training batches are a pure function of ``(seed, step)``, so a run resumed from a checkpoint sees
exactly the batches it would have seen; and either source builds any rows ``start:stop`` of a batch
alone (``rows=``), so each process of a multi-process run reads only its share of the same batches.

>>> data = load("mnist32")
>>> batch = data.train_batch(step=0, batch_size=8)
>>> batch["image"].shape, batch["image"].dtype.name, batch["label"].shape
((8, 32, 32, 3), 'float32', (8,))
>>> data.num_classes, data.train_size, data.eval_size
(10, 60000, 10000)
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from qatlib.data.mnist import MNIST_TEST_SIZE, MNIST_TRAIN_SIZE, mnist_pixels

__all__ = [
    "MEAN_RGB",
    "STDDEV_RGB",
    "ImageData",
    "MNIST32",
    "TFDSImageNet",
    "load",
    "mnist_to_rgb32",
    "normalize_image",
]

# The Flax ImageNet example's normalisation constants (input_pipeline.py), 0-255 scale.
MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)

Batch = dict[str, np.ndarray]


class ImageData(Protocol):
    """What the ResNet trainer needs from a data source."""

    name: str
    num_classes: int
    image_size: int

    def train_iterator(self, batch_size: int, start_step: int = 0, rows: tuple[int, int] | None = None) -> Iterator[Batch]: ...

    def eval_iterator(self, batch_size: int) -> Iterator[Batch]: ...


def normalize_image(image: np.ndarray) -> np.ndarray:
    """``(image - MEAN_RGB) / STDDEV_RGB`` per channel, as float32 (the Flax example's ``normalize_image``).

    >>> [round(float(v), 3) for v in normalize_image(np.full((1, 1, 3), 255.0))[0, 0]]
    [2.249, 2.429, 2.64]
    """
    image = np.asarray(image, dtype=np.float32)
    if image.shape[-1] != 3:
        raise ValueError(f"expected a trailing RGB axis of size 3, got shape {image.shape}")
    return (image - np.asarray(MEAN_RGB, np.float32)) / np.asarray(STDDEV_RGB, np.float32)


def mnist_to_rgb32(images: np.ndarray) -> np.ndarray:
    """28x28 grey digits (``[N, 784]``, ``[N, 28, 28]`` or ``[N, 28, 28, 1]``) -> uint8 ``[N, 32, 32, 3]``.

    Zero-padding by 2 pixels on each side keeps the digit centred and at its native scale.

    >>> mnist_to_rgb32(np.full((2, 784), 255.0)).shape
    (2, 32, 32, 3)
    """
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim == 2 and images.shape[1] == 784:
        images = images.reshape(-1, 28, 28)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"expected MNIST images of shape [N, 784] or [N, 28, 28], got {images.shape}")
    if images.min() < 0 or images.max() > 255:
        raise ValueError("expected pixel values in [0, 255]")
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    return np.repeat(padded[..., None], 3, axis=-1).astype(np.uint8)


@functools.cache
def _mnist_pixels() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Full MNIST as uint8 ``[N, 28, 28]`` pixels and int32 labels: train images, labels, test images,
    labels (the shipped IDX files, MD5-verified: :func:`qatlib.data.mnist_pixels`)."""
    pixels = mnist_pixels()
    arrays = (
        pixels["train_images"],
        pixels["train_labels"].astype(np.int32),
        pixels["test_images"],
        pixels["test_labels"].astype(np.int32),
    )
    sizes = tuple(len(array) for array in arrays)
    if sizes != (MNIST_TRAIN_SIZE,) * 2 + (MNIST_TEST_SIZE,) * 2:
        raise ValueError(f"expected 60,000 training and 10,000 test MNIST images and labels, got {sizes}")
    for array in arrays[1::2]:
        array.setflags(write=False)
    return arrays


def _model_input(pixels: np.ndarray, labels: np.ndarray) -> Batch:
    """uint8 ``[B, 28, 28]`` digits -> the model's batch: padded to 32x32x3 and normalised, float32."""
    return {"image": normalize_image(mnist_to_rgb32(pixels)), "label": np.array(labels, np.int32)}


@dataclasses.dataclass(frozen=True)
class MNIST32:
    """Full MNIST as 32x32x3 images: the first ``train_size`` of the 60,000 training images, the 10,000 test images.

    Not ImageNet: MNIST digits zero-padded to 32x32, repeated to three channels and normalised
    with the Flax ImageNet example's constants, built batch by batch from the 28x28 pixels (the
    same values as padding and normalising everything up front). Each training epoch is a fresh
    permutation of the ``train_size`` training images drawn from ``default_rng((seed, epoch))``;
    the last partial batch of an epoch is dropped, as in the Flax example. Evaluation uses the
    10,000 test images (the paper's "val"), in their file order.
    """

    seed: int = 0
    train_size: int = MNIST_TRAIN_SIZE
    name: str = "mnist32"
    num_classes: int = 10
    image_size: int = 32

    def __post_init__(self) -> None:
        size = self.train_size
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 0 < size <= MNIST_TRAIN_SIZE:
            raise ValueError(
                f"train_size must be an int with 0 < train_size <= {MNIST_TRAIN_SIZE} (the MNIST training "
                f"images used, from the first), got {size!r}"
            )

    @property
    def eval_size(self) -> int:
        return MNIST_TEST_SIZE

    def steps_per_epoch(self, batch_size: int) -> int:
        _check_batch_size(batch_size, self.train_size)
        return self.train_size // batch_size

    def train_batch(self, step: int, batch_size: int, rows: tuple[int, int] | None = None) -> Batch:
        """The batch of training step ``step`` (a pure function of ``seed``, ``step``, ``batch_size``),
        or only its rows ``start:stop`` (one process's share of a global batch: the same rows of the
        same batch, built alone)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        per_epoch = self.steps_per_epoch(batch_size)
        start, stop = _check_rows(rows, batch_size)
        epoch, within = divmod(step, per_epoch)
        order = np.random.default_rng((self.seed, epoch)).permutation(self.train_size)
        index = order[within * batch_size : (within + 1) * batch_size][start:stop]
        images, labels, _, _ = _mnist_pixels()
        return _model_input(images[index], labels[index])

    def train_iterator(self, batch_size: int, start_step: int = 0, rows: tuple[int, int] | None = None) -> Iterator[Batch]:
        step = start_step
        while True:
            yield self.train_batch(step, batch_size, rows=rows)
            step += 1

    def eval_iterator(self, batch_size: int, limit: int | None = None) -> Iterator[Batch]:
        """The test images once, in file order (at most ``limit`` of them); the last batch may be smaller."""
        _check_batch_size(batch_size, self.eval_size)
        _, _, images, labels = _mnist_pixels()
        return _in_order(images, labels, self.eval_size if limit is None else min(limit, self.eval_size), batch_size)

    def train_eval_iterator(self, batch_size: int, limit: int | None = None) -> Iterator[Batch]:
        """Training images once, in file order (for train accuracy/loss); at most ``limit`` of them."""
        _check_batch_size(batch_size, self.train_size)
        images, labels, _, _ = _mnist_pixels()
        return _in_order(images, labels, self.train_size if limit is None else min(limit, self.train_size), batch_size)


def _in_order(images: np.ndarray, labels: np.ndarray, stop: int, batch_size: int) -> Iterator[Batch]:
    """The first ``stop`` digits once, in file order, as model batches (the last may be smaller)."""
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, stop)
        yield _model_input(images[start:end], labels[start:end])


def _check_rows(rows: tuple[int, int] | None, batch_size: int) -> tuple[int, int]:
    """``rows`` as ``(start, stop)`` (default: the whole batch); ValueError unless ``0 <= start < stop <= batch_size``."""
    if rows is None:
        return 0, batch_size
    start, stop = rows
    if not 0 <= start < stop <= batch_size:
        raise ValueError(f"rows must be (start, stop) with 0 <= start < stop <= batch_size ({batch_size}), got {rows!r}")
    return int(start), int(stop)


def _check_batch_size(batch_size: int, available: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if batch_size > available:
        raise ValueError(f"batch_size {batch_size} exceeds the {available} examples available")


# ----------------------------------------------------------------------------------------------
# ImageNet through tensorflow-datasets (optional extra; never downloads).

IMAGENET_IMAGE_SIZE = 224
CROP_PADDING = 32


def _tf_modules() -> tuple[Any, Any]:
    try:
        tf = importlib.import_module("tensorflow")
        tfds = importlib.import_module("tensorflow_datasets")
    except ImportError as error:  # pragma: no cover - depends on the optional extra
        raise ImportError(
            "the imagenet2012 pipeline needs the optional extra: pip install 'qatlib[imagenet]' "
            "(tensorflow-cpu, tensorflow-datasets), and imagenet2012 prepared in data_dir"
        ) from error
    return tf, tfds


@dataclasses.dataclass(frozen=True)
class TFDSImageNet:
    """``imagenet2012`` from a prepared tfds ``data_dir``, preprocessed as in the Flax ImageNet example.

    Training batches are the same whoever reads them. The training split is cut into
    ``read_shards`` even parts (``tfds.even_splits``, by read instructions: each part is its own
    files' range); part ``k`` supplies rows ``k*b .. (k+1)*b`` of every global batch
    (``b = batch_size / read_shards``), from its own stream: repeated, shuffled with seed
    ``(seed, k)``, and each example augmented (random-resized crop, flip) with stateless random ops
    seeded by ``(seed, k, its position in the stream)``. A process that reads rows ``start:stop``
    (:meth:`qatlib.training.parallel.DataParallel.local_rows`) opens only the parts those rows come
    from, so over P processes each reads ``1/P`` of the data, and the global batches are those of one
    process reading every part: the same for any P that divides ``read_shards``. Resuming at
    ``start_step`` skips that many batches of each part's stream before any image is decoded.
    ``tf.data`` runs with ``deterministic=True`` throughout.

    Evaluation reads a split once, in order, with the centre crop: every process reads all of it
    (the evaluator keeps its own rows of each batch).
    """

    data_dir: str | None = None
    seed: int = 0
    image_size: int = IMAGENET_IMAGE_SIZE
    shuffle_buffer_size: int = 2_000
    read_shards: int = 8
    name: str = "imagenet2012"
    num_classes: int = 1000
    train_split: str = "train"
    eval_split: str = "validation"

    def __post_init__(self) -> None:
        for field in ("read_shards", "shuffle_buffer_size", "image_size"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field} must be a positive int, got {value!r}")

    def _builder(self) -> Any:
        _, tfds = _tf_modules()
        builder = tfds.builder(self.name, data_dir=self.data_dir)
        if not builder.info.splits:
            raise FileNotFoundError(
                f"{self.name} is not prepared in data_dir={self.data_dir!r}; prepare it with tfds "
                "(manual download of the ILSVRC2012 tars, see the README) -- this library never downloads data"
            )
        return builder

    @property
    def train_size(self) -> int:
        return int(self._builder().info.splits[self.train_split].num_examples)

    @property
    def eval_size(self) -> int:
        return int(self._builder().info.splits[self.eval_split].num_examples)

    def steps_per_epoch(self, batch_size: int) -> int:
        return self.train_size // batch_size

    def rows_per_shard(self, batch_size: int) -> int:
        """Rows of each global batch that one read shard supplies; ValueError unless it divides."""
        if not isinstance(batch_size, int) or batch_size < 1 or batch_size % self.read_shards:
            raise ValueError(
                f"batch_size must be a positive multiple of read_shards ({self.read_shards}), got {batch_size!r}"
            )
        return batch_size // self.read_shards

    def train_iterator(self, batch_size: int, start_step: int = 0, rows: tuple[int, int] | None = None) -> Iterator[Batch]:
        """The global training batches from step ``start_step`` on, or only their rows ``start:stop``
        (which must start and end on a read shard's boundary)."""
        per_shard = self.rows_per_shard(batch_size)
        start, stop = _check_rows(rows, batch_size)
        if start % per_shard or stop % per_shard:
            raise ValueError(
                f"rows {rows!r} must fall on the boundaries of the {self.read_shards} read shards "
                f"({per_shard} rows each): give a process count that divides read_shards"
            )
        if isinstance(start_step, bool) or not isinstance(start_step, int) or start_step < 0:
            raise ValueError(f"start_step must be an int >= 0, got {start_step!r}")
        shards = [self._train_shard(k, per_shard, start_step) for k in range(start // per_shard, stop // per_shard)]
        for parts in zip(*(shard.as_numpy_iterator() for shard in shards)):
            yield _as_batch(np.concatenate([part["image"] for part in parts]), np.concatenate([part["label"] for part in parts]))

    def _read(self, split: str) -> Any:
        tf, tfds = _tf_modules()
        ds = self._builder().as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()}, shuffle_files=False)
        options = tf.data.Options()
        options.deterministic = True
        return ds.with_options(options)

    def _train_shard(self, shard: int, per_shard: int, start_step: int) -> Any:
        """Read shard ``shard``'s batches of ``per_shard`` rows from step ``start_step`` on."""
        tf, tfds = _tf_modules()
        preprocess = _imagenet_preprocessing(tf)
        ds = self._read(tfds.even_splits(self.train_split, n=self.read_shards)[shard])
        ds = ds.repeat().shuffle(self.shuffle_buffer_size, seed=self.seed * self.read_shards + shard)
        ds = ds.enumerate().skip(start_step * per_shard)  # before decoding: a resume decodes nothing it skips
        stream_seed = tf.constant([self.seed, shard], tf.int64)

        def decode(position: Any, example: Any) -> dict[str, Any]:
            seed = tf.random.experimental.stateless_fold_in(stream_seed, position)
            return {"image": preprocess.train(example["image"], self.image_size, seed), "label": example["label"]}

        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.batch(per_shard, drop_remainder=True).prefetch(2)

    def _in_order(self, split: str, batch_size: int, limit: int | None) -> Iterator[Batch]:
        _check_batch_size(batch_size, batch_size)
        tf, _ = _tf_modules()
        preprocess = _imagenet_preprocessing(tf)
        ds = self._read(split if limit is None else f"{split}[:{int(limit)}]")
        ds = ds.map(lambda example: {"image": preprocess.eval(example["image"], self.image_size), "label": example["label"]},
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        for batch in ds.batch(batch_size).prefetch(2).as_numpy_iterator():
            yield _as_batch(batch["image"], batch["label"])

    def eval_iterator(self, batch_size: int, limit: int | None = None) -> Iterator[Batch]:
        """The evaluation split once, in order, centre-cropped (at most ``limit`` images); the last batch may be smaller."""
        return self._in_order(self.eval_split, batch_size, limit)

    def train_eval_iterator(self, batch_size: int, limit: int | None = None) -> Iterator[Batch]:
        """The first ``limit`` training images (all without it) once, in order, centre-cropped (Table 5's train accuracy)."""
        return self._in_order(self.train_split, batch_size, limit)


def _as_batch(images: np.ndarray, labels: np.ndarray) -> Batch:
    return {"image": np.asarray(images, np.float32), "label": np.asarray(labels).astype(np.int32)}


@dataclasses.dataclass(frozen=True)
class _Preprocessing:
    train: Any
    eval: Any


def _imagenet_preprocessing(tf: Any) -> _Preprocessing:
    """The Flax ImageNet example's ``preprocess_for_train`` / ``preprocess_for_eval``, with ``tf``
    injected; the training crop and flip use stateless random ops under a given ``seed`` (shape
    ``[2]``), so an example's augmentation is a function of that seed alone."""

    def resize(image: Any, image_size: int) -> Any:
        return tf.image.resize([image], [image_size, image_size], method=tf.image.ResizeMethod.BICUBIC)[0]

    def center_crop(image_bytes: Any, image_size: int) -> Any:
        shape = tf.io.extract_jpeg_shape(image_bytes)
        height, width = shape[0], shape[1]
        crop = tf.cast(
            (image_size / (image_size + CROP_PADDING)) * tf.cast(tf.minimum(height, width), tf.float32), tf.int32
        )
        window = tf.stack([((height - crop) + 1) // 2, ((width - crop) + 1) // 2, crop, crop])
        return resize(tf.io.decode_and_crop_jpeg(image_bytes, window, channels=3), image_size)

    def random_crop(image_bytes: Any, image_size: int, seed: Any) -> Any:
        shape = tf.io.extract_jpeg_shape(image_bytes)
        bbox = tf.constant([0.0, 0.0, 1.0, 1.0], dtype=tf.float32, shape=[1, 1, 4])
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            shape,
            bounding_boxes=bbox,
            seed=seed,
            min_object_covered=0.1,
            aspect_ratio_range=(3.0 / 4, 4.0 / 3.0),
            area_range=(0.08, 1.0),
            max_attempts=10,
            use_image_if_no_bounding_boxes=True,
        )
        offset_y, offset_x, _ = tf.unstack(begin)
        target_h, target_w, _ = tf.unstack(size)
        image = tf.io.decode_and_crop_jpeg(
            image_bytes, tf.stack([offset_y, offset_x, target_h, target_w]), channels=3
        )
        bad = tf.greater_equal(tf.reduce_sum(tf.cast(tf.equal(shape, tf.shape(image)), tf.int32)), 3)
        return tf.cond(bad, lambda: center_crop(image_bytes, image_size), lambda: resize(image, image_size))

    def normalize(image: Any) -> Any:
        image -= tf.constant(MEAN_RGB, shape=[1, 1, 3], dtype=image.dtype)
        return image / tf.constant(STDDEV_RGB, shape=[1, 1, 3], dtype=image.dtype)

    def train(image_bytes: Any, image_size: int, seed: Any) -> Any:
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        image = tf.reshape(random_crop(image_bytes, image_size, crop_seed), [image_size, image_size, 3])
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
        return tf.cast(normalize(image), tf.float32)

    def evaluate(image_bytes: Any, image_size: int) -> Any:
        image = tf.reshape(center_crop(image_bytes, image_size), [image_size, image_size, 3])
        return tf.cast(normalize(image), tf.float32)

    return _Preprocessing(train=train, eval=evaluate)


def load(name: str, **kwargs: Any) -> MNIST32 | TFDSImageNet:
    """A data source by name: ``"mnist32"`` (CPU default) or ``"imagenet2012"`` (needs the extra + data)."""
    if name == "mnist32":
        return MNIST32(**kwargs)
    if name == "imagenet2012":
        _tf_modules()  # fail now, with the install hint, rather than at the first batch
        return TFDSImageNet(**kwargs)
    raise ValueError(f"unknown dataset {name!r}; choose 'mnist32' or 'imagenet2012'")
