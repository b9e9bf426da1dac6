"""One module per pipeline stage; each exposes a function the CLI calls."""
