"""`prefixopt bench`: engine throughput, batched vs per-person vs sequential, cache on/off."""

from __future__ import annotations

import typer

from prefixopt.commands.common import not_built


def register(app: typer.Typer) -> None:
    @app.command()
    def bench() -> None:
        """Throughput: one batched call vs per-person calls vs sequential, cache on/off."""
        not_built("bench")
