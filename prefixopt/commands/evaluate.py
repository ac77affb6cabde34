"""`prefixopt eval` and `prefixopt report`: held-out evaluation and the run report."""

from __future__ import annotations

import typer

from prefixopt.commands.common import not_built


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_() -> None:
        """Held-out evaluation: learned top-k vs no prefix vs random vs hand-written."""
        not_built("eval")

    @app.command()
    def report() -> None:
        """Figures and a summary page for one or several runs."""
        not_built("report")
