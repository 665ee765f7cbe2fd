"""What every rank needs to know about a fit: pickled once on the driver, shipped to each rank."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from occam.data.dataset import Dataset
from occam.training.events import EventAddress


@dataclass(frozen=True)
class TrainingJob:
    model_fn: Callable[[], Any]
    train: Dataset
    validation: Dataset | None
    epochs: int
    batch_size: int
    scale_lr: bool
    checkpoint_dir: str
    resume: bool
    events: EventAddress
    reader_workers: int = 2
    shuffle_buffer: int = 1024
    #: Keras callbacks (a list, or a function that returns one), run in every rank (see rank.user_callbacks).
    callbacks: Any = None
    class_weight: dict[int, float] | None = None
    shuffle: bool = True
    #: Overrides of the batches each rank runs per epoch / per validation (None: the dataset's size says).
    steps: int | None = None
    val_steps: int | None = None
    #: Whether ranks report throughput and resources for the dashboard (fit's ``progress``).
    monitor: bool = True
    #: Batches/allreduces each rank times after training for :func:`occam.scaling` (0: no profile).
    profile_steps: int = 0

    def steps_per_epoch(self, size: int) -> int:
        """Batches each rank runs per epoch, so that together the ranks see the training set once."""
        if self.steps is not None:
            return self.steps
        return max(1, len(self.train) // (self.batch_size * size))

    def validation_steps(self, size: int) -> int | None:
        if self.validation is None:
            return None
        if self.val_steps is not None:
            return self.val_steps
        return max(1, len(self.validation) // (self.batch_size * size))
