"""The label set (from config, never hard-coded) and multi-hot encoding."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of topic ids; the order fixes the columns of every score matrix."""

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("the label set is empty: list the topics under data.labels")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"the label set repeats a topic: {list(self.names)}")
        for name in self.names:
            if not name or "|" in name or name != name.strip():
                raise ValueError(f"bad topic id {name!r}: ids are non-empty, without '|' or edge spaces")

    @classmethod
    def of(cls, names: Iterable[str]) -> LabelSet:
        return cls(tuple(str(n) for n in names))

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def index(self, name: str) -> int:
        return self.names.index(name)

    def encode(self, labels: Iterable[str]) -> np.ndarray:
        vector = np.zeros(len(self.names), dtype=np.float32)
        for label in labels:
            vector[self.index(label)] = 1.0
        return vector

    def encode_many(self, label_lists: Sequence[Iterable[str]]) -> np.ndarray:
        if not label_lists:
            return np.zeros((0, len(self.names)), dtype=np.float32)
        return np.stack([self.encode(labels) for labels in label_lists])

    def decode(self, vector: Sequence[float] | np.ndarray) -> tuple[str, ...]:
        return tuple(name for name, on in zip(self.names, vector) if on)
