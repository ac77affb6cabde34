"""`prefixopt train` and `prefixopt simulate`: the learner's commands."""

from __future__ import annotations

import typer

from prefixopt.commands.common import not_built


def register(app: typer.Typer) -> None:
    @app.command()
    def train() -> None:
        """REINFORCE training of the persona policy on a benchmark."""
        not_built("train")

    @app.command()
    def simulate() -> None:
        """Run the learner on the synthetic engine (planted accuracies), no LLM."""
        not_built("simulate")
