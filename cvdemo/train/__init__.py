"""Training: the loop and its events, optimizers and schedules, and the run job."""

from cvdemo.train.trainer import BatchInfo, Diverged, StopTraining, Trainer, evaluate

__all__ = ["BatchInfo", "Diverged", "StopTraining", "Trainer", "evaluate"]
