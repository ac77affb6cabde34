"""`prefixopt serve`: vLLM's OpenAI-compatible server with prefixopt's engine settings, in the
foreground until Ctrl-C / SIGTERM. Options -> EngineConfig -> prefixopt.engines.serve; extra `vllm
serve` arguments go after `--`.
"""

from __future__ import annotations

from typing import Any

import typer

from prefixopt.commands.common import err_console, out_console
from prefixopt.commands.options import ENGINE, SERVE, with_options
from prefixopt.config import EngineConfig
from prefixopt.engines.serve import Server, serve_foreground, start_server


def register(app: typer.Typer) -> None:
    @app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    @with_options(ENGINE, SERVE)
    def serve(ctx: typer.Context, **values: Any) -> None:
        """Serve a model through vLLM's OpenAI API (prefix caching, dtype by device) for
        `--engine openai --base-url URL`; extra `vllm serve` arguments after `--`."""

        opts = {k: values.pop(k) for k in list(values) if k not in {p.name for p in ENGINE}}
        server = start_server(
            EngineConfig(**values), host=opts["host"], port=opts["port"],
            served_name=opts["served_model_name"], extra=list(ctx.args), log=opts["log"],
            verbose=opts["verbose"], dev_mode=opts["dev_mode"])
        where = f"log {server.log}" if server.log else "log on this terminal"
        err_console.print(f"prefixopt serve: starting vLLM for {server.model} on "
                          f"{server.spec.host}:{server.port} ({where}); Ctrl-C stops it",
                          highlight=False, soft_wrap=True)

        def announce(s: Server) -> None:
            if s.headless:
                out_console.print(f"engine ranks of {s.model} running headless (the endpoint "
                                  "is on the head node)", highlight=False, soft_wrap=True)
                return
            out_console.print(f"serving {s.model} at {s.url} (use --engine openai --base-url "
                              f"{s.url}); ready in {s.start_s:.0f} s", highlight=False,
                              soft_wrap=True)

        serve_foreground(server, opts["ready_timeout"], announce)
        err_console.print("prefixopt serve: stopped", highlight=False)
