"""``robbench leaderboard``: run a defense's leaderboard protocol, and render the table."""

from __future__ import annotations

import argparse
from pathlib import Path

from robbench.cli.options import add_batch_size
from robbench.cli.values import parse_names, positive_int
from robbench.data.datasets import DATASETS
from robbench.defenses.catalog import DEFENSE_NAMES
from robbench.devices import resolve_device
from robbench.report.html_report import write_report
from robbench.report.leaderboard import BASELINES
from robbench.report.leaderboard_tables import write_leaderboard
from robbench.studies.leaderboard_runs import (
    DATASET_EPS,
    LEADERBOARD_RUNS,
    LeaderboardProtocol,
    run_protocol,
)

RUNS_ROOT = "results/leaderboard/runs"


def attack_names(text: str) -> list[str]:
    return parse_names(text, LEADERBOARD_RUNS, "leaderboard attack")


def add_leaderboard(sub: argparse._SubParsersAction) -> None:
    board = sub.add_parser("leaderboard", help="the randomised defenses' leaderboard from "
                           "committed runs (results/leaderboard/DATASET.md and .csv); with "
                           "--run, first run or resume a defense's protocol")
    board.add_argument("--dataset", required=True, choices=[d for d in DATASETS
                                                            if d in DATASET_EPS])
    board.add_argument("--run", action="append", default=[],
                       choices=(*DEFENSE_NAMES, *BASELINES), metavar="MODEL",
                       help="run (or resume) the headline's L-inf protocol on this defense "
                       f"first; repeatable ({', '.join(DEFENSE_NAMES)}; "
                       f"{', '.join(BASELINES)}: their reference run alone, the rest is "
                       "their headline)")
    board.add_argument("--n", type=positive_int, default=None,
                       help="with --run: the first N test images (default all)")
    board.add_argument("--attacks", type=attack_names, default=LEADERBOARD_RUNS,
                       help="with --run: the protocol's attacks to run, comma-separated "
                       "(default all; a reduced grid shows in the table's attacks column; "
                       f"{LEADERBOARD_RUNS[-1]} runs AutoAttack-rand through its authors' "
                       "code, pip install 'robbench[autoattack]')")
    add_batch_size(board)
    board.add_argument("--root", default=".", help="the repository (default: here)")
    board.add_argument("--check", action="store_true",
                       help="write nothing; exit 1 if a leaderboard file differs from its "
                       "regeneration")
    board.add_argument("--data-dir", default=None, help="dataset files (as for run)")
    board.add_argument("--device", default="auto", help="auto | cpu | cuda")
    board.add_argument("--quiet", action="store_true", help="no progress bars")
    board.set_defaults(func=cmd_leaderboard)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    for defense in args.run:
        run_protocol(LeaderboardProtocol(args.dataset, defense, n=args.n,
                                         attacks=tuple(args.attacks)),
                     f"{args.root}/{RUNS_ROOT}", device=resolve_device(args.device),
                     data_dir=args.data_dir, batch_size=args.batch_size, quiet=args.quiet)
    changed = write_leaderboard(args.root, args.dataset, DATASET_EPS[args.dataset],
                                check=args.check)
    for path in changed:
        print(f"{'stale' if args.check else 'written'}: {path}")
    if not args.check:
        csv = Path(args.root) / "results" / "leaderboard" / f"{args.dataset}.csv"
        print(f"written: {write_report(csv)}")
    return 1 if args.check and changed else 0
