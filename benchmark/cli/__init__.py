"""The ``robbench`` command line: it parses, calls the library, and prints.

Commands: run, table, plot, report, list, check, headline, diagnose, binarization, chains,
synth, unlabelled, ablation, train, curve, perf, readme, leaderboard (``robbench COMMAND --help``;
docs/cli.md is generated from this parser).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Sequence

import torch

from robbench.attacks.threat_model import ThreatModelViolation
from robbench.cli import leaderboard_command, run_commands, study_commands, tool_commands
from robbench.cli.presets import apply_preset
from robbench.cli.values import UsageError
from robbench.data.dataset import DataNotFoundError
from robbench.models.checkpoint_io import CheckpointError
from robbench.runs.distributed import RankFailed
from robbench.runs.model_contract import ModelContractError, ModelRaised, model_traceback
from robbench.version import __version__

COMMANDS = (
    run_commands.add_run, run_commands.add_table, run_commands.add_plot, run_commands.add_report,
    run_commands.add_list, run_commands.add_check, study_commands.add_headline,
    study_commands.add_diagnose, study_commands.add_binarization, study_commands.add_chains,
    study_commands.add_synth, study_commands.add_unlabelled, study_commands.add_ablation,
    tool_commands.add_train, tool_commands.add_curve, tool_commands.add_perf,
    tool_commands.add_readme,
    leaderboard_command.add_leaderboard,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robbench",
        description="Adversarial robustness that is not overstated: adaptive attacks (EOT "
                    "through every random step), per-example worst case, gradient-masking "
                    "checks, honest intervals; for robbench's ConvNet and Short Run "
                    "classifier, and for your own models.",
    )
    parser.add_argument("--version", action="version", version=f"robbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a bad value is a one-line error and exit 2, nothing half-written."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command_line = "robbench " + shlex.join(argv)
    args.parser = parser
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        apply_preset(args)
        status = func(args)
        sys.stdout.flush()  # a reader that left is met here, not at interpreter exit
        return status
    except BrokenPipeError:  # the reader left (``robbench list | head``): no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (UsageError, ValueError, FileNotFoundError, DataNotFoundError, CheckpointError,
            ImportError) as exc:
        print(f"robbench: error: {exc}", file=sys.stderr)
        return 2
    except ThreatModelViolation as exc:
        print(f"robbench: threat-model violation (no result written): {exc}", file=sys.stderr)
        return 3
    except (RankFailed, ModelContractError) as exc:
        print(f"robbench: error: {exc}", file=sys.stderr)
        return 1
    except ModelRaised as exc:  # the line names the model; its own traceback follows
        print(f"robbench: error: {exc}; batches already finished are kept, and the same "
              "command resumes from them", file=sys.stderr)
        print(model_traceback(exc), end="", file=sys.stderr)
        return 1
    except torch.cuda.OutOfMemoryError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "out of memory"
        print(f"robbench: error: {reason}; rerun with a smaller --batch-size or, for EOT "
              "attacks, --max-batch ROWS (images x noise draws per pass through the model); a "
              "run resumes from its finished cells", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("robbench: interrupted; finished cells and crafted batches are kept, rerun the "
              "same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
