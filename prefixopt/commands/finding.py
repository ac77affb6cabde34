"""`prefixopt finding STUDY_DIR [--name NAME] [--out docs/findings] [--overwrite] [--json]`:
a finished study exported as docs/findings/<name>/ (study/finding.py): spec.toml, summary.json,
report.md and its figures, written atomically; an existing finding is refused unless
--overwrite. No engine starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefixopt.commands.common import err_console, out_console, print_json
from prefixopt.study.finding import export


def finding(
    study_dir: Annotated[Path, typer.Argument(help="A finished study directory "
                                                   "(studies/<name>/).")],
    name: Annotated[str | None, typer.Option(help="The finding's name (default: the "
                                                  "study's).")] = None,
    out: Annotated[Path, typer.Option(help="Where <name>/ goes.")] = Path("docs/findings"),
    overwrite: Annotated[bool, typer.Option(help="Replace an existing finding.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Export a finished study as a committed finding: spec.toml, summary.json, report.md."""
    result = export(study_dir, name, out, overwrite)
    if json_out:
        print_json(result)
        return
    out_console.print(f"finding: {result['finding_dir']} ({len(result['files'])} files, "
                      f"{result['bytes'] / 1024:.0f} KiB)", highlight=False)
    out_console.print(result["paragraph"], highlight=False)
    err_console.print(f"reproduce: {result['command']}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("finding")(finding)
