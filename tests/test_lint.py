"""Habits, as tests: the linters pass (ruff on the Python, cython-lint on
pool_ext's Cython, clang-format on src/ with .clang-format), src/ keeps to
100 columns, and docs/how-it-works.md's file map names every source file.

They read the source tree: from a wheel's copy of tests/ (no src/, no
Cython sources) they skip.  The linters come with the lint extra
(pip install ".[lint]", pinned there); without one its test skips and says
so, or fails with POOL_REQUIRE_LINT=1, which .ci/run sets."""
import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PKG = ROOT / "pool_ext"

pytestmark = pytest.mark.skipif(
    not (SRC.is_dir() and (PKG / "_pool.pyx").is_file() and (ROOT / ".clang-format").is_file()),
    reason="the sources are not here (a wheel's copy of tests/)")


def _tool(name, knobs):
    """The linter's executable: next to this interpreter (its venv), else on
    PATH; a skip (a failure under POOL_REQUIRE_LINT) if neither has it."""
    here = Path(sys.executable).parent
    for candidate in (here / name, here / (name + ".exe")):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        why = f'{name} not installed (pip install ".[lint]")'
        if knobs.require_lint:
            pytest.fail(why + " and POOL_REQUIRE_LINT is set")
        pytest.skip(why)
    return found


def _run(cmd):
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd[:3])} ...:\n{proc.stdout}{proc.stderr}"
    return proc


def _c_sources():
    return sorted(p for p in SRC.iterdir() if p.suffix in (".c", ".h"))


def _cython_sources():
    files = [p for ext in ("*.pyx", "*.pxi", "*.pxd") for p in PKG.glob(ext)]
    return sorted(files + list((PKG / "includes").glob("*.pxd")))


def test_ruff(knobs):
    """pyproject.toml's [tool.ruff]: pyflakes and pycodestyle, 110 columns."""
    _run([_tool("ruff", knobs), "check", "--no-cache", "."])


def test_cython_lint(knobs):
    """pyproject.toml's [tool.cython-lint], on every .pyx, .pxi and .pxd."""
    _run([_tool("cython-lint", knobs)] + [str(p.relative_to(ROOT)) for p in _cython_sources()])


def test_clang_format(knobs):
    """src/ is as clang-format (.clang-format) would write it."""
    _run([_tool("clang-format", knobs), "--dry-run", "--Werror"]
         + [str(p.relative_to(ROOT)) for p in _c_sources()])


def test_c_sources_keep_to_100_columns():
    # .clang-format keeps the line breaks as written (ColumnLimit 0): the
    # width is checked here, with no tool needed.
    long = [f"{p.name}:{n}: {len(line)} columns"
            for p in _c_sources()
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if len(line) > 100]
    assert not long, "\n".join(long)


# ---- docs/how-it-works.md's file map ------------------------------------


def _map_patterns():
    """The paths the map's text block names, braces expanded:
    src/pool_slots.{h,c} -> src/pool_slots.h, src/pool_slots.c."""
    text = (ROOT / "docs" / "how-it-works.md").read_text(encoding="utf-8")
    block = re.search(r"## Where things are\s*```text\n(.*?)```", text, re.S)
    assert block, "docs/how-it-works.md has no file map (## Where things are)"
    patterns = []
    for line in block.group(1).splitlines():
        if not line.strip():
            continue
        first = line.split()[0]
        braces = re.fullmatch(r"(.*)\{([^}]*)\}(.*)", first)
        if braces:
            patterns += [braces[1] + alt + braces[3] for alt in braces[2].split(",")]
        else:
            patterns.append(first)
    return patterns


def _mapped_files():
    """Every file the map must name: src/, the package's sources (Python,
    Cython, stubs), its includes/ and the C test programs."""
    files = list(SRC.iterdir())
    files += [p for ext in ("*.py", "*.pyx", "*.pxi", "*.pxd", "*.pyi") for p in PKG.glob(ext)]
    files += [p for ext in ("*.pxd", "*.h") for p in (PKG / "includes").glob(ext)]
    files += list((ROOT / "tests" / "c").glob("*.c"))
    return sorted(p.relative_to(ROOT).as_posix() for p in files if p.is_file())


def test_file_map_names_every_source_file():
    patterns = _map_patterns()
    missing = [f for f in _mapped_files()
               if not any(fnmatch.fnmatchcase(f, pat) for pat in patterns)]
    assert not missing, ("docs/how-it-works.md's file map (## Where things are) "
                         "does not name: " + ", ".join(missing))


def test_file_map_names_no_missing_file():
    """And each source path it names exists: a renamed file leaves no stale line."""
    stale = [pat for pat in _map_patterns()
             if pat.startswith(("src/", "pool_ext/", "tests/c/"))
             and not any(ROOT.glob(pat.rstrip("/")))]
    assert not stale, "the file map names paths that do not exist: " + ", ".join(stale)
