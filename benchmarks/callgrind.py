"""Instructions per acquire/release pair, counted by valgrind's callgrind.

Timings on a shared machine are noisy; instruction counts are not.  For each
case (the same statements as ``pool-ext bench``, from
pool_ext.bench.cases) this runs the statement N and 2N times in a fresh
interpreter under ``valgrind --tool=callgrind`` and reports
(instructions(2N) - instructions(N)) / N: start-up, imports and set-up are the
same in both runs and cancel.

    python benchmarks/callgrind.py                     # every case, N=100k
    python benchmarks/callgrind.py obj_pair floor_pair # some cases
    python benchmarks/callgrind.py --python /tmp/perf-venv-atomic/bin/python
    python benchmarks/callgrind.py --keep DIR obj_pair # keep callgrind.out files
                                                       # for callgrind_annotate
    python benchmarks/callgrind.py -n 2000 arr_touch@16777216 np_touch@16777216
                                                       # ArrayPool's cases, at a size
    python benchmarks/callgrind.py buf_pair shm_pair   # SharedBufferPool's pair (Linux)
                                                       # beside BufferPool's; shm_*: the
                                                       # keys of cases.shared_cases()

Run it with the interpreter whose pool_ext you want to count, or pass
--python; the child runs in an empty temporary directory, so it imports the
installed package, never the source tree.

    python benchmarks/callgrind.py --all-pythons       # every CPython here, N=20k
    python benchmarks/callgrind.py --all-pythons --versions 3.9,3.14 --docs -

--all-pythons counts ALL_CASES under each CPython it finds, from the
package's requires-python on: pyenv's (the newest patch release of each
minor version), then those that tools/newer-pythons.sh runs in
its Debian sid chroot and pyenv lacks.  Each gets a venv of its own, into
which pool_ext is built, non-editable, from one copy of this repository (the
files git sees, as they are when the run starts); the table, a row per
version, goes into docs/performance.md between the callgrind-all-pythons
markers.
"""
import argparse
import atexit
import concurrent.futures
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time

CHILD = r"""
import gc, sys, timeit
from pool_ext.bench.cases import core_cases, path_cases
key, n = sys.argv[1], int(sys.argv[2])
if "@" in key:   # an ArrayPool case at a size: arr_touch@16777216
    from pool_ext.bench.cases import array_cases
    key, size = key.split("@")
    cases = array_cases(int(size))
elif key.startswith("shm_"):   # SharedBufferPool's (Linux): the pairs need no numpy
    from pool_ext.bench.cases import shared_cases
    cases = shared_cases(sends="send" in key)
else:
    cases = path_cases() if key.startswith("path_") else core_cases()
stmt, ns = {k: (s, g) for k, _, s, g in cases}[key]
t = timeit.Timer(stmt, globals=ns)
t.timeit(1000)          # warm-up (specialisation, freelists): the same in both runs
gc.disable()
t.timeit(n)
"""

DEFAULT = ["floor_pair", "floor_pair_fastcall", "floor_pair_own", "timeit_loop", "obj_pair", "obj_try_pair", "buf_pair", "list", "deque",
           "floor_with", "floor_with_self", "obj_with", "buf_with",
           "simplequeue", "locklist", "lifoqueue", "seed64", "seed1024",
           "path_mv", "path_np", "shm_pair", "shm_with"]
#: cases that are 10-1000x slower run fewer iterations (the per-pair figure
#: is the same; only valgrind's wall time changes)
SCALE = {"lifoqueue": 10, "locklist": 4, "seed64": 10, "seed1024": 100,
         "shm_send": 100, "shm_send_array": 100, "shm_by_hand_send": 10, "shm_plain_send": 100}

_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


_DIRS = {}
_DIRS_LOCK = threading.Lock()


