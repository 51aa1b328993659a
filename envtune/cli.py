"""The `envtune` command line: one subcommand group per part of the project."""

from __future__ import annotations

import argparse
import sys

from envtune import __version__
from envtune.bfcl import cli as bfcl_cli
from envtune.curriculum import cli as curriculum_cli
from envtune.env import cli as env_cli
from envtune.errors import EnvtuneError
from envtune.eval import cli as eval_cli
from envtune.eval import server as serve_cli
from envtune.feedback import cli as feedback_cli
from envtune.report import cli as report_cli
from envtune.sft import cli as sft_cli


# Bad input or environment (a bad value or config, a malformed line, an unknown id, no cached
# release, a file that is missing or cannot be read, an output that exists, a failed child job): one
# clear line and exit status 2. Any other exception is a bug and keeps its traceback.
USER_ERRORS = (EnvtuneError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
               PermissionError, ChildProcessError)


class OneLineErrorParser(argparse.ArgumentParser):
    """Bad arguments get one line on stderr (the command, the flag, what it accepts) and status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="envtune",
        description="Environment Tuning for tool-using LLM agents on BFCL V3 multi-turn.",
    )
    parser.add_argument("--version", action="version", version=f"envtune {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=OneLineErrorParser)
    bfcl_cli.register(commands)
    env_cli.register(commands)
    feedback_cli.register(commands)
    curriculum_cli.register(commands)
    sft_cli.register(commands)
    eval_cli.register(commands)
    serve_cli.register(commands)
    report_cli.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except USER_ERRORS as error:
        print(f"envtune: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("envtune: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
