"""`prefixopt setup`, `prefixopt data`, `prefixopt people`: the data layer's commands."""

from __future__ import annotations

import typer

from prefixopt.commands.common import not_built


def register(app: typer.Typer) -> None:
    @app.command()
    def setup() -> None:
        """Build notable_people_10k.csv, prepare the embedded model, check the benchmark data."""
        not_built("setup")

    @app.command()
    def data() -> None:
        """List benchmarks, splits, row counts and where each is read from."""
        not_built("data")

    @app.command()
    def people() -> None:
        """Browse and filter the people table."""
        not_built("people")
