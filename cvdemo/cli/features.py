"""`cvdemo features list|clear`: the feature store of frozen-backbone runs (`cvdemo.train.feature_store`)."""

from __future__ import annotations

import argparse
import time

from cvdemo.cli._common import RUNS_HELP, Subparsers, command, emit


def add_parsers(subparsers: Subparsers) -> None:
    p = command(subparsers, "features", "list or empty the store of frozen-backbone features that head-only runs "
                                        "on the same data reuse (<runs folder>/.features)")
    p.add_argument("action", choices=("list", "clear"), help="list the stored features, or remove them all")
    p.add_argument("--root", help=RUNS_HELP)
    p.set_defaults(func=cmd_features)


def cmd_features(args: argparse.Namespace) -> int:
    from cvdemo.train.feature_store import FeatureStore, cap_bytes, store_enabled, store_root

    folder = store_root(args.root)
    store = FeatureStore(folder)
    if args.action == "clear":
        count, freed = store.clear()
        emit(args, {"store": str(folder), "removed": count, "bytes": freed},
             f"removed {count} feature file{'' if count == 1 else 's'} ({_mb(freed)}) from {folder}")
        return 0
    entries = store.entries()
    total = sum(e["bytes"] for e in entries)
    lines = [f"{folder}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, {_mb(total)} of "
             f"{_mb(cap_bytes())}" + ("" if store_enabled() else " (off: CVDEMO_FEATURE_STORE=0)")]
    if entries:
        lines.append(f"{'key':<12} {'model':<22} {'images':>7} {'dim':>5} {'size':>5} {'device':<6} "
                     f"{'MB':>8}  last used")
    for e in entries:
        if e.get("unreadable"):
            lines.append(f"{e['key'][:12]:<12} (unreadable: recomputed when next needed) {_mb(e['bytes']):>8}")
            continue
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e["used"]))
        lines.append(f"{e['key'][:12]:<12} {e['model'] or '-':<22} {e['images']:>7} {e['dim']:>5} "
                     f"{e['image_size'] or '-':>5} {e['device'] or '-':<6} {e['bytes'] / 2**20:>8.1f}  {used}")
    emit(args, {"store": str(folder), "bytes": total, "cap_bytes": cap_bytes(), "enabled": store_enabled(),
                "entries": entries}, "\n".join(lines))
    return 0


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"
