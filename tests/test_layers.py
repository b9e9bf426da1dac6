"""The folders are the architecture: a module imports only from its own layer and the ones
before it in LAYERS (docs/ARCHITECTURE.md, "Shape"). Checked on the source, so that a change
that reaches up fails here rather than in a reviewer's head."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "selfinstruct"
# The shared vocabulary first; then each layer may use every one before it.
LAYERS = ["", "store", "llm", "method", "stages", "pipeline", "outputs", "cli"]


def layer_of(module: str) -> str:
    """'selfinstruct.store.pool' -> 'store'; a top-level module -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else ""


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            base = node.module
            found |= {f"{base}.{a.name}" if base == "selfinstruct" else base for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m.startswith("selfinstruct.")}


def test_no_module_imports_a_later_layer() -> None:
    reaching_up = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = "selfinstruct." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        own = LAYERS.index(layer_of(module))
        for target in sorted(imports(path)):
            public = module in ("selfinstruct.__init__", "selfinstruct.__main__")  # the surface
            if LAYERS.index(layer_of(target)) > own and not public:
                reaching_up.append(f"{module} -> {target}")
    assert reaching_up == []
