"""What a report measures and shows for each run."""

from __future__ import annotations

from dataclasses import dataclass

from cvdemo.errors import ConfigError


@dataclass(frozen=True)
class ReportOptions:
    split: str = "test"            # the split every metric and picture of a run is measured on
    checkpoint: str = "best"       # "best" (chosen on validation) or "last"
    explain: int = 3               # images explained per run (0 = none)
    explain_methods: tuple[str, ...] = ("gradcam",)  # catalogue names (cvdemo.explain.CATALOGUE), one overlay each
    gallery: int = 16              # most-confidently-wrong images per run
    embed_limit: int = 1000        # at most this many points in the PCA plot (stratified)
    robustness: bool = False       # add top-1 against the strength of an FGSM attack (cvdemo.explain.attack)
    robustness_limit: int = 1000   # at most this many images attacked per epsilon (stratified)
    device: str = "auto"

    def __post_init__(self) -> None:
        from cvdemo.explain.catalogue import METHODS  # the catalogue needs torch: only when options are made

        if not self.explain_methods:
            raise ConfigError("the report needs at least one explanation method (e.g. gradcam)")
        unknown = [m for m in self.explain_methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"unknown explanation method{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
                              f"choose from {', '.join(METHODS)}")
        object.__setattr__(self, "explain_methods", tuple(self.explain_methods))  # a list given works too
