"""The tests, and the helpers they share with bench/ (fake server, corpus, chatty): import them
as `tests.<module>` from the repository's root."""
