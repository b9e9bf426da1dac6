"""Prompt templates: files in `prompts/`, overridable with --prompts DIR, hashed in run.json."""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from selfinstruct.errors import ConfigError

EVOLVE_OPS = ("constraints", "deepen", "concretize", "breadth", "harder")  # prompts/evolve_*.txt

# Fields each template may use; a template missing a required one cannot work.
FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "generate_completions": ({"examples", "next"}, {"count", "new", "last"}),
    "generate_chat": ({"examples", "next"}, {"count", "new", "last"}),
    "generate_alpaca": ({"examples", "next"}, {"count", "new", "last"}),
    "classify": ({"instruction"}, set()),
    "instances_input_first": ({"instruction"}, set()),
    "instances_output_first": ({"instruction"}, set()),
    "backtranslate": ({"examples", "answer"}, set()),
    **{f"evolve_{op}": ({"instruction"}, set()) for op in EVOLVE_OPS},
    "curate": ({"instruction", "input", "output"}, set()),  # the judge's rubrics
    "review": ({"instruction", "input", "output"}, set()),
    "judge_additive": ({"instruction", "input", "output"}, set()),  # `preferences`
}


@dataclass(frozen=True)
class Template:
    name: str
    path: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def render(self, **values: object) -> str:
        return self.text.format(**values)


def default_dir() -> Path:
    """The source checkout's prompts/ (editable installs), else the copy inside the wheel."""
    checkout = Path(__file__).resolve().parents[3] / "prompts"
    if checkout.is_dir():
        return checkout
    return Path(str(resources.files("selfinstruct") / "_prompts"))


def load_template(name: str, directory: Path | None = None) -> Template:
    """Read `<dir>/<name>.txt` (falling back to the defaults) and check its fields."""
    path = (directory or default_dir()) / f"{name}.txt"
    if directory is not None and not path.exists():
        path = default_dir() / f"{name}.txt"
    try:
        # Editors end files with a newline; a base model must continue right after "9.".
        text = path.read_text(encoding="utf-8").removesuffix("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read prompt template: {e}") from None
    check_fields(name, path, text)
    return Template(name, str(path), text)


def check_fields(name: str, path: Path, text: str) -> None:
    required, optional = FIELDS[name]
    try:
        used = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError as e:
        raise ConfigError(
            f"{path}: bad template ({e}); write literal braces as {{{{ }}}}"
        ) from None
    if unknown := used - required - optional:
        raise ConfigError(f"{path}: unknown placeholder {{{sorted(unknown)[0]}}}")
    if missing := required - used:
        raise ConfigError(f"{path}: missing placeholder {{{sorted(missing)[0]}}}")
