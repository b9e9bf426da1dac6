"""Where the pool's data lives: the JSONL pool, the request cache, the run manifest."""
