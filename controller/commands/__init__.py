"""One module per ``fes`` subcommand; each exposes ``register(subparsers)``."""
