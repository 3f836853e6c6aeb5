"""`python -m cvdemo worker`: the app's spare training process (see `cvdemo.spare`).

It imports what a training run needs at idle priority, then waits for one line on stdin, a JSON object
{"argv": [...], "log": path}; it then returns to normal priority, writes its output to the log, and runs
`cvdemo <argv>` as `python -m cvdemo <argv>` would. End of input (the app ended) ends it quietly.
"""

from __future__ import annotations

import json
import os
import sys
import threading

from cvdemo import spare


def serve() -> int:
    """Wait for one command and run it; its exit code (0 when no command came)."""
    spare.idle_priority()
    lines: list[str] = []

    def wait() -> None:
        lines.append(sys.stdin.readline())
        # at once, even with the imports still under way: at idle priority a run handed over beside busy
        # neighbours (a lesson that starts three runs) would wait for all of them to end
        spare.normal_priority()

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    import torch._dynamo  # noqa: F401 - a torch optimizer imports it at its first step: 1.1 s here

    import cvdemo.cli.training  # noqa: F401 - the trainer, its callbacks, data and model registry
    import cvdemo.train.cpu_share  # noqa: F401
    import cvdemo.train.job  # noqa: F401
    from cvdemo.cli import main

    waiter.join()
    if not lines[0].strip():
        return 0
    job = json.loads(lines[0])
    log = os.open(job["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    for fd, target in ((0, null), (1, log), (2, log)):
        os.dup2(target, fd)  # as a fresh process launched with stdin from /dev/null and output to the log
    os.close(log)
    os.close(null)
    return main(job["argv"])
