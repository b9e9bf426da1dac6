"""Settings resolution: flags over env over selfinstruct.toml over defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfinstruct.config import GenerateSettings, Settings, read_config_file, resolve
from selfinstruct.errors import ConfigError


def test_defaults_without_a_file() -> None:
    file = read_config_file(None)
    settings = resolve(Settings, {"model": None}, file.llm, "x")
    assert settings.model == "gpt-4o-mini" and settings.concurrency == 8 and settings.api == "chat"


def test_flags_win_over_file(tmp_path: Path) -> None:
    Path("selfinstruct.toml").write_text(
        'model = "from-file"\nconcurrency = 3\n[generate]\nmax_tokens = 500\n'
    )
    file = read_config_file(None)
    settings = resolve(Settings, {"model": "from-flag", "concurrency": None}, file.llm, "x")
    assert (settings.model, settings.concurrency) == ("from-flag", 3)
    assert resolve(GenerateSettings, {}, file.generate, "g").max_tokens == 500


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('modle = "x"\n')
    file = read_config_file(path)
    with pytest.raises(ConfigError, match=r"setting 'modle': Extra inputs are not permitted"):
        resolve(Settings, {}, file.llm, str(path))


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("model = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_config_file(path)
    with pytest.raises(ConfigError, match="config file not found"):
        read_config_file(tmp_path / "missing.toml")


def test_public_settings_never_hold_the_key() -> None:
    settings = Settings.model_validate({"api_key": "sk-secret-123"})
    assert "sk-secret-123" not in str(settings.public()) and settings.public()["api_key"] == "(set)"


def test_sampling_defaults_follow_the_api() -> None:
    gen = GenerateSettings()
    assert gen.sampling("completions") == {
        "temperature": 0.7,
        "top_p": 0.5,
        "presence_penalty": 2.0,
    }
    assert GenerateSettings(temperature=0.2).sampling("chat")["temperature"] == 0.2
