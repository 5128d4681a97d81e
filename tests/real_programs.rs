//! Real programs from Debian's packages run unchanged under fencepost (issue 6, part 1).
//!
//! Each program runs natively, under `fencepost run --mode=guard`, `--mode=fast` and
//! `--mode=sampled`, and under valgrind memcheck, every run in a fresh copy of the same
//! working directory. What must hold:
//! - stdout and the exit code are the native run's, in every mode;
//! - fencepost reports no error (`errors` is empty) and no warning;
//! - its definite and possible loss records are memcheck's: the same multiset of
//!   (kind, bytes, blocks, innermost frame outside the allocator: function and module),
//!   over every process of the run. Where a program's records legitimately differ, the
//!   workload says why and what is compared instead.
//!
//! `--trace-children` is chosen per program (and given to memcheck too), the default being
//! memcheck's `no`: forked children are always followed, exec'd images only with `yes`.
//! Workloads are sized so that the whole file stays under ~4 minutes on 2 cores: memcheck
//! runs programs 20-50x slower.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

/// How long one run of one step may take (memcheck of gcc with its children is the slowest).
const STEP_TIMEOUT: Duration = Duration::from_secs(150);

/// One program and what is run of it.
struct Workload {
    name: &'static str,
    /// Fills the (fresh, empty) working directory of one run.
    setup: fn(&Path),
    /// The commands run in order in that directory; every one is traced, stdout and exit
    /// code of each are compared. Absolute paths of Debian's binaries (not /usr/local, not
    /// the pyenv shim on PATH).
    steps: Vec<Vec<String>>,
    /// `--trace-children=yes` for fencepost and memcheck.
    trace_children: bool,
    /// Why possible-loss records are not compared, for a program whose interior pointers
    /// depend on addresses (possible leaks are then a matter of where blocks landed).
    possible_differs: Option<&'static str>,
    /// Why a definite record memcheck reports may be `reachable` under fencepost (then
    /// only fencepost-only records fail the test): a written reason, as issue 6 asks.
    memcheck_may_see_more: Option<&'static str>,
}

/// The environment every run of every step gets (on top of the test's own).
fn env_for(dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("HOME", dir.display().to_string()),
        ("LC_ALL", "C".into()),
        ("TZ", "UTC".into()),
        ("GIT_CONFIG_NOSYSTEM", "1".into()),
        ("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z".into()),
        ("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z".into()),
        ("PYTHONDONTWRITEBYTECODE", "1".into()),
        ("PATH", "/usr/bin:/bin".into()),
    ]
}

fn argv(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"));
}

