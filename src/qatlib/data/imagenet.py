"""Input pipelines for the ResNet50 chapter: ImageNet via tfds, or a small real stand-in on CPU.

Both sources hand the training loop the same thing -- dicts ``{"image": float32 [B, H, W, 3],
"label": int32 [B]}`` normalised with the Flax ImageNet example's per-channel ``MEAN_RGB`` /
``STDDEV_RGB`` (0-255 scale) -- so the model, trainer, sharding and checkpoints run one code path:

- ``"imagenet2012"``: tensorflow-datasets ``imagenet2012`` with the Flax ImageNet example's
  preprocessing (random-resized crop + flip for training, 224/256 centre crop for evaluation,
  bicubic resize). TensorFlow is an optional extra (``pip install qatlib[imagenet]``) imported only
  here, and the data must already be prepared in ``data_dir``: nothing is ever downloaded.
- ``"mnist32"`` (the CPU default): **full MNIST, not ImageNet** -- the 60,000 training images
  for training and the 10,000 test images for evaluation, read by :func:`qatlib.data.load_mnist`
  from the shipped, MD5-verified IDX files, zero-padded from 28x28 to 32x32 and repeated to three
  channels. Ten classes of centred grey digits at 32x32 instead of 1,000 classes of photographs at
  224x224. No augmentation (a flipped digit is another symbol). Only the 28x28 uint8 pixels are
  kept in memory (55 MB); padding, channel repeat and normalisation are applied to each batch as
  it is built (all 60,000 images as normalised float32 32x32x3 would take 737 MB).

Training batches are a pure function of ``(seed, step)``, so a run resumed from a checkpoint sees
exactly the batches it would have seen.

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

    def train_iterator(self, batch_size: int, start_step: int = 0) -> Iterator[Batch]: ...

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

    def train_iterator(self, batch_size: int, start_step: int = 0) -> Iterator[Batch]:
        step = start_step
        while True:
            yield self.train_batch(step, batch_size)
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

    Deterministic: the shuffle has a fixed seed and ``tf.data`` runs with ``deterministic=True``;
    resuming at ``start_step`` skips that many batches of the same stream.
    """

    data_dir: str | None = None
    seed: int = 0
    image_size: int = IMAGENET_IMAGE_SIZE
    shuffle_buffer_size: int = 2_000
    name: str = "imagenet2012"
    num_classes: int = 1000

    def _builder(self) -> Any:
        _, tfds = _tf_modules()
        builder = tfds.builder("imagenet2012", data_dir=self.data_dir)
        try:
            prepared = builder.is_prepared() if hasattr(builder, "is_prepared") else bool(builder.info.splits)
            if not prepared:
                raise KeyError("imagenet2012")
        except Exception as error:  # pragma: no cover
            raise FileNotFoundError(
                f"imagenet2012 is not prepared in data_dir={self.data_dir!r}; prepare it with tfds "
                "(manual download of the ILSVRC2012 tars) -- this library never downloads data"
            ) from error
        return builder

    @property
    def train_size(self) -> int:  # pragma: no cover - needs the data
        return int(self._builder().info.splits["train"].num_examples)

    @property
    def eval_size(self) -> int:  # pragma: no cover - needs the data
        return int(self._builder().info.splits["validation"].num_examples)

    def steps_per_epoch(self, batch_size: int) -> int:  # pragma: no cover - needs the data
        return self.train_size // batch_size

    def _dataset(self, batch_size: int, train: bool) -> Any:  # pragma: no cover - needs the data
        tf, tfds = _tf_modules()
        preprocess = _imagenet_preprocessing(tf)
        builder = self._builder()
        split = "train" if train else "validation"

        def decode(example: Any) -> dict[str, Any]:
            image = (preprocess.train if train else preprocess.eval)(example["image"], self.image_size)
            return {"image": image, "label": example["label"]}

        ds = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
        options = tf.data.Options()
        options.deterministic = True
        ds = ds.with_options(options)
        if train:
            ds = ds.repeat().shuffle(self.shuffle_buffer_size, seed=self.seed)
        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(batch_size, drop_remainder=train)
        return ds.prefetch(10)

    def train_iterator(self, batch_size: int, start_step: int = 0) -> Iterator[Batch]:  # pragma: no cover
        ds = self._dataset(batch_size, train=True).skip(start_step)
        for batch in ds.as_numpy_iterator():
            yield {"image": batch["image"], "label": batch["label"].astype(np.int32)}

    def eval_iterator(self, batch_size: int) -> Iterator[Batch]:  # pragma: no cover
        for batch in self._dataset(batch_size, train=False).as_numpy_iterator():
            yield {"image": batch["image"], "label": batch["label"].astype(np.int32)}


@dataclasses.dataclass(frozen=True)
class _Preprocessing:
    train: Any
    eval: Any


def _imagenet_preprocessing(tf: Any) -> _Preprocessing:  # pragma: no cover - needs tensorflow
    """The Flax ImageNet example's ``preprocess_for_train`` / ``preprocess_for_eval``, with ``tf`` injected."""

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

    def random_crop(image_bytes: Any, image_size: int) -> Any:
        shape = tf.io.extract_jpeg_shape(image_bytes)
        bbox = tf.constant([0.0, 0.0, 1.0, 1.0], dtype=tf.float32, shape=[1, 1, 4])
        begin, size, _ = tf.image.sample_distorted_bounding_box(
            shape,
            bounding_boxes=bbox,
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

    def train(image_bytes: Any, image_size: int) -> Any:
        image = tf.reshape(random_crop(image_bytes, image_size), [image_size, image_size, 3])
        image = tf.image.random_flip_left_right(image)
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
