//! Shared code of the end-to-end tests: build the programs in `testprogs/`, run them
//! under `fencepost run --json`, read the report, and get valgrind memcheck's second
//! opinion on the same program.
//!
//! Every test binary (`tests/*.rs`) includes this module with `mod support;`; each uses
//! a part of it, hence the `dead_code` allowance.
#![allow(dead_code, unused_imports)]

pub mod cli;
pub mod report;
pub mod testprogs;
pub mod valgrind;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use report::{Access, Frame, LossRecord, Report, ReportedError};
pub use testprogs::{marker_line, prog, source_path, testprog_dir};

/// The repository root (the workspace root is this test package).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Cargo's target directory, where the release build of fencepost lives.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                repo_root().join(dir)
            }
        }
        None => repo_root().join("target"),
    }
}

/// The fencepost binary under test: `$FENCEPOST_BIN`, else `target/release/fencepost`.
pub fn fencepost_bin() -> PathBuf {
    let bin = match std::env::var_os("FENCEPOST_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => target_dir().join("release").join("fencepost"),
    };
    assert!(
        bin.is_file(),
        "fencepost binary not found at {} (run `cargo build --release --workspace` first, \
         or set FENCEPOST_BIN)",
        bin.display()
    );
    bin
}

/// How long one traced program may run before the test kills it and fails. Generous:
/// the stress program makes 1.6 million allocations, and CI machines are shared.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// The outcome of one `fencepost run`.
pub struct FencepostRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub report: Report,
}

impl FencepostRun {
    /// fencepost's own exit code (a signal death of fencepost itself is a failure).
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or_else(|| {
            panic!(
                "fencepost itself died: {:?}\nstderr:\n{}",
                self.status, self.stderr
            )
        })
    }
}

