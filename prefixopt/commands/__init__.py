"""CLI command families; each module has `register(app)`. See prefixopt/cli.py."""
