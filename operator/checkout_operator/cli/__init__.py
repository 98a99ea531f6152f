"""Command-line entry points: they parse arguments and delegate, nothing more."""
