"""What a page may say about a file: `public_text` rewrites every path into this computer's folders (the runs
folder with its uploads, the temporary folder, the Python installation) as what the person at the page knows,
so no server path reaches the UI (issue 18).

    public_text("zip /srv/runs/uploads/upload-0123456789abcdef.zip does not exist")
    # -> "zip scenes.zip does not exist"
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
import tempfile
from pathlib import Path

from cvdemo.runs import UPLOADS, data_display_name, default_root

__all__ = ["public_text"]


# Characters that end a path inside a sentence: white space, quotes, brackets and the separators of a list.
_PATH_END = r"[^\s'\"`()\[\]{},;<>]*"


def _server_folders(root: Path | str | None) -> list[tuple[str, str]]:
    """(folder as text, kind) of the folders that belong to this computer, not to the person at the page:
    the runs folder (uploads are stored inside it), the temporary folder and the Python installation;
    longest first, so a runs folder inside the temporary folder is seen as the runs folder."""
    runs_root = Path(root) if root is not None else default_root()
    found = {str(runs_root.resolve()): "runs", os.path.abspath(runs_root): "runs"}
    if not runs_root.is_absolute() and str(runs_root) not in (".", ""):
        found.setdefault(str(runs_root), "runs")   # "runs/upload-…" as a relative root spells it
    for folder in (tempfile.gettempdir(), os.path.realpath(tempfile.gettempdir())):
        found.setdefault(folder, "other")
    for folder in {*sysconfig.get_paths().values(), sys.prefix, sys.base_prefix, sys.exec_prefix}:
        if folder and len(folder) > 1:
            found.setdefault(os.path.realpath(folder), "other")
            found.setdefault(folder, "other")
    return sorted(found.items(), key=lambda item: len(item[0]), reverse=True)


def _public_name(path: str, folder: str, kind: str, runs_root: Path) -> str:
    """What to call `path` (inside `folder`) on a page: an upload by the name its owner gave it, a run
    folder's file by the run, anything else by its last part."""
    parts = [p for p in path[len(folder):].replace("\\", "/").split("/") if p]
    if kind != "runs":
        return parts[-1] if parts else "a folder of this computer"
    if not parts:
        return "the runs folder"
    if parts[0] == UPLOADS:
        if len(parts) == 1:
            return "the uploads folder"
        upload = data_display_name(str(runs_root / UPLOADS / parts[1]))
        return upload if len(parts) == 2 else f"{parts[-1]} of {upload}"
    return f"run {parts[0]}" if len(parts) == 1 else f"{'/'.join(parts[1:])} of run {parts[0]}"


def public_text(text: object, root: Path | str | None = None) -> str:
    """`text` (an error message, a run's status message) with every path into this computer's folders
    replaced by what the person at the page knows: "scenes.zip" for a file they uploaded, "best.pt of run
    <id>" for a run's file, the last part of anything in a temporary folder or the Python installation.
    Never the runs folder, the uploads folder or a server path (issue 18). `root`: the runs folder
    (default $CVDEMO_RUNS or ./runs)."""
    out = str(text)
    runs_root = Path(root) if root is not None else default_root()
    for folder, kind in _server_folders(runs_root):
        if folder not in out:
            continue
        whole = "" if Path(folder).is_absolute() else "(?!)"   # a relative root only as a path's start
        pattern = re.compile(r"(?<![\w./\\-])" + re.escape(folder)
                             + rf"(?:[/\\]{_PATH_END}|(?=[\s'\"`()\[\]{{}},;<>.:]|$){whole})")

        def name(match: re.Match[str], folder: str = folder, kind: str = kind) -> str:
            path, tail = match.group(0), ""
            while path[-1:] in ".:" and len(path) > len(folder):   # a sentence's full stop is not the path's
                path, tail = path[:-1], path[-1] + tail
            return _public_name(path, folder, kind, runs_root) + tail

        out = pattern.sub(name, out)
    return re.sub(r"the (runs|uploads) folder the \1 folder", r"the \1 folder", out)  # "…folder <its path>"
