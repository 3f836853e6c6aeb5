"""Lesson commands: `cvdemo lesson list` and `cvdemo lesson run NAME [--data D] [--out RUNS]`.

A lesson (`cvdemo.lessons`) trains two to four runs that differ in one thing; `run` trains them one
after another, then prints the comparison table and the text measured from the results.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cvdemo import runs
from cvdemo.cli._common import RUNS_HELP, Subparsers, command, emit
from cvdemo.errors import CvdemoError
from cvdemo.lessons import list_lessons, load_lesson


def add_parsers(subparsers: Subparsers) -> None:
    p = command(subparsers, "lesson", "lessons: two to four runs that answer one question, compared "
                                      "(`lesson list`, `lesson run NAME`)")
    p.add_argument("action", choices=("list", "run"), help="list the lessons, or run one")
    p.add_argument("name", nargs="?", help="the lesson to run (see `cvdemo lesson list`)")
    p.add_argument("--data", help="train every arm on this data instead (a built-in name, a folder or a .zip)")
    p.add_argument("--out", help=RUNS_HELP)
    p.set_defaults(func=cmd_lesson)


def cmd_lesson(args: argparse.Namespace) -> int:
    if args.action == "list":
        lessons = [load_lesson(n) for n in list_lessons()]
        lines = []
        for lesson in lessons:
            took = f"about {lesson.seconds:.0f} s, measured on {lesson.measured_on}" if lesson.seconds else \
                "not timed yet"
            lines.append(f"{lesson.name:<15} {lesson.title}\n{'':<15} arms: "
                         f"{' | '.join(a.label for a in lesson.arms)}\n{'':<15} {took}")
        emit(args, {"lessons": [lesson.summary() for lesson in lessons]}, "\n".join(lines))
        return 0
    if not args.name:
        raise CvdemoError(f"say which lesson to run: cvdemo lesson run NAME ({', '.join(list_lessons())})")
    from cvdemo.cli.training import ProgressBar
    from cvdemo.lesson_results import format_table, run_lesson

    lesson = load_lesson(args.name)

    def started(label: str, run_dir: Path) -> None:
        print(f"arm '{label}': run {run_dir.name}", file=sys.stderr)

    result = run_lesson(lesson, Path(args.out or runs.default_root()), data=args.data, on_arm=started,
                        callbacks=[ProgressBar()])
    human = (f"{lesson.title}\n{lesson.question}\n\n{format_table(result['rows'])}\n\n"
             f"What you should see: {result['outcome']}\n(all arms: {result['seconds']:.1f} s)")
    emit(args, result, human)
    return 0
