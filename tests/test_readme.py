"""README's Python examples compile and import only names that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("source", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_example_compiles_and_its_imports_resolve(source: str) -> None:
    tree = ast.parse(source)
    compile(tree, "README.md", "exec")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom | ast.Import):
            exec(compile(ast.Module(body=[node], type_ignores=[]), "README.md", "exec"), {})
