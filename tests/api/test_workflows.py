"""The CI's commands name test paths that exist: a test file moved without
its workflow line fails only in CI, as "file or directory not found".

Checked: the commands of .github/workflows/*.yml (comments left out) and
the cibuildwheel test commands of pyproject.toml.  A wheel's tests run from
a copy of tests/, pyproject.toml and examples/ (no .github): the workflow
half then skips."""
import glob
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"

# a path under tests/, as a shell command names it (a file, a folder, a glob)
_TEST_PATH = re.compile(r"(?<![\w./-])tests/[\w./*-]*[\w*]")


def _commands(text):
    """The text without comments (a '#' at a line's start or after a space)."""
    return "\n".join(re.sub(r"(^|\s)#.*", "", line) for line in text.splitlines())


def _missing(text):
    return sorted({p for p in _TEST_PATH.findall(_commands(text))
                   if not glob.glob(str(ROOT / p))})


def test_the_pattern_finds_paths_in_commands_not_in_comments():
    text = ("  pytest tests/api tests/old_name.py --ignore=tests/c/test_c_core.py\n"
            "  # tests/in_a_comment.py\n"
            "  cp -r tests pyproject.toml \"$RUNNER_TEMP\"   # tests/also_a_comment.py\n")
    assert _missing(text) == ["tests/old_name.py"]


def test_every_test_path_a_workflow_names_exists():
    files = sorted(WORKFLOWS.glob("*.yml")) if WORKFLOWS.is_dir() else []
    if not files:
        pytest.skip("no .github/workflows here (a wheel's tests run from a copy of tests/)")
    missing = {f.name: _missing(f.read_text(encoding="utf-8")) for f in files}
    assert {name: paths for name, paths in missing.items() if paths} == {}


def test_every_test_path_pyprojects_test_commands_name_exists():
    pyproject = ROOT / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("no pyproject.toml next to tests/")
    text = pyproject.read_text(encoding="utf-8")
    commands = "\n".join(line for line in text.splitlines()
                         if re.match(r"\s*(test-command\s*=|\")", line))
    assert _missing(commands) == []
