"""`envtune report`: one self-contained HTML file from run and eval directories."""

from __future__ import annotations

import argparse

from envtune.cli_values import positive_int
from envtune.report import MAX_CONVERSATIONS


def cmd_report(args: argparse.Namespace) -> int:
    from envtune.report.page import write_report

    output = write_report(args.paths, args.output, args.max_conversations)
    size = output.stat().st_size
    print(f"report written to {output} ({size / 1e6:.1f} MB); open it in a browser, no network needed")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "report", help="write one self-contained HTML report of run directories (tune) and eval directories (eval)",
        description="Curves per stage with the transition decisions, the sampled rollouts turn by turn, and eval tables "
                    "(Table 1 layout, 95%% intervals, per-task conversations), in one HTML file that opens offline.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="a run directory of `envtune tune` or an output directory of `envtune eval`")
    parser.add_argument("--output", default="report.html", help="the HTML file to write (default: report.html)")
    parser.add_argument("--max-conversations", type=positive_int, default=MAX_CONVERSATIONS, metavar="N",
                        help="conversations kept per directory, spread evenly over its rollouts or tasks; the rest are "
                             f"listed without one (default {MAX_CONVERSATIONS})")
    parser.set_defaults(handler=cmd_report)
