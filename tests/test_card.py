"""The dataset card's pure parts: size categories, settings from run.json, the review hook."""

from __future__ import annotations

from pathlib import Path

from selfinstruct.outputs.card import review_section, settings_lines, size_category
from selfinstruct.store.pool import Pool


def test_size_categories_follow_the_hub_s_bins() -> None:
    assert [size_category(n) for n in (0, 999, 1000, 9999, 10_000, 250_000, 5_000_000)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "1K<n<10K",
        "10K<n<100K",
        "100K<n<1M",
        "1M<n<10M",
    ]


def test_settings_come_from_each_stage_s_entry() -> None:
    run = {
        "stages": {
            "generate": {
                "generate": {"examples": 8, "blacklist": ["image"]},
                "sampling": {"temperature": 0.7},
                "seed": 3,
                "settings": {"model": "m"},
            },
            "classify": {"settings": {"model": "m"}},  # recorded by `run`: model settings only
        }
    }
    assert settings_lines(run) == [
        '- `generate`: blacklist=["image"], examples=8, seed=3, temperature=0.7'
    ]


def test_the_review_section_is_empty_without_a_review(tmp_path: Path) -> None:
    assert review_section(Pool(tmp_path)) == ""
    (tmp_path / "review.jsonl").write_text('{"valid": true}\n{"valid": false}\n')
    assert "| valid | 1 / 2 | 50% |" in review_section(Pool(tmp_path))
