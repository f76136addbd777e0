"""Training data for the recognizers: the BatchSource protocol, in-memory arrays, CASIA-WebFace-style folders.

A BatchSource yields (images (B, S, S, 3) float32 RGB in [0, 1], labels (B,) int32) for training steps
start_step, start_step + 1, ... and the batch of a step depends only on (seed, step), so a resumed run sees exactly
the data it would have seen without the interruption. The simulator-backed source of synthetic identities
(synthetic.SyntheticSource) implements the same two members.

Folder sources order their samples by a fresh permutation per epoch, drawn from numpy's default_rng((seed, epoch));
the incomplete last batch of an epoch is dropped.
"""
from __future__ import annotations

import csv
import dataclasses
import operator
import os
import re
from typing import Iterator, Protocol, Sequence

import numpy as np

Batch = tuple[np.ndarray, np.ndarray]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
_OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_FILTER = re.compile(r"^\s*([A-Za-z_]\w*)\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


class BatchSource(Protocol):
    """Training data: identities 0 .. num_classes - 1 and a deterministic stream of batches."""

    num_classes: int

    def batches(self, batch_size: int, seed: int, start_step: int) -> Iterator[Batch]:
        """Batches of steps start_step, start_step + 1, ...:
        images (B, S, S, 3) float32 in [0, 1], labels (B,) int32."""
        ...


def step_indices(num_samples: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """(batch_size,) sample indices of training step `step` (epoch-wise permutations, last partial batch dropped)."""
    per_epoch = num_samples // batch_size
    if per_epoch == 0:
        raise ValueError(f"batch_size {batch_size} is larger than the dataset ({num_samples} samples)")
    epoch, offset = divmod(step, per_epoch)
    order = np.random.default_rng((seed, epoch)).permutation(num_samples)
    return order[offset * batch_size : (offset + 1) * batch_size]


@dataclasses.dataclass(frozen=True)
class ArraySource:
    """In-memory samples: images (N, S, S, 3) float32 in [0, 1], labels (N,) int in [0, num_classes)."""

    images: np.ndarray
    labels: np.ndarray
    num_classes: int

    def batches(self, batch_size: int, seed: int, start_step: int) -> Iterator[Batch]:
        step = start_step
        while True:
            index = step_indices(len(self.labels), batch_size, seed, step)
            yield self.images[index].astype(np.float32), self.labels[index].astype(np.int32)
            step += 1


@dataclasses.dataclass(frozen=True)
class AttributeFilter:
    """Keeps a sample iff `attribute op value` holds, e.g. AttributeFilter("yaw", ">=", -0.5)."""

    attribute: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> "AttributeFilter":
        """Parses "NAME OP VALUE" with OP one of < <= > >=, e.g. "yaw>-0.5"."""
        match = _FILTER.match(text)
        if not match:
            raise ValueError(f"--filters: cannot parse {text!r}; expected NAME OP NUMBER with OP one of < <= > >=")
        return cls(match.group(1), match.group(2), float(match.group(3)))

    def keep(self, values: np.ndarray) -> np.ndarray:
        """(N,) float attribute values -> (N,) bool."""
        return _OPERATORS[self.op](values, self.value)


def read_attributes(path: str) -> tuple[list[str], dict[str, np.ndarray]]:
    """Reads a per-image attribute CSV: a header with a "path" column (relative to the dataset root, e.g.
    "0000045/001.jpg") and numeric columns (e.g. "yaw"). Returns (paths, {column: (N,) float64})."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise ValueError(f"--attributes_csv: cannot read {path}: {e}") from e
    if not rows or "path" not in rows[0]:
        raise ValueError(f"--attributes_csv: {path} needs a header row with a 'path' column")
    header = rows[0]
    path_column = header.index("path")
    paths = []
    values = {name: [] for i, name in enumerate(header) if i != path_column}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"--attributes_csv: {path}:{line}: {len(row)} fields, header has {len(header)}")
        paths.append(os.path.normpath(row[path_column]))
        for i, name in enumerate(header):
            if i == path_column:
                continue
            try:
                values[name].append(float(row[i]))
            except ValueError:
                raise ValueError(f"--attributes_csv: {path}:{line}: column {name!r} is not a number: {row[i]!r}")
    return paths, {name: np.asarray(v, np.float64) for name, v in values.items()}


def load_image(path: str, size: int) -> np.ndarray:
    """Reads an image file -> (size, size, 3) float32 RGB in [0, 1], resized (bilinear) if it is another size."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.BILINEAR)
            return np.asarray(image, np.float32) / 255.0
    except OSError as e:
        raise ValueError(f"cannot read image {path}: {e}") from e


class ImageFolder:
    """Aligned face crops in CASIA-WebFace layout ROOT/<identity>/<image>; identities in sorted order are the labels.

    Args:
      root: dataset root.
      image_size: side S of the square training images; other sizes are resized on load.
      attributes_csv: optional per-image attributes (see read_attributes); every image needs a row.
      filters: keep only images passing all of them (requires attributes_csv); identities left with no image are
        dropped and the labels renumbered.
    """

    def __init__(self, root: str, image_size: int, attributes_csv: str = "", filters: Sequence[AttributeFilter] = ()):
        if not os.path.isdir(root):
            raise ValueError(f"--data: dataset directory {root} does not exist")
        paths, identities = [], []
        for identity in sorted(os.listdir(root)):
            folder = os.path.join(root, identity)
            if not os.path.isdir(folder):
                continue
            for file in sorted(os.listdir(folder)):
                if file.lower().endswith(IMAGE_EXTENSIONS):
                    paths.append(os.path.join(identity, file))
                    identities.append(identity)
        if not paths:
            raise ValueError(f"--data: no images in {root} (expected ROOT/<identity>/<image>{IMAGE_EXTENSIONS})")
        keep = np.ones(len(paths), bool)
        if filters and not attributes_csv:
            raise ValueError("--filters needs --attributes_csv")
        if attributes_csv:
            csv_paths, columns = read_attributes(attributes_csv)
            row_of = {p: i for i, p in enumerate(csv_paths)}
            missing = [p for p in paths if os.path.normpath(p) not in row_of]
            if missing:
                raise ValueError(
                    f"--attributes_csv: {attributes_csv} has no row for {len(missing)} image(s) of {root},"
                    f" e.g. {missing[0]}"
                )
            rows = np.asarray([row_of[os.path.normpath(p)] for p in paths])
            for rule in filters:
                if rule.attribute not in columns:
                    raise ValueError(
                        f"--filters: {attributes_csv} has no column {rule.attribute!r}; columns: {sorted(columns)}"
                    )
                keep &= rule.keep(columns[rule.attribute][rows])
        if not keep.any():
            rules = [f"{r.attribute}{r.op}{r.value}" for r in filters]
            raise ValueError(f"--filters: no image of {root} passes {rules}")
        self.root = root
        self.image_size = image_size
        self.paths = [p for p, k in zip(paths, keep) if k]
        kept_identities = [i for i, k in zip(identities, keep) if k]
        self.class_names = sorted(set(kept_identities))
        label_of = {name: i for i, name in enumerate(self.class_names)}
        self.labels = np.asarray([label_of[i] for i in kept_identities], np.int32)
        self.num_classes = len(self.class_names)

    def __len__(self) -> int:
        return len(self.paths)

    def batches(self, batch_size: int, seed: int, start_step: int) -> Iterator[Batch]:
        step = start_step
        while True:
            index = step_indices(len(self.paths), batch_size, seed, step)
            images = np.stack([load_image(os.path.join(self.root, self.paths[i]), self.image_size) for i in index])
            yield images, self.labels[index]
            step += 1
