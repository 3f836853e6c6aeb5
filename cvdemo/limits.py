"""Limits on what a file from a stranger may cost, each with a sane default and an environment variable.

    CVDEMO_MAX_PIXELS     40000000   width x height of one image, checked from its header before decoding
    CVDEMO_MAX_ZIP_MB     200        a zip uploaded in the app (also raise Streamlit's server.maxUploadSize)
    CVDEMO_MAX_IMAGE_MB   20         one image uploaded in the app
    CVDEMO_MAX_RUNNING    GPUs       background runs (app, `cvdemo sweep --parallel`) training at once under
                                     one runs folder; the rest wait as `queued`. Default: one per CUDA GPU,
                                     no limit on a machine without one. 0 means no limit.
    CVDEMO_SHARE_CORES    1          CPU runs side by side split the cores between them (cvdemo.train.cpu_share);
                                     0 lets each take every core, PyTorch's default.

Values are read when used, so a test or a long-lived app process sees a change at once.
"""

from __future__ import annotations

import os

from cvdemo.errors import ConfigError

DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_ZIP_MB = 200
DEFAULT_MAX_IMAGE_MB = 20


def env_int(name: str, default: int, minimum: int = 1) -> int:
    """The whole number in environment variable `name`, or `default` when unset or empty."""
    text = os.environ.get(name, "").strip().replace("_", "")
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ConfigError(f"environment variable {name} must be a whole number of at least {minimum}, "
                          f"got {text[:40]!r}: fix it or unset it (default {default})")
    return value


def max_pixels() -> int:
    """Most pixels (width x height) an image may have: $CVDEMO_MAX_PIXELS, default 40 million."""
    return env_int("CVDEMO_MAX_PIXELS", DEFAULT_MAX_PIXELS)


def max_zip_mb() -> int:
    """Largest zip the app accepts as an upload, in MB: $CVDEMO_MAX_ZIP_MB, default 200."""
    return env_int("CVDEMO_MAX_ZIP_MB", DEFAULT_MAX_ZIP_MB)


def max_image_mb() -> int:
    """Largest single image the app accepts as an upload, in MB: $CVDEMO_MAX_IMAGE_MB, default 20."""
    return env_int("CVDEMO_MAX_IMAGE_MB", DEFAULT_MAX_IMAGE_MB)


def share_cores_enabled() -> bool:
    """Whether CPU runs training at once split the cores: $CVDEMO_SHARE_CORES, default 1 (on)."""
    return env_int("CVDEMO_SHARE_CORES", 1, minimum=0) != 0


def max_running() -> int:
    """Background runs that may train at once under one runs folder (0: no limit): $CVDEMO_MAX_RUNNING,
    default one per CUDA GPU, and no limit without one (on a CPU a second run only shares the cores)."""
    if os.environ.get("CVDEMO_MAX_RUNNING", "").strip():
        return env_int("CVDEMO_MAX_RUNNING", 0, minimum=0)
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
