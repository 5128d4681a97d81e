#!/usr/bin/env python3
"""fencepost's benchmark: each workload natively and under every peer tool, side by side.

Not part of the test suite. Builds the workloads in bench/workloads/ with `gcc -O2 -g`,
builds fencepost (`cargo build --release`), then runs every workload natively, under
`fencepost run --mode=guard`, `--mode=fast` and `--mode=sampled` (its defaults), valgrind
memcheck, heaptrack and LeakSanitizer preloaded on the unmodified binary, alternating the
tools within each repetition, and prints the median wall time, the ratio to native, the ratio of each fencepost
mode to each peer, and the peak RSS. See docs/performance.md for what the columns mean.

    python3 bench/run.py                       # the full run (5 repetitions)
    python3 bench/run.py --quick               # 1 repetition, small inputs: a smoke test
    python3 bench/run.py --only alloc-binary-trees --repeat 9
    python3 bench/run.py --markdown docs/performance.md

Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import os
import platform
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WORKLOAD_DIR = BENCH_DIR / "workloads"

RESULTS_BEGIN = "<!-- results -->"
RESULTS_END = "<!-- /results -->"

# Peak RSS is ru_maxrss from wait4 on the top process (done in bench/measure.c, whose
# comment says why not from Python). For a process that reaped its own children, Linux
# reports max(its own peak, each reaped descendant's peak): the largest single process, not
# the sum. fencepost reaps the program (it is the program's subreaper and waits with
# waitpid), valgrind runs the program inside its own process, and heaptrack's script waits
# for the program and for heaptrack_interpret, so every column does cover the program.
#
# Checked once for fencepost (binary_trees 14 on the 2-core development machine), sampling
# /proc/PID/status VmHWM of fencepost and of the program every 20 ms, beside /usr/bin/time -v:
#   guard: fencepost 525,560 KiB, program 513,660 KiB; time -v 525,560; wait4 525,556
#   fast:  fencepost 445,964 KiB, program  77,720 KiB; time -v 445,964
# So the column is right about "the largest process", and with today's analyzer that is
# fencepost itself, not the program; the two run at the same time, so the machine held up
# to their sum (about 1 GiB in guard mode above). Read it as a lower bound for fencepost
# and heaptrack (two processes), exact for native, memcheck and LSan (one process).


# ---------------------------------------------------------------------------------------
# Workloads


@dataclasses.dataclass
class Workload:
    name: str
    what: str
    source: str | None  # a C file in bench/workloads, or None for a system program
    full_args: list[str]
    quick_args: list[str]
    program: str | None = None  # a system program (absolute path) when source is None
    input_mb: int = 0  # size of the generated text file the program reads, 0 for none
    quick_input_mb: int = 0


# In a workload's arguments: the generated input file, and bench/workloads.
INPUT = "{input}"
WORKLOADS_PATH = "{workloads}"

WORKLOADS = [
    Workload(
        "compute-nbody",
        "compute-bound, one malloc: the n-body simulation",
        "nbody.c",
        ["5000000"],
        ["500000"],
    ),
    Workload(
        "alloc-binary-trees",
        "allocation-bound: binary trees, millions of 16-byte blocks",
        "binary_trees.c",
        ["16"],
        ["12"],
    ),
    Workload(
        "threads-churn",
        "two threads malloc/realloc/free mixed sizes, 8..4096 bytes",
        "thread_churn.c",
        ["2000000"],
        ["200000"],
    ),
    Workload(
        "deep-stack",
        "every malloc and free 41 frames deep (noinline recursion)",
        "deep_stack.c",
        ["1000000"],
        ["100000"],
    ),
    Workload(
        "live-million",
        "scale: a million 16-48 byte blocks alive at once, then freed",
        "live_million.c",
        ["1000000"],
        ["100000"],
    ),
    Workload(
        "python-dicts",
        "Debian's python3: build, sort, group and serialise a list of dicts",
        None,
        ["-I", WORKLOADS_PATH + "/py_dicts.py", "100000"],
        ["-I", WORKLOADS_PATH + "/py_dicts.py", "10000"],
        program="/usr/bin/python3",
    ),
    Workload(
        "xz",
        "Debian's xz -9 (single-threaded) compressing generated mixed text",
        None,
        ["-9", "-T1", "-c", INPUT],
        ["-9", "-T1", "-c", INPUT],
        program="/usr/bin/xz",
        input_mb=1,
        quick_input_mb=1,
    ),
    Workload(
        "gzip",
        "Debian's gzip -9 compressing generated mixed text",
        None,
        ["-9", "-c", INPUT],
        ["-9", "-c", INPUT],
        program="/usr/bin/gzip",
        input_mb=6,
        quick_input_mb=1,
    ),
]


def make_text(path: Path, megabytes: int) -> None:
    """Writes a deterministic file of mixed text: prose, log lines and CSV rows."""
    rng = random.Random(20240511 + megabytes)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "zen", "dor", "pel", "quin"]
    vocabulary = [
        "".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(3000)
    ]
    # Zipf-like word frequencies, as in natural text.
    weights = [1.0 / (rank + 1) for rank in range(len(vocabulary))]
    levels = ["INFO", "WARN", "DEBUG", "ERROR"]
    target = megabytes * 1024 * 1024
    written = 0
    with open(path, "w", encoding="ascii") as out:
        while written < target:
            chunk: list[str] = []
            kind = rng.random()
            if kind < 0.5:
                for _ in range(20):
                    words = rng.choices(vocabulary, weights, k=rng.randint(6, 16))
                    chunk.append(" ".join(words).capitalize() + ".")
                chunk.append("\n")
            elif kind < 0.8:
                for _ in range(40):
                    chunk.append(
                        "2024-%02d-%02dT%02d:%02d:%02d.%03dZ %s [worker-%d] 10.%d.%d.%d %s %d ms\n"
                        % (
                            rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                            rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999),
                            rng.choice(levels), rng.randint(0, 15), rng.randint(0, 255),
                            rng.randint(0, 255), rng.randint(0, 255),
                            " ".join(rng.choices(vocabulary, weights, k=5)),
                            rng.randint(0, 5000),
                        )
                    )
            else:
                for _ in range(60):
                    chunk.append(
                        "%d,%s,%.4f,%d,%s\n"
                        % (
                            rng.randint(0, 10**9), rng.choice(vocabulary), rng.gauss(0, 100),
                            rng.randint(-1000, 1000), rng.choice(vocabulary),
                        )
                    )
            text = "".join(chunk)
            out.write(text)
            written += len(text)


# ---------------------------------------------------------------------------------------
# Tools


@dataclasses.dataclass
class Tool:
    name: str
    prefix: list[str]  # put before the workload's argv; "{out}" is a per-run scratch path
    env: dict[str, str]
    compares_output: bool = True  # false when the tool writes to the program's stdout
    missing: str | None = None  # why the tool can not run on this machine


NATIVE = "native"
GUARD = "fencepost guard"
FAST = "fencepost fast"
SAMPLED = "fencepost sampled"
MEMCHECK = "memcheck"
HEAPTRACK = "heaptrack"
LSAN = "LSan"
TOOL_NAMES = [NATIVE, GUARD, FAST, SAMPLED, MEMCHECK, HEAPTRACK, LSAN]
TOOL_KEYS = {
    "native": NATIVE, "guard": GUARD, "fast": FAST, "sampled": SAMPLED,
    "memcheck": MEMCHECK, "heaptrack": HEAPTRACK, "lsan": LSAN,
}
FENCEPOST_MODES = [GUARD, FAST, SAMPLED]
PEERS = [MEMCHECK, HEAPTRACK, LSAN]


def find_liblsan() -> str | None:
    candidates = []
    try:
        printed = subprocess.run(
            ["gcc", "-print-file-name=liblsan.so.0"], capture_output=True, text=True, check=False
        ).stdout.strip()
        # gcc prints the bare name back when it does not know the file.
        if os.sep in printed:
            candidates.append(printed)
    except OSError:
        pass
    candidates.append("/usr/lib/x86_64-linux-gnu/liblsan.so.0")
    for c in candidates:
        if os.path.isfile(c):
            return os.path.realpath(c)
    return None


def make_tools(fencepost: Path | None) -> list[Tool]:
    tools = [Tool(NATIVE, [], {})]
    for name, mode in [(GUARD, "guard"), (FAST, "fast"), (SAMPLED, "sampled")]:
        if fencepost is None:
            tools.append(Tool(name, [], {}, missing="fencepost was not built"))
        else:
            tools.append(Tool(name, [str(fencepost), "run", f"--mode={mode}", "--"], {}))

    valgrind = shutil.which("valgrind")
    tools.append(
        Tool(MEMCHECK, [valgrind, "--tool=memcheck", "--leak-check=full", "-q"], {})
        if valgrind
        else Tool(MEMCHECK, [], {}, missing="valgrind not found (apt-get install valgrind)")
    )

    heaptrack = shutil.which("heaptrack")
    if heaptrack:
        # The script prints its progress on stdout, so the program's output is not compared.
        tools.append(
            Tool(HEAPTRACK, [heaptrack, "-o", "{out}"], {}, compares_output=False)
        )
    else:
        tools.append(Tool(HEAPTRACK, [], {}, missing="heaptrack not found (apt-get install heaptrack)"))

    lsan = find_liblsan()
    if lsan:
        # exitcode=0: leaks found at exit must not change the exit status (nor count as a
        # failure here); LSan still does its whole leak check, which is what we time.
        tools.append(Tool(LSAN, [], {"LD_PRELOAD": lsan, "LSAN_OPTIONS": "exitcode=0"}))
    else:
        tools.append(
            Tool(LSAN, [], {},
                 missing="liblsan.so.0 not found; install the Debian package liblsan0 "
                         "(apt-get install liblsan0)")
        )
    return tools


def tool_version(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    lines = (p.stdout or p.stderr).strip().splitlines()
    return lines[0] if lines else "?"


# ---------------------------------------------------------------------------------------
# Running


@dataclasses.dataclass
class RunResult:
    wall: float
    maxrss_kib: int
    failure: str | None  # None when the run succeeded
    stderr_tail: str = ""


def describe_status(status: int) -> str | None:
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return None
    if code < 0:
        try:
            return f"failed ({signal.Signals(-code).name})"
        except ValueError:
            return f"failed (signal {-code})"
    return f"failed (exit {code})"


def run_once(measure: Path, argv: list[str], env: dict[str, str], stdout_path: Path,
             stderr_path: Path, timeout: float) -> RunResult:
    """Runs argv to its end under the measure launcher (bench/measure.c): wall time, and
    rusage of the top process from wait4 (see the note on peak RSS at the top)."""
    result_path = stdout_path.with_suffix(".measure")
    file_actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(stdout_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
        (os.POSIX_SPAWN_OPEN, 2, str(stderr_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
    ]
    lock = threading.Lock()
    state = {"reaped": False, "timed_out": False}
    launcher = [str(measure), str(result_path), *argv]
    # A process group of its own, so that a timeout can end the tool and everything it started.
    pid = os.posix_spawn(launcher[0], launcher, env, file_actions=file_actions, setpgroup=0)

    def kill_group() -> None:
        with lock:
            if not state["reaped"]:
                state["timed_out"] = True
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    timer = threading.Timer(timeout, kill_group)
    timer.start()
    _, launcher_status, _ = os.wait4(pid, 0)
    with lock:
        state["reaped"] = True
    timer.cancel()

    wall, maxrss_kib, failure = 0.0, 0, None
    if state["timed_out"]:
        failure = f"failed (timeout {timeout:.0f} s)"
    elif os.waitstatus_to_exitcode(launcher_status) != 0:
        failure = "failed (the measure launcher failed)"
    else:
        ns, status, maxrss = result_path.read_text().split()
        wall, maxrss_kib = int(ns) / 1e9, int(maxrss)  # ru_maxrss is in KiB on Linux
        failure = describe_status(int(status))
    result_path.unlink(missing_ok=True)
    tail = ""
    if failure:
        try:
            tail = stderr_path.read_text(errors="replace")[-2000:]
        except OSError:
            pass
    return RunResult(wall, maxrss_kib, failure, tail)


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclasses.dataclass
class ToolResults:
    walls: list[float] = dataclasses.field(default_factory=list)
    rss_kib: list[int] = dataclasses.field(default_factory=list)
    failure: str | None = None
    detail: str = ""

    def median(self) -> float | None:
        if self.failure or not self.walls:
            return None
        return statistics.median(self.walls)


_failure_dir: Path | None = None


def keep_log(path: Path, name: str) -> Path | str:
    """Copies a failed run's stderr out of the scratch directory (which is removed at the end)."""
    global _failure_dir
    if not path.exists():
        return "(none)"
    if _failure_dir is None:
        _failure_dir = Path(tempfile.mkdtemp(prefix="fencepost-bench-failures."))
    dest = _failure_dir / name
    shutil.copyfile(path, dest)
    return dest


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    # Nothing of the caller's may change how the programs allocate or what gets preloaded.
    for key in list(env):
        if key in ("LD_PRELOAD", "LD_LIBRARY_PATH", "LSAN_OPTIONS", "ASAN_OPTIONS",
                   "FENCEPOST_SHIM", "FENCEPOST_OPTIONS", "VALGRIND_OPTS", "PYTHONMALLOC",
                   "PYTHONSTARTUP", "PYTHONPATH") or key.startswith(("MALLOC_", "GLIBC_TUNABLES")):
            del env[key]
    env["LC_ALL"] = "C"
    return env


