"""Errors a user can act on.

Anything raised as `CvdemoError` carries one sentence that says what is wrong and
what to do; the CLI prints it to stderr (exit code 2) and the app shows it on the
page. Everything else is a bug and keeps its traceback.
"""


class CvdemoError(Exception):
    """A problem with the user's input or environment, explained in one sentence."""


class ConfigError(CvdemoError):
    """A configuration value is missing, of the wrong type or out of range."""


class DataError(CvdemoError):
    """A data set or image cannot be read."""


class ModelError(CvdemoError):
    """A model cannot be built, or its weights cannot be loaded."""


class CheckpointError(CvdemoError):
    """A checkpoint file is missing, damaged or does not fit the model."""
