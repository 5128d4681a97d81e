#!/usr/bin/env python3
"""Regenerates docs/tutorial.md from docs/tutorial/template.md, so the tutorial shows what
fencepost really prints.

The template is Markdown with two directives, each alone on a line:

    @@SOURCE c/leak_definite.c@@          the program from testprogs/, without its header
                                          comment, as a C code block
    @@RUN leak_definite [OPTIONS]@@       builds testprogs/c/leak_definite.c (gcc -g -O0),
                                          runs `fencepost run [OPTIONS] -- ./leak_definite`
                                          in a scratch directory, and shows the command and
                                          the text report (stderr) with the exit status

Process ids, thread ids and long hex addresses change from run to run; they are masked
(pid 4242, 0x...), so the output is the same on every run of the same build.

Usage:
    docs/tutorial/generate.py            write docs/tutorial.md
    docs/tutorial/generate.py --check    exit 1 (and show a diff) if docs/tutorial.md is
                                         not what the template and fencepost produce now

The fencepost binary is $FENCEPOST, else target/release/fencepost (build it first with
`cargo build --release`). Needs gcc.
"""
import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATE = os.path.join(ROOT, "docs", "tutorial", "template.md")
OUTPUT = os.path.join(ROOT, "docs", "tutorial.md")
TESTPROGS = os.path.join(ROOT, "testprogs")


def fencepost_bin():
    path = os.environ.get("FENCEPOST") or os.path.join(ROOT, "target", "release", "fencepost")
    if not os.path.isfile(path):
        sys.exit(f"generate.py: no fencepost binary at {path} (cargo build --release, or set FENCEPOST)")
    return path


def strip_header(text):
    """The program without its leading /* ... */ comment (the test expectations)."""
    m = re.match(r"\s*/\*.*?\*/\s*\n", text, re.S)
    return text[m.end():] if m else text


def mask(report):
    report = re.sub(r"\(pid \d+\)", "(pid 4242)", report)
    report = re.sub(r"\bpid \d+\b", "pid 4242", report)
    report = re.sub(r"\[thread \d+\]", "[thread 4243]", report)
    report = re.sub(r"0x[0-9a-f]{5,}", "0x...", report)
    return report


def run(directive, scratch, fencepost):
    words = shlex.split(directive)
    name, options = words[0], words[1:]
    source = os.path.join(TESTPROGS, "c", name + ".c")
    exe = os.path.join(scratch, name)
    if not os.path.exists(exe):
        subprocess.run(["gcc", "-g", "-O0", "-o", exe, source], check=True)
    # stdout is a pipe, as in CI, so stdio buffers the same way on every run.
    done = subprocess.run(
        [fencepost, "run", *options, "--", "./" + name],
        cwd=scratch,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )
    command = " ".join(["fencepost", "run", *options, "--", "./" + name])
    return (
        f"```console\n$ gcc -g -O0 -o {name} testprogs/c/{name}.c\n$ {command}\n```\n\n"
        f"```text\n{mask(done.stderr).rstrip()}\n```\n\n"
        f"(exit status {done.returncode}; the program's own output is not shown)\n"
    )


def generate():
    fencepost = fencepost_bin()
    with open(TEMPLATE) as f:
        template = f.read()
    out = []
    with tempfile.TemporaryDirectory(prefix="fencepost-tutorial-") as scratch:
        # Run fencepost (and so the shim, whose path the dynamic loader copies to the heap)
        # from the scratch directory: the heap totals must not depend on where the
        # checkout is.
        bindir = os.path.join(scratch, "bin")
        os.mkdir(bindir)
        for f in (fencepost, os.path.join(os.path.dirname(fencepost), "libfencepost_shim.so")):
            shutil.copy2(f, bindir)
        fencepost = os.path.join(bindir, "fencepost")
        for line in template.splitlines(keepends=True):
            m = re.fullmatch(r"@@(SOURCE|RUN) (.+)@@\n?", line)
            if not m:
                out.append(line)
            elif m.group(1) == "SOURCE":
                with open(os.path.join(TESTPROGS, m.group(2))) as f:
                    out.append("```c\n" + strip_header(f.read()).rstrip() + "\n```\n")
            else:
                out.append(run(m.group(2), scratch, fencepost))
    return "".join(out)


def main():
    text = generate()
    if "--check" in sys.argv[1:]:
        with open(OUTPUT) as f:
            committed = f.read()
        if committed != text:
            sys.stdout.writelines(
                difflib.unified_diff(
                    committed.splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    "docs/tutorial.md (committed)",
                    "docs/tutorial.md (generated now)",
                )
            )
            print("\ndocs/tutorial.md is stale: run docs/tutorial/generate.py", file=sys.stderr)
            return 1
        return 0
    with open(OUTPUT, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
