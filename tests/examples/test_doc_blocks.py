"""Every ```python block of README.md and docs/*.md runs, each on its own:
a fresh interpreter, an empty temporary directory as its working directory
(so that it imports the installed pool_ext, and the files it writes go
there), nothing from the blocks before it.  A reader copies one block, not
the page.  (tests/typing/test_mypy.py also type-checks README's blocks.)

A block that cannot run here says so in an HTML comment on the line right
above its fence, with the reason, which the rendered page does not show:

    <!-- skip: needs a PostgreSQL server -->

The blocks are read from the files when the tests are collected, never
copied here; where README.md and docs/ are missing (the wheel tests copy
tests/ only), this skips.
"""
import re
import subprocess
import sys

import pytest

from helpers import ROOT

# Libraries the docs show pool_ext with, which an interpreter may lack
# (asyncpg and uvloop have no wheels for every CPython, free-threaded ones
# among them; urllib3, redis and sqlalchemy are in the test extra, but not in
# the free-threaded leg's install): a block importing one skips without it.
OPTIONAL = ("numpy", "asyncpg", "uvloop", "psycopg", "psycopg_pool", "matplotlib",
            "urllib3", "redis", "sqlalchemy")
SKIP = re.compile(r"^\s*<!--\s*skip:\s*(.+?)\s*-->\s*$")


def python_blocks(path):
    """[(line of the opening fence, source, skip reason or None)] of the
    ```python blocks of the Markdown file `path`."""
    blocks, current, start, indent, skip, previous = [], None, 0, "", None, ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if current is None:
            m = re.match(r"^(\s*)```python\s*$", line)
            if m:
                current, start, indent = [], number, m.group(1)
                reason = SKIP.match(previous)
                skip = reason.group(1) if reason else None
            previous = line
        elif line.strip().startswith("```"):
            blocks.append((start, "\n".join(current) + "\n", skip))
            current, previous = None, line
        else:
            current.append(line[len(indent):] if line.startswith(indent) else line)
    return blocks


def collect():
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    params = []
    for path in files:
        if not path.is_file():
            continue
        name = path.relative_to(ROOT).as_posix()
        for line, source, skip in python_blocks(path):
            marks = [pytest.mark.skip(reason=f"{name}:{line}: {skip}")] if skip else []
            params.append(pytest.param(name, line, source, id=f"{name}:{line}", marks=marks))
    return params or [pytest.param("", 0, "", id="docs", marks=pytest.mark.skip(
        reason="no README.md or docs/ here (the wheel tests copy tests/ only)"))]


@pytest.mark.parametrize("name,line,source", collect())
def test_block_runs_alone(tmp_path, name, line, source):
    for module in OPTIONAL:   # a block about an optional library needs it installed
        if re.search(rf"^\s*(import|from) {module}\b", source, re.M):
            pytest.importorskip(module)
    script = tmp_path / f"block_line_{line}.py"
    script.write_text(source, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-X", "faulthandler", "-W", "error", script.name],
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (f"{name}, the block at line {line}, run alone, "
                                  f"failed:\n{proc.stdout}{proc.stderr}")


def test_docs_requirements_are_the_docs_extra():
    """docs/requirements.txt (the site without building the package) lists
    what pyproject.toml's docs extra does."""
    try:
        import tomllib
    except ImportError:
        tomllib = pytest.importorskip("tomli")
    requirements, pyproject = ROOT / "docs" / "requirements.txt", ROOT / "pyproject.toml"
    if not (requirements.is_file() and pyproject.is_file()):
        pytest.skip("no docs/requirements.txt or pyproject.toml here (the wheel tests)")
    with open(pyproject, "rb") as f:
        extra = tomllib.load(f)["project"]["optional-dependencies"]["docs"]
    listed = [line.strip() for line in requirements.read_text(encoding="utf-8").splitlines()
              if line.strip() and not line.lstrip().startswith("#")]
    assert listed == extra
