"""What a check finds: a problem (what is wrong and what to do) and an asset (a file or
folder that was looked at). Preflight collects them; metric plug-ins return them from
their own checks, which is why they live below both."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class Problem:
    area: str      # config | device | weights | metric | prompts | dataset | disk | manifest
    what: str      # what is wrong
    fix: str       # what to do

    def line(self) -> str:
        return f"[{self.area}] {self.what} Fix: {self.fix}"


@dataclass
class AssetCheck:
    area: str
    name: str
    ref: str
    status: str                      # ok | missing | corrupt | error
    location: Optional[str] = None
    size: Optional[int] = None
    sha256: Optional[str] = None
    detail: str = ""


@dataclass
class Checked:
    """Everything one check found: assets looked at, problems (each with its fix), notes."""
    assets: List[AssetCheck] = field(default_factory=list)
    problems: List[Problem] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def extend(self, other: "Checked") -> "Checked":
        self.assets += other.assets
        self.problems += other.problems
        self.notes += other.notes
        return self