def bench_workload(w: Workload, argv: list[str], tools: list[Tool], repeat: int,
                   scratch: Path, measure: Path, timeout: float, verbose: bool) -> dict[str, ToolResults]:
    env0 = base_env()
    results = {t.name: ToolResults() for t in tools}
    for t in tools:
        if t.missing:
            results[t.name].failure = "skipped"
            results[t.name].detail = t.missing

    # One untimed native run: warms the page cache and gives the expected output.
    ref_out = scratch / f"{w.name}.reference.out"
    warm = run_once(measure, argv, env0, ref_out, scratch / f"{w.name}.reference.err", timeout)
    if warm.failure:
        kept = keep_log(scratch / f"{w.name}.reference.err", f"{w.name}.warm-up.stderr")
        print(f"  the native warm-up run {warm.failure}; its stderr: {kept}", file=sys.stderr)
    reference = file_digest(ref_out)
    ref_out.unlink()

    runnable = [t for t in tools if not t.missing]
    for rep in range(repeat):
        # Round-robin, starting one tool later each repetition, so that no tool always runs
        # right after the same neighbour (caches, CPU frequency, a noisy neighbour's burst).
        shift = rep % len(runnable)
        order = runnable[shift:] + runnable[:shift]
        for t in order:
            r = results[t.name]
            if r.failure:
                continue  # a tool that failed once on this workload is not run again
            tag = re.sub(r"\W+", "_", t.name)
            out = scratch / f"{w.name}.{tag}.out"
            err = scratch / f"{w.name}.{tag}.err"
            ht_out = scratch / f"heaptrack.{w.name}"
            prefix = [a.replace("{out}", str(ht_out)) for a in t.prefix]
            env = dict(env0)
            env.update(t.env)
            res = run_once(measure, prefix + argv, env, out, err, timeout)
            if res.failure is None and t.compares_output:
                if file_digest(out) != reference:
                    res.failure = "failed (wrong output)"
                    res.stderr_tail = "stdout differs from the native run's"
            if verbose:
                shown = res.failure or f"{res.wall:.3f} s, {res.maxrss_kib / 1024:.1f} MiB"
                print(f"  [{rep + 1}/{repeat}] {t.name:<16} {shown}", file=sys.stderr)
            if res.failure:
                r.failure = res.failure
                r.detail = res.stderr_tail.strip()
                kept = keep_log(err, f"{w.name}.{tag}.stderr")
                print(f"  {t.name} on {w.name}: {res.failure}; its stderr: {kept}",
                      file=sys.stderr)
                for line in r.detail.splitlines()[-8:]:
                    print(f"    | {line}", file=sys.stderr)
            else:
                r.walls.append(res.wall)
                r.rss_kib.append(res.maxrss_kib)
            for p in [out, err, *scratch.glob(f"heaptrack.{w.name}*")]:
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass
    return results


