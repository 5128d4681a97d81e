//! Running the `fencepost` binary with any arguments (not only `run --json`), for the
//! tests of its command line: bad input, `record`/`report`, text-report options.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{fencepost_bin, spawn_in_own_group, wait_with_output};

/// How long a fencepost invocation that is expected to fail fast may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// The outcome of one fencepost invocation.
#[derive(Debug)]
pub struct CliRun {
    /// The shell's view of the status: the exit code, or 128+N if fencepost itself died
    /// of signal N (which is always a failure of fencepost, never the program's).
    pub code: i32,
    /// Whether fencepost itself was killed by a signal.
    pub killed: bool,
    pub stdout: String,
    pub stderr: String,
    /// The command, for failure messages.
    pub what: String,
}

/// Runs `fencepost ARGS...` with extra environment variables, stdin closed, and
/// `RUST_BACKTRACE=1` so that a panic would show its backtrace (which the tests reject).
pub fn fencepost<S: AsRef<OsStr>>(args: &[S], env: &[(&str, &OsStr)]) -> CliRun {
    fencepost_in(None, args, env)
}

/// As [`fencepost`], in the working directory `dir`.
pub fn fencepost_in<S: AsRef<OsStr>>(
    dir: Option<&Path>,
    args: &[S],
    env: &[(&str, &OsStr)],
) -> CliRun {
    use std::os::unix::process::ExitStatusExt;
    let mut cmd = Command::new(fencepost_bin());
    cmd.args(args)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        cmd.env(key, value);
    }
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let what = format!(
        "fencepost {}",
        args.iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let child = spawn_in_own_group(&mut cmd);
    let (status, stdout, stderr) = wait_with_output(child, CLI_TIMEOUT, &what);
    let (code, killed) = match (status.code(), status.signal()) {
        (Some(code), _) => (code, false),
        (None, Some(signal)) => (128 + signal, true),
        (None, None) => unreachable!("a process ends with a code or a signal"),
    };
    CliRun {
        code,
        killed,
        stdout,
        stderr,
        what,
    }
}

impl CliRun {
    /// Asserts the contract for bad input: a non-zero exit (fencepost's own, not a crash),
    /// nothing on stdout, and exactly one line on stderr that starts with `fencepost: `,
    /// carries no panic or backtrace text, and contains every phrase of `phrases`
    /// (compared case-insensitively). Returns that line.
    pub fn assert_one_line_error(&self, phrases: &[&str]) -> String {
        let context = format!(
            "command: {}\nexit: {}\nstdout:\n{}\nstderr:\n{}",
            self.what, self.code, self.stdout, self.stderr
        );
        assert!(!self.killed, "fencepost itself died of a signal\n{context}");
        assert_ne!(
            self.code, 0,
            "bad input must give a non-zero exit\n{context}"
        );
        for panic_text in ["panicked", "RUST_BACKTRACE", "stack backtrace", "thread '"] {
            assert!(
                !self.stderr.contains(panic_text),
                "stderr shows Rust panic text ({panic_text:?})\n{context}"
            );
        }
        assert!(
            self.stdout.is_empty(),
            "nothing may be written to stdout (and no program may have run)\n{context}"
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "exactly one line on stderr expected\n{context}"
        );
        let line = lines[0];
        assert!(
            line.starts_with("fencepost: "),
            "the line must start with `fencepost: `\n{context}"
        );
        let lower = line.to_lowercase();
        for phrase in phrases {
            assert!(
                lower.contains(&phrase.to_lowercase()),
                "the message must say {phrase:?}\n{context}"
            );
        }
        line.to_owned()
    }
}
