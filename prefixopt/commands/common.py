"""Shared CLI plumbing: the stderr console, one-line errors, `--json` output, and the
seed-compatible underscore flag aliases (`--model_name` -> `--model`, ...).
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console
from prefixopt.errors import PrefixoptError

err_console = Console(stderr=True)
out_console = Console()

# Seed-style flags accepted as aliases of prefixopt's own names.
FLAG_ALIASES = {
    "--model_name": "--model",
    "--learning_rate": "--learning-rate",
    "--samples_per_iteration": "--samples-per-iteration",
    "--batch_size": "--batch-size",
    "--load_in_4bit": "--load-in-4bit",
    "--output_dir": "--output-dir",
}


def normalise_flags(args: list[str]) -> list[str]:
    """Rewrite seed-style flags (also in --flag=value form); other underscores -> hyphens."""
    out = []
    for arg in args:
        if arg.startswith("--") and "_" in arg.split("=", 1)[0]:
            name, eq, value = arg.partition("=")
            name = FLAG_ALIASES.get(name, name.replace("_", "-"))
            arg = name + eq + value
        out.append(arg)
    return out


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one line on stderr and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_json(payload: Any) -> None:
    """The JSON summary on stdout (the terminal's, even while engine output is redirected)."""
    out = out_console.file
    out.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    out.flush()


def run_app(app: typer.Typer, args: list[str]) -> None:
    try:
        app(args=args, standalone_mode=True)
    except PrefixoptError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
