"""The README's first example runs as written."""
from __future__ import annotations

import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_reproduces_the_lost_deposit(tmp_path, monkeypatch):
    text = README.read_text(encoding="utf-8")
    block = re.search(r"```python\n(import races\n.*?)```", text, re.S).group(1)
    module = tmp_path / "readme_example.py"
    module.write_text(block, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    import readme_example

    readme_example.test_lost_deposit_reproduces()