def _own_dir(kind):
    """A directory of this process's own, made on first use, gone at exit."""
    with _DIRS_LOCK:
        if kind not in _DIRS:
            _DIRS[kind] = tempfile.mkdtemp(prefix=f"callgrind-{kind}-")
            atexit.register(shutil.rmtree, _DIRS[kind], True)
        return _DIRS[kind]


class Local:
    """Where the valgrind runs happen: this machine, as the current user
    (inside the newer-pythons chroot, that is this file run there)."""

    def __init__(self, tag=""):
        self.tag = tag   # prefix of the callgrind.out names

    def cwd(self):
        """The runs' working directory: an empty one that nothing writes to.
        Under -c, sys.path[0] is the working directory; the import system
        lists it, and lists it again whenever its mtime changes, so in a
        busy /tmp (other programs' files, the other runs' callgrind.out)
        a run's count moved by up to 2 million instructions; here, by a
        few instructions at most."""
        return _own_dir("cwd")

    def out(self):
        """Where the callgrind.out files go: not /tmp itself, where two
        copies of this script running at once wrote the same names."""
        return _own_dir("out")

    def run(self, argv, env, cwd):
        return subprocess.run(argv, capture_output=True, text=True,
                              env=dict(os.environ, **env), cwd=cwd)

    def sh(self, command):
        return subprocess.run(["bash", "-c", command], capture_output=True, text=True)


LOCAL = Local()


def count(python, key, n, keep=None, where=LOCAL, child=None):
    """Total instructions executed by one run of `key` with n iterations
    (child: the program run, `python -c child key n`; default CHILD)."""
    name = f"callgrind.{where.tag}{key}.{n}.out"
    out = os.path.join(where.out(), name)
    # fixed hashes; one BLAS thread (numpy's idle BLAS threads add noise)
    proc = where.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
         python, "-c", child or CHILD, key, str(n)],
        {"PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1"}, where.cwd())
    if proc.returncode != 0:
        raise RuntimeError(f"{key} n={n} failed (exit code {proc.returncode}):\n"
                           f"{proc.stderr[-2000:]}{proc.stdout[-500:]}")
    m = _COLLECTED.search(proc.stderr)
    if not m:
        raise RuntimeError(f"no 'Collected' line for {key}:\n{proc.stderr[-2000:]}")
    if keep is None:
        os.unlink(out)
    else:
        shutil.move(out, os.path.join(keep, name))
    return int(m.group(1))


def per_pair(python, key, n, keep=None, repeat=1, where=LOCAL):
    """(instructions(2n) - instructions(n)) / n; each count is the least of
    `repeat` runs (runs used to count up to 2 million instructions more now
    and then, from their working directory: see Local.cwd; now they agree
    to within a few instructions)."""
    n = max(1000, n // SCALE.get(key, 1))
    a = min(count(python, key, n, keep, where) for _ in range(repeat))
    b = min(count(python, key, 2 * n, keep, where) for _ in range(repeat))
    return (b - a) / n


# ---------------------------------------------------------------------------
# --all-pythons: the same counts under every CPython on the machine
# ---------------------------------------------------------------------------

#: what --all-pythons counts under each version: its own references (the empty
#: method pair in both calling conventions, the empty lease and the empty
#: `with`, list, deque, SimpleQueue) and pool_ext's pairs and with-blocks
ALL_CASES = ["floor_pair", "floor_pair_fastcall", "floor_pair_own", "timeit_loop", "list", "deque", "simplequeue",
             "obj_pair", "obj_try_pair", "buf_pair",
             "floor_with", "floor_with_self", "obj_with", "buf_with"]
#: counts are exact: 20k iterations give each figure to a fraction of an instruction
ALL_N = 20_000
BEGIN = "<!-- callgrind-all-pythons:begin -->"
END = "<!-- callgrind-all-pythons:end -->"
#: the venvs, build dirs and the source copy: here, and inside the chroot
HOST_HOME = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                         "pool_ext_callgrind")
CHROOT_HOME = "/root/.cache/pool_ext_callgrind"