/// One step's outcome.
struct StepRun {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_step(mut cmd: Command, dir: &Path, what: &str) -> StepRun {
    use std::os::unix::process::ExitStatusExt;
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env_for(dir) {
        cmd.env(k, v);
    }
    let child = spawn_in_own_group(&mut cmd);
    let (status, stdout, stderr) = wait_with_output(child, STEP_TIMEOUT, what);
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    StepRun {
        code,
        stdout,
        stderr,
    }
}

/// A loss record as both tools can name it: (kind, bytes, blocks, innermost function
/// outside the allocator).
type Key = (String, u64, u64, Option<String>);

fn base(path: Option<&str>) -> Option<String> {
    path.map(|p| p.rsplit('/').next().unwrap_or(p).to_owned())
}

/// The innermost frame that is not the allocator (memcheck's replacement `malloc` lives in
/// `vgpreload_memcheck-*.so`; fencepost's stacks start at the allocator's caller).
fn innermost(stack: &[Frame]) -> (Option<String>, Option<String>) {
    stack
        .iter()
        .find(|f| !f.module.as_deref().unwrap_or("").contains("vgpreload"))
        .map(|f| (f.function.clone(), base(f.module.as_deref())))
        .unwrap_or((None, None))
}

fn fencepost_keys(report: &Report) -> Vec<Key> {
    let mut keys: Vec<Key> = report
        .leaks()
        .into_iter()
        .filter(|l| matches!(l.kind.as_str(), "definite" | "possible"))
        .map(|l| {
            let (function, _module) = innermost(&l.stack);
            (l.kind, l.bytes, l.blocks, function)
        })
        .collect();
    keys.sort();
    keys
}

/// memcheck's definite and possible loss records over every process of one step, from its
/// text logs (`--log-file=DIR/vg.%p.log`, one per process). The XML is not used here:
/// valgrind 3.19 writes a forked child's XML document into the middle of its parent's, and
/// a child that then exec'd leaves an unclosed preamble there, which cannot be told apart
/// reliably; the text logs are reopened per pid.
fn memcheck_keys(log_dir: &Path) -> Vec<Key> {
    let mut keys = Vec::new();
    for entry in std::fs::read_dir(log_dir)
        .expect("memcheck output dir")
        .flatten()
    {
        if entry.path().extension().is_none_or(|x| x != "log") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).expect("read memcheck log");
        // Strip the `==PID== ` prefix.
        let lines: Vec<&str> = text
            .lines()
            .map(|l| l.split_once("== ").map(|(_, rest)| rest).unwrap_or(l))
            .collect();
        for (i, line) in lines.iter().enumerate() {
            let kind = if line.contains(" are definitely lost in loss record ") {
                "definite"
            } else if line.contains(" are possibly lost in loss record ") {
                "possible"
            } else {
                continue;
            };
            // "320 (32 direct, 288 indirect) bytes in 1 blocks ..." or "24 bytes in 1 blocks ..."
            let number = |s: &str| s.replace(',', "").trim().parse::<u64>().unwrap_or(0);
            let bytes = match line.split_once(" (") {
                Some((_, rest)) if rest.contains(" direct, ") => {
                    number(rest.split(" direct").next().unwrap())
                }
                _ => number(line.split(" bytes in ").next().unwrap()),
            };
            let blocks = number(
                line.split(" bytes in ")
                    .nth(1)
                    .and_then(|r| r.split(' ').next())
                    .unwrap_or("0"),
            );
            // The innermost frame outside memcheck's allocator replacement.
            let function = lines[i + 1..]
                .iter()
                .take_while(|l| {
                    l.trim_start().starts_with("at ") || l.trim_start().starts_with("by ")
                })
                .find(|l| !l.contains("vg_replace_malloc") && !l.contains("vgpreload"))
                .and_then(|l| l.split_once(": ").map(|(_, f)| f))
                .and_then(|f| f.split(" (").next())
                .filter(|f| *f != "???")
                .map(str::to_owned);
            keys.push((kind.to_owned(), bytes, blocks, function));
        }
    }
    keys.sort();
    keys
}

/// The differences between two sorted multisets, for a readable failure.
fn diff(fp: &[Key], vg: &[Key]) -> String {
    let mut count: BTreeMap<&Key, i64> = BTreeMap::new();
    for k in fp {
        *count.entry(k).or_default() += 1;
    }
    for k in vg {
        *count.entry(k).or_default() -= 1;
    }
    count
        .into_iter()
        .filter(|(_, n)| *n != 0)
        .map(|(k, n)| {
            let who = if n > 0 {
                "only fencepost"
            } else {
                "only memcheck"
            };
            format!("  {who} x{}: {k:?}\n", n.abs())
        })
        .collect()
}

/// A fresh working directory for one run of the workload.
fn fresh_dir(w: &Workload, variant: &str) -> PathBuf {
    let dir = scratch_dir(&format!("{}-{variant}", w.name)).join("work");
    std::fs::create_dir_all(&dir).expect("create work dir");
    (w.setup)(&dir);
    dir
}

