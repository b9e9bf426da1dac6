"""Benchmarks that print figures: run them from the repository's root as
`python -m bench.<name>`, so that they import the test helpers as `tests.<module>`."""
