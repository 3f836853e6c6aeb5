"""Lesson commands: `cvdemo lesson list` and `cvdemo lesson run NAME [--data D] [--limit-train N] [--out RUNS]`.

A lesson (`cvdemo.lessons`) trains two to four runs that differ in one thing; `run` trains them one
after another, then prints the comparison table and the text measured from the results. On other data
(`--data cifar10.zip`) each arm trains on a subset about the digits' size unless --limit-train and
--limit-test say otherwise (a number of images, or `all`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cvdemo import runs
from cvdemo.cli._common import RUNS_HELP, Subparsers, command, emit
from cvdemo.errors import CvdemoError
from cvdemo.lessons import OTHER_DATA_LIMITS, Lesson, Limit, list_lessons, load_lesson


def add_parsers(subparsers: Subparsers) -> None:
    p = command(subparsers, "lesson", "lessons: two to four runs that answer one question, compared "
                                      "(`lesson list`, `lesson run NAME`)")
    p.add_argument("action", choices=("list", "run"), help="list the lessons, or run one")
    p.add_argument("name", nargs="?", help="the lesson to run (see `cvdemo lesson list`)")
    p.add_argument("--data", help="train every arm on this data instead (a built-in name, a folder or a .zip)")
    p.add_argument("--limit-train", type=_limit, default="auto", metavar="N|all",
                   help=f"train each arm on at most N images, or on all; default: the lesson's own limit, and "
                        f"with --data at most {OTHER_DATA_LIMITS[0]:,}")
    p.add_argument("--limit-test", type=_limit, default="auto", metavar="N|all",
                   help=f"validate and test each arm on at most N images each, or on all; default: the lesson's "
                        f"own limit, and with --data at most {OTHER_DATA_LIMITS[1]:,}")
    p.add_argument("--out", help=RUNS_HELP)
    p.set_defaults(func=cmd_lesson)


def _limit(text: str) -> Limit:
    """A --limit-train/--limit-test value: a whole number of at least 1, "all" (no limit) or "auto" (the
    default, which argparse passes through here too)."""
    if text.strip().lower() in ("all", "auto"):
        return None if text.strip().lower() == "all" else "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"give a whole number of images of at least 1, or 'all'; got {text!r}")
    return value


def _card(lesson: Lesson) -> str:
    """A lesson as `lesson list` prints it: name and title, the arms, the time, what the full experiment needs."""
    took = f"about {lesson.seconds:.0f} s, measured on {lesson.measured_on}" if lesson.seconds else "not timed yet"
    lines = [f"{lesson.name:<15} {lesson.title}", f"{'':<15} arms: {' | '.join(a.label for a in lesson.arms)}",
             f"{'':<15} {took}"]
    if lesson.data_note:
        lines.append(f"{'':<15} {lesson.data_note}")
    return "\n".join(lines)


def _subset(lesson: Lesson) -> str:
    """What the arms train on, for the terminal: "on cifar10.zip: at most 1,000 training images and ..."."""
    d = lesson.arms[0].config.data
    if any((a.config.data.limit_train, a.config.data.limit_test) != (d.limit_train, d.limit_test)
           for a in lesson.arms):
        return f"on {d.source}: each arm with its own limits"

    train = "all training images" if d.limit_train is None else f"at most {d.limit_train:,} training images"
    held = "all validation and test images" if d.limit_test is None else \
        f"at most {d.limit_test:,} validation and test images each"
    return f"on {d.source}: {train} and {held} per arm (--limit-train and --limit-test change this)"


def cmd_lesson(args: argparse.Namespace) -> int:
    if args.action == "list":
        lessons = [load_lesson(n) for n in list_lessons()]
        emit(args, {"lessons": [lesson.summary() for lesson in lessons]}, "\n".join(_card(x) for x in lessons))
        return 0
    if not args.name:
        raise CvdemoError(f"say which lesson to run: cvdemo lesson run NAME ({', '.join(list_lessons())})")
    from cvdemo.cli.training import ProgressBar
    from cvdemo.lesson_results import format_table, run_lesson

    lesson = load_lesson(args.name).on_data(args.data, args.limit_train, args.limit_test)
    if args.data is not None or args.limit_train != "auto" or args.limit_test != "auto":
        print(_subset(lesson), file=sys.stderr)

    def started(label: str, run_dir: Path) -> None:
        print(f"arm '{label}': run {run_dir.name}", file=sys.stderr)

    result = run_lesson(lesson, Path(args.out or runs.default_root()), on_arm=started, callbacks=[ProgressBar()])
    human = (f"{lesson.title}\n{lesson.question}\n\n{format_table(result['rows'])}\n\n"
             f"What you should see: {result['outcome']}\n(all arms: {result['seconds']:.1f} s)")
    emit(args, result, human)
    return 0
