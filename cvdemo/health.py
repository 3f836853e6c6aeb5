"""Did the run learn? A verdict on a run from its recorded metrics, in words a student understands.

    health = run_health(run_dir)
    print(health.verdict, "-", health.sentence, health.suggestion)
    # unstable - The training loss ended near 120, far above the 2.3 an untrained network starts at ...

The verdicts, the first that applies wins:

- ``diverged``: the loss became NaN, infinite or absurdly large and training stopped.
- ``unstable``: the loss went far above where an untrained network starts (ln of the class count, the
  cross-entropy of a uniform guess), or swung up by that much again and again.
- ``did not learn``: the best validation (else test) top-1 stayed near chance (1 / classes).
- ``overfitting``: the validation loss rose for the last epochs while the training loss kept falling.
- ``healthy``: none of these. ``too early``: not enough recorded to judge yet.

Pure Python over metrics.jsonl records (the kinds `step`, `epoch`, `test`; see `cvdemo.runs`), so the CLI,
the app and the report all judge a run the same way.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median
from typing import Any

from cvdemo import runs

__all__ = ["Health", "VERDICTS", "assess", "run_health"]

VERDICTS = ("diverged", "unstable", "did not learn", "overfitting", "healthy", "too early")
# How each verdict should look where it is shown: "error", "warning" or "ok" ("info" when there is no verdict).
SEVERITY = {"diverged": "error", "unstable": "error", "did not learn": "warning", "overfitting": "warning",
            "healthy": "ok", "too early": "info"}

HIGH_LOSS = 2.0        # the loss in the run's second half above this many times the starting value: unstable
SPIKE_LOSS = 10.0      # any recorded loss above this many times the starting value: unstable
SWINGS = 3             # this many rises, each by more than the starting value, in the second half: oscillating
CHANCE_MARGIN = 0.1    # "near chance": top-1 below chance + this share of the way from chance to 100%
OVERFIT_RISE = 0.1     # validation loss this fraction above its minimum, for 2+ epochs, while training loss fell
MAX_START_LOSS = math.log(1000)  # the start when the class count is unknown: a 1000-class guess's loss


@dataclass(frozen=True)
class Health:
    """A verdict on a run: `verdict` (one of VERDICTS), one plain sentence saying what the metrics show,
    and what to try next (empty when nothing needs changing)."""
    verdict: str
    sentence: str
    suggestion: str = ""

    @property
    def severity(self) -> str:
        """"error", "warning", "ok" or "info": how a page should colour it."""
        return SEVERITY[self.verdict]

    @property
    def text(self) -> str:
        """The sentence and the suggestion as one paragraph."""
        return f"{self.sentence} {self.suggestion[:1].upper()}{self.suggestion[1:]}".strip() + (
            "." if self.suggestion and not self.suggestion.endswith(".") else "")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "severity": self.severity}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _rate(lr: float | None, factor: float) -> str:
    return f"{lr * factor:.3g}" if lr is not None and _finite(lr) and lr > 0 else "a much lower rate"


def _too_high(lr: float | None, factor: float = 0.01) -> str:
    return f"the learning rate is probably too high: try {_rate(lr, factor)} or run the LR finder"


def _loss(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def assess(records: list[dict[str, Any]], classes: int | None = None, lr: float | None = None,
           state: str | None = None) -> Health:
    """The verdict on a run from its metrics.jsonl `records` (any order of step, epoch and test lines).

    `classes`: the number of classes (chance is 1 / classes; the starting loss ln(classes)), None if unknown;
    `lr`: the run's configured learning rate, for the suggestion; `state`: the run's status ("diverged" is
    taken at its word, even when no point was recorded before the loss blew up).
    """
    steps = [m for m in records if m.get("kind") == "step"]
    epochs = [m for m in records if m.get("kind") == "epoch"]
    tests = [m for m in records if m.get("kind") == "test"]
    losses = [m["loss"] for m in steps if m.get("loss") is not None] or [m.get("train_loss") for m in epochs]
    blown = [m for m in steps if m.get("diverged")] + [m for m in steps + epochs if any(
        m.get(k) is not None and not _finite(m.get(k)) for k in ("loss", "train_loss", "val_loss"))]
    if state == "diverged" or blown:
        where = blown[0] if blown else None
        value = where.get("loss") if where else None
        at = f" at epoch {math.ceil(where['epoch']) or 1}" if where and _finite(where.get("epoch")) else ""
        what = f"blew up to {_loss(value)}" if value is not None and _finite(value) else \
            "became infinite or not a number"
        return Health("diverged", f"The loss {what}{at} and training stopped: the weights took steps so large "
                      "that no later step could bring them back.", _too_high(lr))
    losses = [v for v in losses if _finite(v)]
    start = math.log(classes) if classes and classes >= 2 else min(losses[0], MAX_START_LOSS) if losses else None
    if start is not None and len(losses) >= 4:
        late = losses[len(losses) // 2:]
        swings = sum(1 for a, b in zip(late, late[1:]) if b - a > start)
        if median(late) > HIGH_LOSS * start or max(losses) > SPIKE_LOSS * start:
            return Health("unstable", f"The training loss reached {_loss(max(losses))} and ended near "
                          f"{_loss(late[-1])}, far above the {start:.2g} an untrained network starts at: the "
                          "steps overshoot instead of going downhill.", _too_high(lr))
        if swings >= SWINGS:
            return Health("unstable", f"The training loss jumped up and down {swings} times in the second half "
                          "of training instead of settling: the steps are too large to stay in the valley.",
                          _too_high(lr, 0.1))
    top1 = [m["val_top1"] for m in epochs if _finite(m.get("val_top1"))] or [
        m["top1"] for m in tests if _finite(m.get("top1"))]
    if not top1:
        return Health("too early", "Not enough has been recorded yet to judge whether the run is learning.")
    best = max(top1)
    if classes and classes >= 2:
        chance = 1 / classes
        if best < chance + CHANCE_MARGIN * (1 - chance):
            which = "validation" if epochs else "test"
            return Health("did not learn", f"The best {which} accuracy was {best:.1%}, about what guessing at "
                          f"random among {classes} classes gets ({chance:.0%}): the network did not learn.",
                          "the learning rate may be too high or too low, or the run too short: run the LR "
                          "finder, or try more epochs")
    overfit = _overfitting(epochs)
    if overfit is not None:
        best_epoch, last = overfit
        return Health("overfitting", f"From epoch {best_epoch} the validation loss rose (to {_loss(last)}) while "
                      "the training loss kept falling: the network is memorising the training images rather than "
                      "learning what generalises.", f"keep the checkpoint of epoch {best_epoch} (best.pt does), "
                      "stop earlier, add augmentation or weight decay, or use more data")
    first = losses[0] if losses else None
    fell = f"The loss fell from {_loss(first)} to {_loss(losses[-1])} and " if first is not None else ""
    chance_text = f" (chance is {1 / classes:.0%})" if classes and classes >= 2 else ""
    return Health("healthy", f"{fell}{'validation' if epochs else 'test'} top-1 reached {best:.1%}{chance_text}: "
                  "the run learned.")


def _overfitting(epochs: list[dict[str, Any]]) -> tuple[int, float] | None:
    """(epoch of the lowest validation loss, the last validation loss) when, for at least the last two
    epochs, the validation loss stayed well above its minimum and rose while the training loss fell."""
    points = [(m["epoch"], m["train_loss"], m["val_loss"]) for m in epochs
              if _finite(m.get("train_loss")) and _finite(m.get("val_loss"))]
    if len(points) < 3:
        return None
    vals = [v for _, _, v in points]
    i = vals.index(min(vals))
    if len(points) - 1 - i < 2:
        return None
    after = points[i:]
    val_rose = after[-1][2] > vals[i] * (1 + OVERFIT_RISE) and after[-1][2] - vals[i] > 0.02
    train_fell = after[-1][1] < after[0][1]
    return (points[i][0], after[-1][2]) if val_rose and train_fell else None


def run_health(run_dir: Path | str) -> Health:
    """The verdict on the run in `run_dir`, from its metrics.jsonl, status, config and summary."""
    run_dir = Path(run_dir)
    summary = runs.read_json_or_empty(run_dir / "summary.json")
    config = runs.read_json_or_empty(run_dir / "config.json")
    classes = (summary.get("data") or {}).get("classes") if isinstance(summary.get("data"), dict) else None
    lr = (config.get("train") or {}).get("lr") if isinstance(config.get("train"), dict) else None
    records = runs.read_metrics(run_dir)
    blew_up = summary.get("diverged")
    if isinstance(blew_up, dict) and not any(m.get("diverged") for m in records):  # a run from before the
        try:                                                                           # point was recorded
            loss: float | None = float(blew_up.get("loss"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            loss = None
        records = [*records, {"kind": "step", "diverged": True, "epoch": blew_up.get("epoch"),
                              "loss": loss if _finite(loss) else None}]
    return assess(records, len(classes) if isinstance(classes, list) else None,
                  lr if _finite(lr) else None, runs.read_status(run_dir).get("state"))
