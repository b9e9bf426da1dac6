"""Prompt caching for the fake server: `FakeOpenAI(prefix_cache=PrefixCache())` reports
`usage.prompt_tokens_details.cached_tokens` for the part of a prompt it has seen begin another.

As real servers do it: the prompt is cut into blocks, a block is cached when every block before
it is too (a prefix), and only whole blocks count. OpenAI caches prompts of 1,024 tokens and
more, in steps of 128 (`PrefixCache()`); vLLM's automatic prefix caching has no minimum and
blocks of 16 tokens (`PrefixCache(block=16, minimum=0)`). Tokens are the fake server's: about
1.3 a word (fakeserver.estimate_tokens), so a block is a whole number of words.
"""

from __future__ import annotations

import hashlib
import threading

TOKENS_PER_WORD = 1.3


class PrefixCache:
    def __init__(self, block: int = 128, minimum: int = 1024) -> None:
        self.block_words = max(1, round(block / TOKENS_PER_WORD))
        self.minimum = minimum
        self._seen: set[bytes] = set()
        self._lock = threading.Lock()

    def cached(self, prompt: str) -> int:
        """The prompt's cached tokens, then remember its blocks for the prompts that follow."""
        words = prompt.split()
        digest = hashlib.sha256()
        keys = []
        for start in range(0, len(words) - self.block_words + 1, self.block_words):
            digest.update(" ".join(words[start : start + self.block_words]).encode() + b"\0")
            keys.append(digest.copy().digest())
        with self._lock:
            hits = next((i for i, key in enumerate(keys) if key not in self._seen), len(keys))
            self._seen.update(keys)
        tokens = tokens_of(hits * self.block_words)
        return tokens if tokens >= self.minimum and tokens > 0 else 0


def tokens_of(words: int) -> int:
    """fakeserver.estimate_tokens of that many words."""
    return (words * 13 + 9) // 10
