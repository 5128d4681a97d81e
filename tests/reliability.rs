//! Back-pressure, failure and hostile input (issue 6, parts 4-6): a tiny ring loses
//! nothing, a killed analyzer leaves the program running, a full disk for `record` is a
//! clear error, the shim refuses a ring fd that is not its ring, the ring is private, no
//! file is created at a predictable path, and the threaded churn program survives 50 runs.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::cli::fencepost;
use support::*;

fn shim_path() -> std::path::PathBuf {
    fencepost_bin().with_file_name("libfencepost_shim.so")
}

#[test]
fn one_mib_ring_loses_nothing_under_two_million_events() {
    // threads_stress: 8 threads x 200,000 malloc/free pairs, 3.2M events, through a 1 MiB
    // ring; the counts must equal those of a run with a 64 MiB ring.
    let big = run_fencepost(
        "ring_64",
        &["--mode=fast", "--ring-mb=64"],
        &prog("threads_stress"),
        &[],
    );
    let small = run_fencepost(
        "ring_1",
        &["--mode=fast", "--ring-mb=1"],
        &prog("threads_stress"),
        &[],
    );
    for run in [&big, &small] {
        assert_eq!(run.code(), 0, "{}", run.stderr);
        assert_eq!(run.stdout, "checksum 1600000\n");
        assert_books_balance(&run.report);
        assert!(run.report.summary_u64("allocations") >= 1_600_001);
        let w = &run.report.json["warnings"];
        assert!(
            w.as_array().is_some_and(|w| w.is_empty()),
            "nothing dropped: {w}"
        );
    }
    for key in ["allocations", "frees"] {
        assert_eq!(
            small.report.summary_u64(key),
            big.report.summary_u64(key),
            "summary.{key} with --ring-mb=1"
        );
    }
}

#[test]
fn analyzer_killed_mid_run_leaves_the_program_running_to_its_end() {
    let dir = scratch_dir("analyzer_killed");
    let done = dir.join("done.txt");
    let json = dir.join("report.json");
    let mut cmd = fencepost_command(
        &["--mode=fast"],
        &json,
        &prog("outlive_analyzer"),
        &[done.to_str().unwrap()],
    );
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_in_own_group(&mut cmd);
    let group = child.id();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    // The program sleeps 300 ms after "ready", then makes 3M pairs: kill fencepost now.
    kill_9(&child.id().to_string());
    let status = child.wait().unwrap();
    assert!(!status.success());
    // The program is orphaned; its stderr is the pipe we hold. Wait for its file.
    let stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr_pipe), &mut s);
        s
    });
    let start = Instant::now();
    while !done.exists()
        || std::fs::read_to_string(&done)
            .unwrap_or_default()
            .is_empty()
    {
        if start.elapsed() > Duration::from_secs(60) {
            kill_9(&format!("-{group}"));
            panic!("the program did not finish after fencepost was killed (hung?)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stderr = reader.join().unwrap();
    assert_eq!(
        std::fs::read_to_string(&done).unwrap().trim(),
        "done 3000000"
    );
    let notes: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("fencepost: the analyzer is gone; process "))
        .collect();
    assert_eq!(notes.len(), 1, "said exactly once; stderr:\n{stderr}");
    assert!(
        notes[0].ends_with("runs on without being recorded"),
        "{}",
        notes[0]
    );
}

#[test]
fn record_to_a_full_disk_is_one_clear_error() {
    let run = fencepost(
        &[
            "record",
            "-o",
            "/dev/full",
            "--",
            prog("threads_stress").to_str().unwrap(),
            "2000",
        ],
        &[],
    );
    assert!(!run.killed, "{}", run.stderr);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("fencepost: "))
        .collect();
    assert_eq!(lines.len(), 1, "one line\n{}", run.stderr);
    assert!(
        lines[0].contains("/dev/full") && lines[0].to_lowercase().contains("no space"),
        "names the file and the cause: {}",
        lines[0]
    );
}