class Pyenv(Local):
    """A CPython of pyenv's; its venv-X.Y and build-X.Y are in HOST_HOME."""
    kind = "pyenv"

    def __init__(self, version, base, home=HOST_HOME):
        super().__init__(tag=version + ".")
        self.version, self.base, self.home = version, base, home
        self.python = f"{home}/venv-{version}/bin/python"


class Chroot:
    """A CPython of the newer-pythons chroot (Debian sid).  Every command
    goes through newer-pythons.sh, which mounts what the chroot needs and
    runs it inside, as root, with a clean environment; run from `source`, a
    git checkout (the script mounts the checkout it is run from at /src if
    nothing is mounted there yet)."""
    kind = "Debian"

    def __init__(self, version, script, root, source):
        self.version, self.base, self.home = version, f"/usr/bin/python{version}", CHROOT_HOME
        self.python = f"{CHROOT_HOME}/venv-{version}/bin/python"
        self.script, self.root, self.source = script, root, source

    def sh(self, command):
        return subprocess.run([self.script, "--only", self.version, command],
                              capture_output=True, text=True, cwd=self.source)

    def host(self, path):
        """Where `path` of the chroot is on this machine."""
        return self.root + path


def _minor(version):
    return tuple(int(x) for x in version.split("."))


def find_pythons(source, script, root):
    """The interpreters to measure, oldest first, one per minor version from
    the package's requires-python on: pyenv's newest patch release of each,
    then (a Chroot each) the versions newer-pythons.sh runs that pyenv lacks.
    Also returns {version: why it cannot be measured}."""
    with open(os.path.join(source, "pyproject.toml"), encoding="utf-8") as f:
        m = re.search(r'requires-python\s*=\s*">=\s*(3\.\d+)', f.read())
    low = _minor(m.group(1) if m else "3.9")
    found, skipped = {}, {}
    try:
        pyenv_root = subprocess.run(["pyenv", "root"], capture_output=True, text=True,
                                    check=True).stdout.strip()
        names = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True,
                               check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        names = []
    patch = {}
    for name in names:
        m = re.fullmatch(r"(3\.\d+)\.(\d+)", name)        # not 3.13.0t, not a venv's name
        v = m and m.group(1)
        if m and _minor(v) >= low and int(m.group(2)) >= patch.get(v, -1):   # the newest patch
            patch[v] = int(m.group(2))
            found[v] = Pyenv(v, f"{pyenv_root}/versions/{name}/bin/python{v}")
    if script:
        with open(script, encoding="utf-8") as f:
            m = re.search(r'^versions="([^"]*)"', f.read(), re.M)
        for v in (m.group(1).split() if m else []):
            if v in found:
                pass
            elif os.geteuid() != 0:
                skipped[v] = f"{os.path.basename(script)} needs root (it mounts and chroots)"
            else:
                found[v] = Chroot(v, script, root, source)
    return [found[v] for v in sorted(found, key=_minor)], skipped


