"""What a report measures and shows for each run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReportOptions:
    split: str = "test"            # the split every metric and picture of a run is measured on
    checkpoint: str = "best"       # "best" (chosen on validation) or "last"
    explain: int = 3               # images with a Grad-CAM overlay per run (0 = none)
    gallery: int = 16              # most-confidently-wrong images per run
    embed_limit: int = 1000        # at most this many points in the PCA plot (stratified)
    robustness: bool = False       # add top-1 against the strength of an FGSM attack (cvdemo.explain.attack)
    robustness_limit: int = 1000   # at most this many images attacked per epsilon (stratified)
    device: str = "auto"
