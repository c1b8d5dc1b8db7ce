"""What a command hands back to be shown: a bulk copy's figures (`RunResult`) and a
validation's counts and examples (`ValidationResult`).

Plain data in a module of their own, beside the report that shows them: the command that
makes one (`bulk`, `validate`), the one that reads a validation's (`repair`) and `report`
all import it from here, so none of them imports another command to know its shape.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from transforms.compare import KINDS
from transforms.metrics import Figure


@dataclass
class TableResult:
    table: str
    target: str
    segments: int
    figures: dict[Figure, int | None]  # None: the runner did not count it
    duration_seconds: float


@dataclass
class RunResult:
    tables: list[TableResult]
    duration_seconds: float
    dead_letters: dict[str, int]
    dead_letter_dir: str

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead_letters.values())


@dataclass
class TableValidation:
    counts: dict[str, int | None]
    examples: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def differences(self) -> int:
        return sum(self.counts[kind] for kind in KINDS)


@dataclass
class ValidationResult:
    tables: dict[str, TableValidation]
    sample_rate: float | None
    findings_dir: str
    duration_seconds: float

    @property
    def equal(self) -> bool:
        return all(t.differences == 0 for t in self.tables.values())
