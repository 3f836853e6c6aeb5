"""Helpers shared by test modules."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cvdemo(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300):
    """Run the real command line in a fresh process; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "cvdemo", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env={**os.environ, **(env or {})}, timeout=timeout)


# Class and run names a report must print as text, never as markup (the `odd_names_run` fixture).
ODD_CLASSES = ("<script>alert(1)<", 'a&b "quoted"', "<img src=x onerror=alert(2)>")
ODD_RUN_NAME = '<script>alert("run")</script> & co'