/// Runs `clean` natively with the shim preloaded and `FENCEPOST_RING_FD` pointing at
/// something that is not a ring.
fn preload_with_fake_ring(shell_prefix: &str, fd: &str) -> (i32, String, String) {
    let script = format!(
        "{shell_prefix} LD_PRELOAD={} FENCEPOST_RING_FD={fd} exec {}",
        shim_path().display(),
        prog("clean").display()
    );
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shim_refuses_a_ring_fd_that_is_not_its_ring() {
    let native = Command::new(prog("clean")).output().unwrap();
    let file = scratch_dir("fake_ring").join("regular.txt");
    std::fs::write(&file, "not a ring\n").unwrap();
    for (prefix, fd) in [
        ("", "0".to_owned()),
        (&*format!("exec 7<{};", file.display()), "7".to_owned()),
    ] {
        let (code, stdout, stderr) = preload_with_fake_ring(prefix, &fd);
        assert_eq!(code, native.status.code().unwrap(), "fd {fd}: {stderr}");
        assert_eq!(stdout, String::from_utf8_lossy(&native.stdout), "fd {fd}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "fd {fd}: one warning line\n{stderr}");
        assert!(lines[0].starts_with("fencepost: "), "{stderr}");
    }
}

#[test]
fn ring_memfd_is_readable_by_its_owner_only() {
    let (child, _json, pid) = start_sigkill_wait("memfd_mode");
    let mut modes = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if target.to_string_lossy().contains("fencepost-ring") {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(entry.path()).unwrap();
            modes.push(meta.permissions().mode() & 0o777);
        }
    }
    kill_9(&pid.to_string());
    let _ = wait_with_output(child, Duration::from_secs(60), "memfd run");
    assert_eq!(
        modes.len(),
        1,
        "the program holds the ring fd once: {modes:?}"
    );
    assert_eq!(
        modes[0] & 0o077,
        0,
        "ring memfd mode {:o}: group/other may open it",
        modes[0]
    );
}

#[test]
fn no_file_is_created_at_a_predictable_path_in_tmp_or_dev_shm() {
    if Command::new("strace").arg("-V").output().is_err() {
        panic!("strace is not installed (.ci/run installs it)");
    }
    let dir = scratch_dir("strace");
    let log = dir.join("strace.log");
    let json = dir.join("report.json");
    let status = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=open,openat,creat,mkdir,mkdirat,mknodat,rename,link,symlink",
        ])
        .arg("-o")
        .arg(&log)
        .arg(fencepost_bin())
        .args(["run", "--json"])
        .arg(&json)
        .arg("--")
        .arg(prog("fork_threads"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    // The report file is the user's own path (it may well be under /tmp): not fencepost's.
    let own = json.display().to_string();
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains(&own))
        .filter(|l| l.contains("\"/tmp/") || l.contains("\"/dev/shm/") || l.contains("\"/var/tmp/"))
        .filter(|l| {
            l.contains("O_CREAT")
                || l.contains("mkdir")
                || l.contains("creat(")
                || l.contains("mknod")
        })
        .collect();
    assert!(
        bad.is_empty(),
        "files created in shared directories: {bad:#?}"
    );
}

#[test]
fn threaded_churn_fifty_times_in_a_row() {
    // 40 runs in fast mode and 10 in guard mode, 8 threads x 20,000 pairs each; every run
    // ends (per-run timeout: RUN_TIMEOUT), the books balance, the one leak is there.
    let rounds = "20000";
    let mut failures = Vec::new();
    for i in 0..50 {
        let mode = if i < 40 {
            "--mode=fast"
        } else {
            "--mode=guard"
        };
        let run = run_fencepost(
            &format!("loop-{i}"),
            &[mode],
            &prog("threads_stress"),
            &[rounds],
        );
        let allocs = run.report.summary_u64("allocations");
        let live: u64 = run.report.leaks().iter().map(|l| l.blocks).sum();
        let frees = run.report.summary_u64("frees");
        let definite = leaks_of_kind(&run.report, "definite");
        if run.code() != 0
            || run.stdout != "checksum 160000\n"
            || allocs - frees != live
            || allocs < 160_001
            || definite.len() != 1
        {
            failures.push(format!(
                "run {i} {mode}: code {} stdout {:?} allocations {allocs} frees {frees} live {live} definite {definite:?}",
                run.code(),
                run.stdout
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