/// Runs the workload natively, under fencepost in each mode and under memcheck; asserts
/// the module doc's contract.
fn check(w: Workload) {
    let native_dir = fresh_dir(&w, "native");
    let native: Vec<StepRun> = w
        .steps
        .iter()
        .map(|step| {
            let mut cmd = Command::new(&step[0]);
            cmd.args(&step[1..]);
            run_step(cmd, &native_dir, &format!("native {step:?}"))
        })
        .collect();

    let children = if w.trace_children { "yes" } else { "no" };
    let memcheck_dir = fresh_dir(&w, "memcheck");
    let mut vg_keys = Vec::new();
    for (i, step) in w.steps.iter().enumerate() {
        let log_dir = scratch_dir(&format!("{}-memcheck-{i}", w.name));
        let mut cmd = Command::new("valgrind");
        cmd.args([
            "--tool=memcheck",
            "--leak-check=full",
            "--show-leak-kinds=definite,possible",
            "--num-callers=24",
        ])
        .arg(format!("--trace-children={children}"))
        .arg(format!("--log-file={}/vg.%p.log", log_dir.display()))
        .args(step);
        let run = run_step(cmd, &memcheck_dir, &format!("memcheck {step:?}"));
        assert_eq!(
            run.code, native[i].code,
            "{}: memcheck changed the exit code of {step:?}\nstderr:\n{}",
            w.name, run.stderr
        );
        vg_keys.extend(memcheck_keys(&log_dir));
    }
    vg_keys.sort();
    if w.possible_differs.is_some() {
        vg_keys.retain(|k| k.0 != "possible");
    }

    let mut failures = String::new();
    for mode in ["guard", "fast", "sampled"] {
        let dir = fresh_dir(&w, mode);
        let mut fp_keys = Vec::new();
        // Every definite or possible record, with its step, process and whole stack: what
        // a failure prints, since a mismatch seen once may not come back on demand.
        let mut fp_records: Vec<(Key, String)> = Vec::new();
        for (i, step) in w.steps.iter().enumerate() {
            let json = scratch_dir(&format!("{}-{mode}-json-{i}", w.name)).join("report.json");
            let mut cmd = Command::new(fencepost_bin());
            cmd.arg("run")
                .arg(format!("--mode={mode}"))
                .arg(format!("--trace-children={children}"))
                .arg("--json")
                .arg(&json)
                .arg("--")
                .args(step);
            let run = run_step(cmd, &dir, &format!("fencepost --mode={mode} {step:?}"));
            let report = Report::read(&json, &run.stderr);
            let what = format!("{} --mode={mode} step {step:?}", w.name);
            assert_eq!(
                run.code, native[i].code,
                "{what}: exit code differs from the native run\nstderr:\n{}",
                run.stderr
            );
            assert_eq!(
                run.stdout, native[i].stdout,
                "{what}: stdout differs from the native run"
            );
            let errors: Vec<String> = report
                .errors()
                .iter()
                .map(|e| format!("{} {:?} {:?}", e.kind, e.message, innermost(&e.stack)))
                .collect();
            assert!(
                errors.is_empty(),
                "{what}: fencepost reports errors the program does not have: {errors:#?}"
            );
            let warnings = &report.json["warnings"];
            assert!(
                warnings.as_array().is_some_and(|w| w.is_empty()),
                "{what}: warnings {warnings}"
            );
            assert_books_balance(&report);
            fp_keys.extend(fencepost_keys(&report));
            for l in report.leaks() {
                if !matches!(l.kind.as_str(), "definite" | "possible") {
                    continue;
                }
                let exe = report.json["processes"]
                    .as_array()
                    .and_then(|ps| ps.iter().find(|p| p["pid"].as_u64() == Some(l.pid)))
                    .and_then(|p| p["exe"].as_str())
                    .unwrap_or("?")
                    .to_owned();
                let functions: Vec<String> = l
                    .stack
                    .iter()
                    .map(|f| f.function.clone().unwrap_or_else(|| "?".into()))
                    .collect();
                let (function, _) = innermost(&l.stack);
                fp_records.push((
                    (l.kind.clone(), l.bytes, l.blocks, function),
                    format!("step {i}, pid {} {exe}: {}", l.pid, functions.join(" < ")),
                ));
            }
        }
        fp_keys.sort();
        if w.possible_differs.is_some() {
            fp_keys.retain(|k| k.0 != "possible");
        }
        let only_fencepost = {
            let mut vg = vg_keys.clone();
            fp_keys
                .iter()
                .any(|k| match vg.iter().position(|v| v == k) {
                    Some(i) => {
                        vg.remove(i);
                        false
                    }
                    None => true,
                })
        };
        let differs = match w.memcheck_may_see_more {
            Some(_) => only_fencepost,
            None => fp_keys != vg_keys,
        };
        if differs {
            let differing = diff(&fp_keys, &vg_keys);
            let detail: String = fp_records
                .iter()
                .filter(|(k, _)| differing.contains(&format!("{k:?}")))
                .map(|(k, d)| format!("    fencepost {k:?}: {d}\n"))
                .collect();
            failures.push_str(&format!(
                "--mode={mode}: definite/possible loss records differ from memcheck's \
                 (kind, bytes, blocks, function):\n{differing}{detail}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}:\n{failures}", w.name);
}

#[test]
fn python3_with_threads_and_subprocess() {
    // trace-children=no: the subprocesses are /bin/echo and /bin/sh, not what is checked;
    // CPython forks them with vfork, so no forked image of python3 is left to follow.
    fn setup(dir: &Path) {
        write(
            dir,
            "work.py",
            r#"import threading, subprocess, json, hashlib
results = {}
def work(i):
    h = hashlib.sha256()
    for j in range(2000):
        h.update(str(i * j).encode())
    results[i] = h.hexdigest()[:12]
threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(results, sort_keys=True))
print(subprocess.run(["/bin/echo", "from a child"], capture_output=True, text=True).stdout, end="")
p = subprocess.Popen(["/bin/sh", "-c", "tr a-z A-Z"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
print(p.communicate("piped through sh\n")[0], end="")
print(sorted({i: str(i) * 3 for i in range(500)}.items())[-1])
"#,
        );
    }
    check(Workload {
        name: "python3",
        setup,
        steps: vec![argv(&["/usr/bin/python3", "work.py"])],
        trace_children: false,
        possible_differs: None,
        memcheck_may_see_more: None,
    });
}

#[test]
fn git_init_commit_log_gc() {
    // trace-children=no: every git command is checked as the first image; `git gc` execs
    // `git repack`/`pack-objects`, which run natively (memcheck's default, too).
    fn setup(dir: &Path) {
        for i in 0..20 {
            write(
                dir,
                &format!("file{i}.txt"),
                &format!("line {i}\n").repeat(50),
            );
        }
    }
    let git = |args: &[&str]| {
        let mut v = argv(&[
            "/usr/bin/git",
            "-c",
            "user.name=Test",
            "-c",
            "user.email=t@e.x",
        ]);
        v.extend(argv(args));
        v
    };
    check(Workload {
        name: "git",
        setup,
        steps: vec![
            git(&["init", "-q", "-b", "main", "."]),
            git(&["add", "."]),
            git(&["commit", "-q", "-m", "first"]),
            git(&["log", "--stat", "--format=%H %s"]),
            git(&["gc", "-q"]),
            git(&["count-objects", "-v"]),
        ],
        trace_children: false,
        possible_differs: None,
        memcheck_may_see_more: None,
    });
}

#[test]
fn gcc_compiles_a_c_file() {
    // trace-children=yes: gcc is a driver; the compiler proper (cc1) and the assembler are
    // exec'd, and they are what does the work.
    fn setup(dir: &Path) {
        write(
            dir,
            "hello.c",
            "#include <stdio.h>\nstruct p { int x, y; };\nstatic int sq(int v) { return v * v; }\n\
             int main(void) { struct p a = {3, 4}; printf(\"%d\\n\", sq(a.x) + sq(a.y)); return 0; }\n",
        );
    }
    check(Workload {
        name: "gcc",
        setup,
        steps: vec![
            argv(&["/usr/bin/gcc", "-O1", "-c", "hello.c", "-o", "hello.o"]),
            argv(&[
                "/usr/bin/gcc",
                "-v",
                "-E",
                "-x",
                "c",
                "/dev/null",
                "-o",
                "/dev/null",
            ]),
        ],
        trace_children: true,
        possible_differs: None,
        memcheck_may_see_more: None,
    });
}

#[test]
fn sqlite3_workload() {
    // trace-children=no: sqlite3 runs no other program.
    fn setup(dir: &Path) {
        write(
            dir,
            "work.sql",
            "create table t(a integer primary key, b text);\n\
             with recursive c(x) as (select 1 union all select x+1 from c where x<4000)\n\
               insert into t(b) select printf('row%d', x) from c;\n\
             create index ib on t(b);\n\
             select count(*), sum(a) from t where b like 'row1%';\n\
             update t set b = b || 'x' where a % 3 = 0;\n\
             delete from t where a % 7 = 0;\n\
             select count(*), max(b), group_concat(a) filter (where a < 20) from t;\n\
             vacuum;\n",
        );
    }
    check(Workload {
        name: "sqlite3",
        setup,
        steps: vec![argv(&["/usr/bin/sqlite3", "db.sqlite", ".read work.sql"])],
        trace_children: false,
        possible_differs: None,
        memcheck_may_see_more: None,
    });
}

#[test]
fn perl_script() {
    // trace-children=no: the script runs no other program. perl does not free its
    // interpreter at exit (PERL_DESTRUCT_LEVEL=0), so both tools see many loss records.
    fn setup(dir: &Path) {
        write(
            dir,
            "work.pl",
            "my %h; for my $i (1..20000) { $h{\"k$i\"} = [$i, 'v' x ($i % 10)]; }\n\
             my @k = sort keys %h; print scalar(@k), \" $k[0] $k[-1]\\n\";\n\
             my $s = join(',', map { $_ * 2 } 1..1000); print length($s), \"\\n\";\n\
             my $t = 'abc' x 100; $t =~ s/b/B/g; print substr($t, 0, 9), \"\\n\";\n",
        );
    }
    check(Workload {
        name: "perl",
        setup,
        steps: vec![argv(&["/usr/bin/perl", "work.pl"])],
        trace_children: false,
        possible_differs: Some(
            "perl's possible records (some 4,000 blocks in its SV arenas) are held by \
             interior pointers; a handful of blocks per record (63 vs 66) move between \
             possible and reachable with the addresses blocks get. Definite records match.",
        ),
        memcheck_may_see_more: None,
    });
}

#[test]
fn bash_script_with_pipes() {
    // trace-children=no: bash forks for every pipeline stage and subshell (followed), and
    // the forked copies exec seq, grep, sort, head, tr (not followed). The script ends with
    // `exit 3` so the exit code is passed through.
    fn setup(dir: &Path) {
        write(
            dir,
            "work.sh",
            "for i in $(seq 1 200); do echo \"line $i\"; done | grep 1 | sort -r | head -5\n\
             x=$(echo abc | tr a-c x-z); echo \"$x\"\n\
             declare -A m; for i in {1..1000}; do m[$i]=$((i*i)); done; echo ${m[1000]}\n\
             f() { local v=\"$1\"; echo \"${v^^}\"; }; f hello | cat\n\
             exit 3\n",
        );
    }
    check(Workload {
        name: "bash",
        setup,
        steps: vec![argv(&["/usr/bin/bash", "work.sh"])],
        trace_children: false,
        possible_differs: None,
        memcheck_may_see_more: Some(
            "a forked subshell exits from deep inside execute_command; memcheck reports a \
             copy_command block (32 direct, 192 indirect) definitely lost there, which \
             fencepost finds reachable through a stale copy of its address in an \
             uninitialised slot of a live frame: the shim runs on the program's stack \
             (memcheck's allocator does not) and leaves such copies behind. Known, in \
             docs/reliability.md; fencepost must still report nothing memcheck does not.",
        ),
    });
}

/// ~300 KB of text, the same in every run.
fn numbers_file(dir: &Path) {
    let text: String = (0..40_000u64)
        .map(|i| format!("{}\n", (i * 2_654_435_761) % 1_000_003))
        .collect();
    write(dir, "numbers.txt", &text);
}

#[test]
fn xz_round_trip() {
    // trace-children=no: xz runs no other program.
    check(Workload {
        name: "xz",
        setup: numbers_file,
        steps: vec![
            argv(&["/usr/bin/xz", "-3", "-k", "numbers.txt"]),
            argv(&["/usr/bin/xz", "-t", "-v", "numbers.txt.xz"]),
            argv(&["/usr/bin/xz", "-d", "-c", "numbers.txt.xz"]),
        ],
        trace_children: false,
        possible_differs: None,
        memcheck_may_see_more: None,
    });
}

#[test]
fn gzip_round_trip() {
    // trace-children=no: gzip runs no other program.
    check(Workload {
        name: "gzip",
        setup: numbers_file,
        steps: vec![
            argv(&["/usr/bin/gzip", "-9", "-k", "numbers.txt"]),
            argv(&["/usr/bin/gzip", "-d", "-c", "numbers.txt.gz"]),
        ],
        trace_children: false,
        possible_differs: None,
        memcheck_may_see_more: None,
    });
}

#[test]
fn make_on_a_tiny_makefile() {
    // trace-children=no: make's recipes run in /bin/sh (fork, then exec): the forked make
    // images are followed, the shells are not.
    fn setup(dir: &Path) {
        write(
            dir,
            "Makefile",
            "all: c.txt\n\tcat c.txt\n\
             a.txt:\n\techo made a > a.txt\n\
             b.txt: a.txt\n\ttr a-z A-Z < a.txt > b.txt\n\
             c.txt: a.txt b.txt\n\tcat a.txt b.txt > c.txt\n",
        );
    }
    check(Workload {
        name: "make",
        setup,
        steps: vec![
            argv(&["/usr/bin/make", "-s"]),
            argv(&["/usr/bin/make", "-q", "all"]),
        ],
        trace_children: false,
        possible_differs: None,
        memcheck_may_see_more: None,
    });
}

#[test]
fn sort_a_large_file() {
    // trace-children=no: sort runs no other program (its threads are followed).
    check(Workload {
        name: "sort",
        setup: numbers_file,
        steps: vec![
            argv(&["/usr/bin/sort", "-n", "numbers.txt"]),
            argv(&["/usr/bin/sort", "-u", "-r", "numbers.txt"]),
        ],
        trace_children: false,
        possible_differs: None,
        memcheck_may_see_more: None,
    });
}

#[test]
fn find_a_tree() {
    // trace-children=no: -exec runs /bin/echo in a forked find; that is not followed.
    fn setup(dir: &Path) {
        for d in 0..10 {
            let sub = dir.join(format!("d{d}")).join("inner");
            std::fs::create_dir_all(&sub).unwrap();
            for f in 0..10 {
                write(&sub, &format!("f{f}.txt"), &"x".repeat(d * 100 + f));
            }
        }
    }
    check(Workload {
        name: "find",
        setup,
        steps: vec![
            argv(&["/usr/bin/find", ".", "-name", "f1*", "-size", "+300c"]),
            argv(&[
                "/usr/bin/find",
                ".",
                "-type",
                "d",
                "-name",
                "d3",
                "-exec",
                "/bin/echo",
                "found",
                "{}",
                ";",
            ]),
        ],
        trace_children: false,
        possible_differs: None,
        memcheck_may_see_more: None,
    });
}

/// Found by `bash_script_with_pipes` (bash's unwind-protect list): a block whose size is
/// not a multiple of 8 holds pointers at 8-aligned offsets from its start (a struct with a
/// flexible array member, `malloc(offsetof(struct s, name) + len)`). Guard mode aligns
/// such a block only to its size's natural alignment, so its pointer fields sit at
/// addresses that are not multiples of 8; the leak scan reads only 8-aligned words and
/// misses them, and the blocks they point to are reported lost. memcheck and fast mode
/// (glibc's 16-byte alignment) find them reachable.
#[test]
fn guard_mode_leak_scan_finds_pointers_in_odd_sized_blocks() {
    let run = run_fencepost(
        "flex_member_guard",
        &["--mode=guard"],
        &prog("flex_member"),
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    assert_eq!(run.stdout, "3 names\n");
    let lost: Vec<_> = run
        .report
        .leaks()
        .into_iter()
        .filter(|l| l.kind != "reachable")
        .map(|l| (l.user_line(&["flex_member.c"]), l.kind, l.bytes, l.blocks))
        .collect();
    assert!(
        lost.is_empty(),
        "every block is reachable from the global list (memcheck: 0 lost), got {lost:#?}"
    );
    let fast = run_fencepost(
        "flex_member_fast",
        &["--mode=fast"],
        &prog("flex_member"),
        &[],
    );
    assert!(
        fast.report.leaks().iter().all(|l| l.kind == "reachable"),
        "{}",
        fast.report.pretty()
    );
}