def snapshot(source, dest):
    """Copy the files git sees in `source` (tracked ones, and untracked ones
    it does not ignore, as they are now) to `dest`: every version builds the
    same code, whatever happens in `source` during the run."""
    names = subprocess.run(["git", "-C", source, "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], capture_output=True, check=True).stdout
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    for name in filter(None, os.fsdecode(names).split("\0")):
        if os.path.isfile(os.path.join(source, name)):   # not a tracked file since deleted
            os.makedirs(os.path.dirname(os.path.join(dest, name)), exist_ok=True)
            # copy2 keeps the mtimes, so the kept build dirs rebuild only what changed
            shutil.copy2(os.path.join(source, name), os.path.join(dest, name))


def build(py, requires):
    """(Re)create py's venv if need be and install pool_ext into it from
    py.home/src, non-editable, with its build dir outside the source.
    Returns (Python's version, Cython's, valgrind's)."""
    q = shlex.quote
    venv = os.path.dirname(os.path.dirname(py.python))
    pip = f"{q(py.python)} -m pip install -q --disable-pip-version-check"
    proc = py.sh(f"""set -e
grep -qxF {q("home = " + os.path.dirname(py.base))} {q(venv)}/pyvenv.cfg 2>/dev/null ||
  {q(py.base)} -m venv --clear {q(venv)}
{pip} {" ".join(q(r) for r in requires)}
{pip} --no-build-isolation --force-reinstall --no-deps \
  --config-settings=build-dir={q(py.home)}/build-{py.version} {q(py.home)}/src
cd / && {q(py.python)} -c 'import sys, Cython, pool_ext._pool; print(sys.version.split()[0], Cython.__version__)'
valgrind --version""")
    if proc.returncode != 0:
        raise RuntimeError((proc.stdout + proc.stderr).strip()[-3000:])
    out = proc.stdout.split()
    return out[-3], out[-2], out[-1].replace("valgrind-", "")


def ensure_chroot_valgrind(py):
    """Install Debian's valgrind in the chroot if it is not there (the first
    call through newer-pythons.sh also builds the chroot, once)."""
    if os.path.exists(py.host("/usr/bin/valgrind")):
        return
    print("installing valgrind in the newer-pythons chroot...", file=sys.stderr)
    get = "apt-get install -y -q --no-install-recommends valgrind"
    proc = py.sh(f"export DEBIAN_FRONTEND=noninteractive; {get} || {{ apt-get update -q && {get}; }}")
    if proc.returncode != 0 or not os.path.exists(py.host("/usr/bin/valgrind")):
        raise RuntimeError("could not install valgrind in the chroot: " + proc.stderr[-2000:])


def count_in_chroot(py, args, keep):
    """{case: per_pair} for all of args.cases under a Chroot version, in one
    call of newer-pythons.sh (each call costs seconds: the script makes its
    own venv again every time): this file, copied into the chroot, counts
    them there in its single-interpreter mode."""
    inner = f"{py.home}/callgrind.py"
    shutil.copy(os.path.abspath(__file__), py.host(inner))
    out = f"{py.home}/counts.json"
    argv = [py.python, inner, "--python", py.python, "-n", str(args.n), "-j", "1",
            "--repeat", str(args.repeat), "--json", out, *args.cases]
    if keep:
        shutil.rmtree(py.host(py.home + "/keep"), ignore_errors=True)
        argv[-len(args.cases):-len(args.cases)] = ["--keep", py.home + "/keep"]
    proc = py.sh(shlex.join(argv))
    if proc.returncode != 0:
        raise RuntimeError((proc.stdout + proc.stderr).strip()[-3000:])
    if keep:
        for name in os.listdir(py.host(py.home + "/keep")):
            shutil.move(os.path.join(py.host(py.home + "/keep"), name), keep)
    with open(py.host(out), encoding="utf-8") as f:
        return json.load(f)


def _again(job, *a):
    """job(*a), and once more if it fails: once in a long run a valgrind
    run in the chroot exited non-zero with nothing said (the counts are
    exact, so a second try changes nothing else)."""
    try:
        return job(*a)
    except RuntimeError as e:
        print(f"trying again after: {str(e)[-1000:]}", file=sys.stderr)
        return job(*a)


def _int(x):
    return f"{x:,.0f}"


def _over(a, b):
    return f"{a / b:.2f}"


#: the two tables' columns: (heading, the cell, from a version's counts c).
#: Two tables of few columns rather than one wide one, so that each fits a
#: page; docs/performance.md says what each heading means.
COUNTS = [
    ("empty pair", lambda c: _int(c["floor_pair"])),
    ("empty pair, keywords", lambda c: _int(c["floor_pair_fastcall"])),
    ("list", lambda c: _int(c["list"])),
    ("deque", lambda c: _int(c["deque"])),
    ("SimpleQueue pool", lambda c: _int(c["simplequeue"])),
    ("acquire pair", lambda c: _int(c["obj_pair"])),
    ("try_acquire pair", lambda c: _int(c["obj_try_pair"])),
    ("BufferPool pair", lambda c: _int(c["buf_pair"])),
]
RATIOS = [
    ("acquire pair", lambda c: _over(c["obj_pair"], c["floor_pair_fastcall"])),
    ("try_acquire pair", lambda c: _over(c["obj_try_pair"], c["floor_pair"])),
    ("lease", lambda c: _over(c["obj_with"], c["floor_with"])),
    ("BufferPool with", lambda c: _over(c["buf_with"], c["floor_with_self"])),
    ("SimpleQueue pool ÷ acquire pair", lambda c: _over(c["simplequeue"], c["obj_pair"])),
]
TABLES = [("Instructions per statement:", COUNTS),
          ("Ratios: each pool_ext statement's count over its empty counterpart's (see "
           "above); the last column, a SimpleQueue pool's pair over pool_ext's acquire "
           "pair (above 1: pool_ext runs fewer instructions):", RATIOS)]


def table(report):
    """What goes between the markers: a line saying what was measured, then
    one row per version (a dash where a count is missing), then why any
    version was not measured."""
    dirty = " plus uncommitted changes" if report["dirty"] else ""
    runs = "one run" if report["repeat"] == 1 else f"the least of {report['repeat']} runs"
    lines = [f"Measured {report['date']}, commit `{report['commit']}`{dirty}, "
             f"N = {report['n']:,d}, {runs} per count, {report['seconds'] / 60:.0f} min "
             f"({report['j']} valgrind runs at once): `{report['command']}`"]
    for title, columns in TABLES:
        lines += ["", title, "",
                  "| CPython | " + " | ".join(h for h, _ in columns) + " |",
                  "| --- |" + " ---: |" * len(columns)]
        for v, r in report["pythons"].items():
            cells = []
            for _, cell in columns:
                try:
                    cells.append(cell(r.get("counts", {})))
                except (KeyError, ZeroDivisionError):
                    cells.append("—")
            name = r.get("python", v) + (" (Debian)" if r.get("kind") == Chroot.kind else "")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    notes = [f"{v}: {r['error']}" for v, r in report["pythons"].items() if r.get("error")]
    return "\n".join(lines + ([""] + notes if notes else []))


def write_between_markers(path, text):
    """Replace what is between BEGIN and END in `path` with `text`."""
    with open(path, encoding="utf-8") as f:
        doc = f.read()
    i, j = doc.find(BEGIN), doc.find(END)
    if i < 0 or j < i:
        raise SystemExit(f"{path} has no {BEGIN} ... {END} to put the table between")
    with open(path, "w", encoding="utf-8") as f:
        f.write(doc[:i + len(BEGIN)] + "\n" + text + "\n" + doc[j:])


def _fail(r, what, e):
    """Note in a version's report `r` what went wrong: all that was said
    under "log", and under "error" a line for the docs (the last line that
    names an error, or else the last line)."""
    lines = str(e).strip().splitlines() or [""]
    why = next((s for s in reversed(lines) if re.search(r"error|failed \(exit", s, re.I)),
               lines[-1])
    r.setdefault("error", f"{what}: {why.strip()[:200]}")
    r["log"] = r.get("log", "") + str(e)


def _log(start, msg):
    print(f"[{time.monotonic() - start:6.0f}s] {msg}", file=sys.stderr, flush=True)


def build_requires(pyproject):
    """[build-system] requires, read with tomllib (3.11+), else by a regex
    over the file with its comments dropped."""
    with open(pyproject, encoding="utf-8") as f:
        text = f.read()
    try:
        import tomllib
    except ImportError:
        text = re.sub(r"(?m)^\s*#.*$", "", text)
        m = re.search(r"\[build-system\]\s*requires\s*=\s*\[([^\]]*)\]", text)
        return re.findall(r'"([^"]+)"', m.group(1))
    return tomllib.loads(text)["build-system"]["requires"]


def all_pythons(args, command):
    """Build and count under every interpreter find_pythons() finds; returns
    the report (what --json writes)."""
    start = time.monotonic()
    git = lambda *a: subprocess.run(["git", "-C", args.source, *a], check=True,  # noqa: E731
                                    capture_output=True, text=True).stdout.strip()
    requires = build_requires(os.path.join(args.source, "pyproject.toml"))
    pythons, skipped = find_pythons(args.source, args.newer_pythons, args.chroot)
    if args.versions:
        pythons = [py for py in pythons if py.version in args.versions]
        skipped = {v: why for v, why in skipped.items() if v in args.versions}
    report = {"date": time.strftime("%Y-%m-%d"), "commit": git("rev-parse", "--short", "HEAD"),
              "dirty": bool(git("status", "--porcelain")), "command": command,
              "n": args.n, "repeat": args.repeat, "j": args.j, "cases": args.cases,
              "pythons": {v: {"error": why} for v, why in skipped.items()}}
    snapshot(args.source, os.path.join(HOST_HOME, "src"))
    ready, copied = [], set()
    for py in pythons:
        r = report["pythons"][py.version] = {"kind": py.kind, "counts": {}}
        if isinstance(py, Chroot):
            try:
                ensure_chroot_valgrind(py)
                dest = py.host(py.home + "/src")
                if dest not in copied:
                    shutil.rmtree(dest, ignore_errors=True)
                    shutil.copytree(os.path.join(HOST_HOME, "src"), dest)
                    copied.add(dest)
            except (RuntimeError, OSError) as e:
                _fail(r, "could not set up the chroot", e)
                continue
        ready.append(py)
    _log(start, "building pool_ext for " + ", ".join(py.version for py in ready))
    with concurrent.futures.ThreadPoolExecutor(args.j) as ex:
        builds = {ex.submit(build, py, requires): py for py in ready}
        counts = {}
        for f in concurrent.futures.as_completed(builds):
            py = builds[f]
            r = report["pythons"][py.version]
            try:
                r["python"], r["cython"], r["valgrind"] = f.result()
            except RuntimeError as e:
                _fail(r, "the build failed", e)
                _log(start, f"{py.version}: {r['error']}")
                continue
            _log(start, f"{py.version}: built ({r['python']}, Cython {r['cython']}); counting")
            keep = args.keep and os.path.join(args.keep, py.version)
            if keep:
                os.makedirs(keep, exist_ok=True)
            if isinstance(py, Chroot):
                counts[ex.submit(_again, count_in_chroot, py, args, keep)] = py, None
                continue
            for k in args.cases:
                counts[ex.submit(_again, per_pair, py.python, k, args.n, keep, args.repeat,
                                 py)] = py, k
        for f in concurrent.futures.as_completed(counts):
            py, k = counts[f]
            r = report["pythons"][py.version]
            try:
                got = f.result() if k is None else {k: f.result()}
            except RuntimeError as e:
                _fail(r, "a count failed" if k is None else f"{k}: the count failed", e)
                continue
            r["counts"].update(got)
            for k, v in got.items():
                _log(start, f"{py.version} {k}: {v:.1f}")
    for r in report["pythons"].values():   # in the order of args.cases
        r["counts"] = {k: r["counts"][k] for k in args.cases if k in r.get("counts", {})}
    report["pythons"] = dict(sorted(report["pythons"].items(), key=lambda kv: _minor(kv[0])))
    report["seconds"] = round(time.monotonic() - start)
    return report


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cases", nargs="*",
                   help=f"default: {' '.join(DEFAULT)}; with --all-pythons: {' '.join(ALL_CASES)}")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("-n", type=int,
                   help=f"N (the runs are N and 2N; default 100,000, with --all-pythons {ALL_N:,d})")
    p.add_argument("-j", type=int, default=2, help="valgrind runs at once")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs per count, the least is kept (default 1: runs agree to within "
                        "a few instructions)")
    p.add_argument("--keep", metavar="DIR", help="keep the callgrind.out files here")
    p.add_argument("--json", nargs="?", const=True, metavar="FILE",
                   help="print the raw figures as JSON, or write them to FILE (a path with a "
                        "'.' or '/' in it: a bare word is a case, as before)")
    g = p.add_argument_group("every interpreter")
    g.add_argument("--all-pythons", action="store_true",
                   help="count under each CPython found (pyenv's, and newer-pythons.sh's "
                        "chroot), each with pool_ext built from this repository, and write "
                        "the table into DOCS")
    g.add_argument("--versions", type=lambda s: s.split(","), metavar="3.X,...",
                   help="only these versions (then DOCS is not written unless given)")
    g.add_argument("--docs", metavar="DOCS",
                   help="the file whose callgrind-all-pythons markers get the table "
                        "(default docs/performance.md for a full run; - for none)")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    g.add_argument("--source", default=here,
                   help="the repository to build and measure (default: this script's)")
    g.add_argument("--newer-pythons", metavar="SCRIPT",
                   default=os.environ.get("NEWER_PYTHONS",
                                          os.path.join(here, "tools", "newer-pythons.sh")),
                   help="newer-pythons.sh (default $NEWER_PYTHONS or this repository's "
                        "tools/newer-pythons.sh; "
                        "'' for none)")
    g.add_argument("--chroot", default=os.environ.get("NEWER_PY_ROOT", "/var/tmp/newer-pythons"),
                   help="the chroot newer-pythons.sh uses ($NEWER_PY_ROOT)")
    args = p.parse_args(argv)
    if isinstance(args.json, str) and not re.search(r"[./]", args.json):
        args.cases.insert(0, args.json)     # `--json obj_pair`: a case, printed as JSON
        args.json = True
    if shutil.which("valgrind") is None:
        p.error("valgrind is not installed")
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    if args.all_pythons:
        return main_all(p, args, argv)
    args.cases = args.cases or DEFAULT
    args.n = args.n or 100_000
    with concurrent.futures.ThreadPoolExecutor(args.j) as ex:
        futs = {k: ex.submit(per_pair, args.python, k, args.n, args.keep, args.repeat)
                for k in args.cases}
        res = {k: f.result() for k, f in futs.items()}
    if args.json:
        dump(res, args.json)
        return 0
    base = res.get("floor_pair")
    print(f"instructions per statement ({args.python}, N={args.n:,d}):")
    for k, v in res.items():
        ratio = f"{v / base:8.2f}x empty method call" if base else ""
        print(f"  {k:18s} {v:10.1f} {ratio}")
    return 0


def dump(data, where):
    """--json: print `data`, or write it to the file `where`."""
    if where is True:
        print(json.dumps(data, indent=1))
    else:
        with open(where, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.write("\n")


def main_all(p, args, argv):
    if args.python != sys.executable:
        p.error("--all-pythons builds its own environments: no --python")
    if args.newer_pythons and not os.path.isfile(args.newer_pythons):
        print(f"no {args.newer_pythons}: pyenv's versions only", file=sys.stderr)
        args.newer_pythons = ""
    full = not args.cases and not args.versions
    if args.docs is None:
        args.docs = os.path.join(args.source, "docs", "performance.md") if full else "-"
    args.cases = args.cases or ALL_CASES
    args.n = args.n or ALL_N
    command = shlex.join(["python", "benchmarks/callgrind.py",
                          *(sys.argv[1:] if argv is None else argv)])
    report = all_pythons(args, command)
    text = table(report)
    print(text)
    if args.docs != "-":
        write_between_markers(args.docs, text)
        print(f"written to {args.docs}", file=sys.stderr)
    if args.json:
        dump(report, args.json)
    return 1 if any(r.get("error") for r in report["pythons"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
