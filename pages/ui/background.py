"""Work that outlives a rerun: a plain thread whose result the page picks up on a later run.

The task object is kept in st.session_state by the page (under a key from state.py); the thread only ever
writes to the task, never to st.session_state (it has no script context). A rerun, a widget click or
another page does not stop it; the page shows it done when `done` turns true.

    task = BackgroundTask(find_lr, config)        # starts at once
    st.session_state[state.KEY_LR_FIND] = task
    ...
    if task.done: draw(task.result) if task.error is None else show(task.error)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class BackgroundTask:
    """`fn(*args, **kwargs)` running in a daemon thread; `result` or `error` once `done`."""

    def __init__(self, fn: Callable[..., Any], *args: Any, about: Any = None, **kwargs: Any):
        self.about = about                # what the page asked for (e.g. the settings), to show beside it
        self.result: Any = None
        self.error: BaseException | None = None
        self.started = time.time()
        self.finished: float | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args, kwargs), daemon=True,
                                        name=f"cvdemo-{getattr(fn, '__name__', 'task')}")
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        try:
            self.result = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - kept for the page to show, never lost in a thread
            self.error = e
        finally:
            self.finished = time.time()

    @property
    def done(self) -> bool:
        return self.finished is not None

    @property
    def seconds(self) -> float:
        return (self.finished or time.time()) - self.started

    def wait(self, timeout: float | None = None) -> bool:
        """Block until done (tests); True when it finished within `timeout` seconds."""
        self._thread.join(timeout)
        return self.done