# ---------------------------------------------------------------------------------------
# Reporting


def fmt_ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "—"
    return f"{a / b:.2f}×"


def workload_table(results: dict[str, ToolResults]) -> list[list[str]]:
    header = ["tool", "median s", "min–max s", "× native", "× memcheck", "× heaptrack",
              "× LSan", "peak RSS MiB"]
    rows = [header]
    native = results[NATIVE].median()
    for name in TOOL_NAMES:
        r = results.get(name)
        if r is None:
            continue
        m = r.median()
        if m is None:
            cell = r.failure or "no runs"
            rows.append([name, cell, "", "", "", "", "", ""])
            continue
        spread = f"{min(r.walls):.3f}–{max(r.walls):.3f}" if len(r.walls) > 1 else ""
        peers = ["—", "—", "—"]
        if name in FENCEPOST_MODES:
            peers = [fmt_ratio(m, results[p].median() if p in results else None) for p in PEERS]
        rss = statistics.median(r.rss_kib) / 1024
        rows.append([name, f"{m:.3f}", spread, fmt_ratio(m, native), *peers, f"{rss:.1f}"])
    return rows


def render_markdown_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, r in enumerate(rows):
        out.append("| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(r)) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def mem_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        pass
    return "?"


def git_describe() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "?"
    dirty = git("status", "--porcelain", "--", "crates", "Cargo.toml", "Cargo.lock")
    return head + (" with uncommitted changes in crates/" if dirty else "")


def replace_results(path: Path, section: str) -> None:
    block = f"{RESULTS_BEGIN}\n{section.rstrip()}\n{RESULTS_END}"
    if path.exists():
        text = path.read_text()
        start, end = text.find(RESULTS_BEGIN), text.find(RESULTS_END)
        if start != -1 and end > start:
            text = text[:start] + block + text[end + len(RESULTS_END):]
        else:
            text = text.rstrip() + "\n\n## Results\n\n" + block + "\n"
    else:
        text = "## Results\n\n" + block + "\n"
    path.write_text(text)


# ---------------------------------------------------------------------------------------
# Building


def build_measure(into: Path) -> Path:
    exe = into / "measure"
    cmd = ["gcc", "-O2", "-o", str(exe), str(BENCH_DIR / "measure.c")]
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        sys.exit(f"bench: building measure.c failed:\n{shlex.join(cmd)}\n{p.stderr}")
    return exe


def build_workloads(selected: list[Workload], into: Path) -> dict[str, Path]:
    built = {}
    for w in selected:
        if not w.source:
            continue
        exe = into / Path(w.source).stem
        cmd = ["gcc", "-O2", "-g", "-pthread", "-o", str(exe), str(WORKLOAD_DIR / w.source), "-lm"]
        p = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if p.returncode != 0:
            sys.exit(f"bench: building {w.source} failed:\n{shlex.join(cmd)}\n{p.stderr}")
        built[w.name] = exe
    return built


def build_fencepost(skip: bool) -> tuple[Path | None, str]:
    """Returns the fencepost binary and a note for the report (empty when all is well)."""
    exe = REPO_ROOT / "target" / "release" / "fencepost"
    note = ""
    if not skip:
        print("bench: cargo build --release", file=sys.stderr)
        p = subprocess.run(["cargo", "build", "--release"], cwd=REPO_ROOT,
                           capture_output=True, text=True, check=False)
        if p.returncode != 0:
            tail = "\n".join(p.stderr.strip().splitlines()[-15:])
            if not exe.is_file():
                print(f"bench: cargo build --release failed, and there is no earlier "
                      f"binary; fencepost columns skipped:\n{tail}", file=sys.stderr)
                return None, "cargo build --release failed; fencepost not measured"
            stamp = datetime.datetime.fromtimestamp(exe.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
            note = (f"cargo build --release failed; measured the earlier binary built {stamp}, "
                    f"which may not match the source tree")
            print(f"bench: WARNING: {note}:\n{tail}", file=sys.stderr)
    if not exe.is_file():
        return None, "no target/release/fencepost"
    return exe, note


def snapshot_fencepost(exe: Path, into: Path) -> Path:
    """Copies the binary and its shim (found next to the binary) so that a rebuild during
    the benchmark can not swap them under a running measurement."""
    d = into / "fencepost-bin"
    d.mkdir()
    shutil.copy2(exe, d / "fencepost")
    shim = exe.parent / "libfencepost_shim.so"
    if shim.is_file():
        shutil.copy2(shim, d / "libfencepost_shim.so")
    return d / "fencepost"


# ---------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Run fencepost's benchmark workloads natively and under each tool.")
    ap.add_argument("--repeat", type=int, help="repetitions per tool and workload (default 5)")
    ap.add_argument("--quick", action="store_true",
                    help="1 repetition and small inputs: a smoke test, not a measurement")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help="run only this workload (repeatable, or comma-separated)")
    ap.add_argument("--tools", metavar="LIST",
                    help="comma-separated subset of: " + ",".join(TOOL_KEYS) + " (native always runs)")
    ap.add_argument("--markdown", type=Path, metavar="FILE",
                    help="write the results as Markdown; an existing file gets the part between "
                         f"{RESULTS_BEGIN} and {RESULTS_END} replaced")
    ap.add_argument("--fencepost", type=Path, metavar="PATH",
                    help="measure this fencepost binary (its shim next to it); no cargo build")
    ap.add_argument("--no-build", action="store_true", help="use target/release/fencepost as it is")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per run before it is killed")
    ap.add_argument("--list", action="store_true", help="list the workloads and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every run")
    args = ap.parse_args()

    if args.list:
        for w in WORKLOADS:
            print(f"{w.name:<20} {w.what}")
        return 0

    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 5)
    if repeat < 1:
        ap.error("--repeat must be at least 1")
    selected = WORKLOADS
    if args.only:
        names = [n for o in args.only for n in o.split(",") if n]
        unknown = [n for n in names if n not in {w.name for w in WORKLOADS}]
        if unknown:
            ap.error(f"unknown workload {', '.join(unknown)}; "
                     f"known: {', '.join(w.name for w in WORKLOADS)}")
        selected = [w for w in WORKLOADS if w.name in names]
    wanted = set(TOOL_NAMES)
    if args.tools:
        keys = [k.strip().lower() for k in args.tools.split(",") if k.strip()]
        bad = [k for k in keys if k not in TOOL_KEYS]
        if bad:
            ap.error(f"unknown tool {', '.join(bad)}; known: {', '.join(TOOL_KEYS)}")
        wanted = {NATIVE} | {TOOL_KEYS[k] for k in keys}

    command = shlex.join(["python3", *sys.argv])
    started = datetime.datetime.now().astimezone()
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="fencepost-bench.") as tmp:
        scratch = Path(tmp)
        if args.fencepost:
            fp, build_note = args.fencepost.resolve(), ""
            if not fp.is_file():
                sys.exit(f"bench: {fp}: no such file")
        elif wanted & set(FENCEPOST_MODES):
            fp, build_note = build_fencepost(args.no_build)
        else:
            fp, build_note = None, ""
        fp_snapshot = snapshot_fencepost(fp, scratch) if fp else None

        measure = build_measure(scratch)
        exes = build_workloads(selected, scratch)
        tools = [t for t in make_tools(fp_snapshot) if t.name in wanted]
        for t in tools:
            if t.missing:
                print(f"bench: {t.name}: {t.missing}; column skipped", file=sys.stderr)

        sections = []
        for w in selected:
            input_path = ""
            mb = w.quick_input_mb if args.quick else w.input_mb
            if mb:
                input_path = str(scratch / f"text-{mb}mb.txt")
                if not os.path.exists(input_path):
                    make_text(Path(input_path), mb)
            program = str(exes[w.name]) if w.source else w.program
            if not program or not os.path.isfile(program):
                print(f"bench: {w.name}: {program} not found; skipped", file=sys.stderr)
                continue
            raw_args = w.quick_args if args.quick else w.full_args
            wargs = [a.replace(INPUT, input_path).replace(WORKLOADS_PATH, str(WORKLOAD_DIR))
                     for a in raw_args]
            argv = [program, *wargs]
            shown = " ".join([Path(program).name if w.source else program,
                              *[a.replace(str(scratch) + "/", "")
                                 .replace(str(WORKLOAD_DIR), "bench/workloads") for a in wargs]])
            if mb:
                shown += f"  (text-{mb}mb.txt: {mb} MiB of generated text)"
            print(f"\n## {w.name}: {w.what}\n`{shown}`", file=sys.stderr)
            results = bench_workload(w, argv, tools, repeat, scratch, measure, args.timeout, args.verbose)
            table = render_markdown_table(workload_table(results))
            print(table)
            sys.stdout.flush()
            failures = [f"- {name}: {r.failure}" + (f" — `{r.detail.splitlines()[-1][:200]}`"
                                                    if r.detail else "")
                        for name, r in results.items() if r.failure]
            sections.append(f"### {w.name}\n\n{w.what}: `{shown}`\n\n{table}\n"
                            + ("\n" + "\n".join(failures) + "\n" if failures else ""))

    load_after = os.getloadavg()
    if args.markdown:
        lines = [
            f"Measured {started.strftime('%Y-%m-%d %H:%M %Z')} with `{command}` "
            f"({repeat} repetition{'s' if repeat != 1 else ''} per tool, round-robin"
            f"{'; --quick: small inputs, a smoke test only' if args.quick else ''}).",
            "",
            f"- machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
            f"{cpu_model()}, {mem_total()} RAM, Linux {platform.release()}",
            f"- load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f}",
            f"- fencepost: {git_describe()}" + (f" ({build_note})" if build_note else ""),
            f"- peers: {tool_version(['valgrind', '--version'])}, "
            f"{tool_version(['heaptrack', '--version'])}, "
            f"LSan {find_liblsan() or 'missing'}, "
            f"{tool_version(['gcc', '--version'])}",
            "",
        ]
        replace_results(args.markdown, "\n".join(lines) + "\n" + "\n".join(sections))
        print(f"\nbench: results written to {args.markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