/// A scratch directory for one test's outputs, unique within this test run.
pub fn scratch_dir(test_name: &str) -> PathBuf {
    let dir = testprogs::run_dir().join("out").join(test_name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Runs `fencepost run [options] --json OUT -- prog args` and reads the JSON report.
pub fn run_fencepost(
    test_name: &str,
    options: &[&str],
    prog: &Path,
    args: &[&str],
) -> FencepostRun {
    run_fencepost_env(test_name, options, prog, args, &[])
}

/// As [`run_fencepost`], with extra environment variables for fencepost and the program.
pub fn run_fencepost_env(
    test_name: &str,
    options: &[&str],
    prog: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> FencepostRun {
    let json = scratch_dir(test_name).join("report.json");
    let mut cmd = fencepost_command(options, &json, prog, args);
    cmd.envs(env.iter().copied());
    complete_run(cmd, &json, prog)
}

/// As [`run_fencepost`], with fencepost started by `wrapper` (`wrapper fencepost run ...`):
/// a launcher that changes what the process may do before it execs its arguments.
pub fn run_fencepost_under(
    test_name: &str,
    wrapper: &Path,
    options: &[&str],
    prog: &Path,
    args: &[&str],
) -> FencepostRun {
    let json = scratch_dir(test_name).join("report.json");
    let inner = fencepost_command(options, &json, prog, args);
    let mut cmd = Command::new(wrapper);
    cmd.arg(inner.get_program()).args(inner.get_args());
    complete_run(cmd, &json, prog)
}

/// Runs a prepared `fencepost run` command to its end and reads the report at `json`.
fn complete_run(mut cmd: Command, json: &Path, prog: &Path) -> FencepostRun {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = spawn_in_own_group(&mut cmd);
    let (status, stdout, stderr) = wait_with_output(
        child,
        RUN_TIMEOUT,
        &format!("fencepost run {}", prog.display()),
    );
    let report = Report::read(json, &stderr);
    FencepostRun {
        status,
        stdout,
        stderr,
        report,
    }
}

/// `fencepost run --json OUT -- sigkill_wait` started in its own process group and
/// waited on until the program prints `ready <pid>` (its blocks are allocated): the child
/// (fencepost), the report's path and the program's pid. A program that never says it
/// within a minute is killed and the test fails.
pub fn start_sigkill_wait(test_name: &str) -> (Child, PathBuf, u32) {
    use std::io::{BufRead, BufReader};
    let json = scratch_dir(test_name).join("report.json");
    let mut cmd = fencepost_command(&[], &json, &testprogs::prog("sigkill_wait"), &[]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_in_own_group(&mut cmd);
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(line) => line,
        Err(_) => {
            kill_9(&format!("-{}", child.id()));
            panic!("sigkill_wait never said ready under fencepost");
        }
    };
    let pid = line
        .strip_prefix("ready ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (child, json, pid)
}

/// The command line of `fencepost run`, for tests that drive the process themselves.
pub fn fencepost_command(options: &[&str], json: &Path, prog: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(fencepost_bin());
    cmd.arg("run")
        .args(options)
        .arg("--json")
        .arg(json)
        .arg("--")
        .arg(prog)
        .args(args);
    cmd
}

/// Spawns `cmd` as the leader of a new process group, so that a timeout can kill the
/// whole tree (fencepost and the traced program).
pub fn spawn_in_own_group(cmd: &mut Command) -> Child {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {:?}: {e}", cmd.get_program()))
}

/// Sends SIGKILL to a process group (or, with a positive id, a process).
pub fn kill_9(target: &str) {
    let _ = Command::new("kill").args(["-KILL", "--", target]).status();
}

/// Waits for `child` with a deadline, collecting stdout and stderr (when piped).
pub fn wait_with_output(
    mut child: Child,
    timeout: Duration,
    what: &str,
) -> (ExitStatus, String, String) {
    let out = child.stdout.take().map(reader_thread);
    let err = child.stderr.take().map(reader_thread);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if start.elapsed() > timeout {
            kill_9(&format!("-{}", child.id()));
            let _ = child.wait();
            let stderr = err
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default();
            panic!("{what} did not finish within {timeout:?}; killed\nstderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = out
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    let stderr = err
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    (status, stdout, stderr)
}

fn reader_thread<R: Read + Send + 'static>(mut pipe: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The invariant: nothing is lost on the way from the shim to the report.
pub fn assert_books_balance(report: &Report) {
    let (allocations, frees) = (
        report.summary_u64("allocations"),
        report.summary_u64("frees"),
    );
    let blocks: u64 = report.leaks().iter().map(|l| l.blocks).sum();
    assert_eq!(
        allocations.checked_sub(frees),
        Some(blocks),
        "summary.allocations ({allocations}) - summary.frees ({frees}) must equal the \
         blocks in all loss records ({blocks})\n{}",
        report.pretty()
    );
}

/// The loss records of one kind.
pub fn leaks_of_kind(report: &Report, kind: &str) -> Vec<LossRecord> {
    report
        .leaks()
        .into_iter()
        .filter(|l| l.kind == kind)
        .collect()
}

/// No error, and one definite leak: one block of `bytes` allocated at the line marked
/// `FP:leak` in `file` (testprogs/c).
pub fn no_error_and_one_definite_leak(report: &Report, mode: &str, file: &str, bytes: u64) {
    assert!(report.errors().is_empty(), "{mode}\n{}", report.pretty());
    let lost: Vec<_> = leaks_of_kind(report, "definite")
        .into_iter()
        .map(|l| (l.bytes, l.blocks, l.user_line(&[file])))
        .collect();
    let line = marker_line(&format!("c/{file}"), "leak");
    assert_eq!(
        lost,
        vec![(bytes, 1, Some((file.to_owned(), line)))],
        "{mode}\n{}",
        report.pretty()
    );
}

/// Asserts there is no definite, indirect or possible leak and no error.
pub fn assert_no_error_and_no_loss(report: &Report) {
    assert!(
        report.errors().is_empty(),
        "expected no error\n{}",
        report.pretty()
    );
    let lost: Vec<_> = report
        .leaks()
        .into_iter()
        .filter(|l| matches!(l.kind.as_str(), "definite" | "indirect" | "possible"))
        .collect();
    assert!(
        lost.is_empty(),
        "expected no definite/indirect/possible leak, got {lost:#?}"
    );
}
