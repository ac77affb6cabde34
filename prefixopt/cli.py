"""The `prefixopt` command line (typer). Commands are thin: options -> config -> one library
call -> rich output. Each family of commands lives in prefixopt/commands/<family>.py and
registers itself on `app`; diagnostics go to a stderr console, `--json` output to stdout.
"""

from __future__ import annotations

import sys

import typer

from prefixopt.commands import common
from prefixopt.commands import bench, data, evaluate, run, serve, study, train
from prefixopt.commands import finding, plan

app = typer.Typer(
    name="prefixopt",
    help="Learn which 'You are <notable person>.' system prompt helps an LLM on a benchmark, "
    "then test it honestly on held-out questions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    for module in (data, train, run, evaluate, study, finding, bench, serve, plan):
        module.register(app)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: accept the seed's underscore flags, map bad input to one
    stderr line and exit status 2."""
    args = common.normalise_flags(list(sys.argv[1:] if argv is None else argv))
    common.run_app(app, args)


if __name__ == "__main__":
    main()
