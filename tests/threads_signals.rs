//! Threads and signals (issue 6, part 3): cross-thread frees among 100 threads, TLS
//! destructors that free, SIGINT forwarded by fencepost, and every way a program can end
//! (SIGKILL, SIGSEGV, abort, _exit, exit from a second thread): the report always comes,
//! with everything recorded up to the end.

mod support;

use std::time::Duration;

use support::*;

fn no_lost(report: &Report) {
    assert_no_error_and_no_loss(report);
    assert_books_balance(report);
}

/// Fast mode is run 5 times: its leak scan finds the deliberately lost block `reachable`
/// in most runs (memcheck and guard mode: definite), so one run would pass by luck.
#[test]
fn hundred_threads_free_what_others_allocated() {
    let modes = [
        "--mode=guard",
        "--mode=fast",
        "--mode=fast",
        "--mode=fast",
        "--mode=fast",
        "--mode=fast",
    ];
    for mode in modes {
        let run = run_fencepost(
            "threads_cross_free",
            &[mode],
            &prog("threads_cross_free"),
            &[],
        );
        assert_eq!(run.code(), 0, "{}", run.stderr);
        assert_eq!(run.stdout, "freed 50000\n");
        no_error_and_one_definite_leak(&run.report, mode, "threads_cross_free.c", 64);
        assert!(run.report.summary_u64("allocations") >= 50_001, "{mode}");
        assert!(run.report.summary_u64("frees") >= 50_000, "{mode}");
        assert_books_balance(&run.report);
    }
}

/// Four threads grow, shrink and free blocks they take from each other (realloc keeps
/// their contents, which the program checks). In fast mode a realloc is recorded as one
/// record while the old block's shard stays locked across glibc's realloc, so the thread
/// glibc hands the old address to next records after it; run three times in fast mode,
/// as the interleavings differ from run to run.
#[test]
fn threads_realloc_blocks_they_pass_around() {
    for mode in ["--mode=guard", "--mode=fast", "--mode=fast", "--mode=fast"] {
        let run = run_fencepost("threads_realloc", &[mode], &prog("threads_realloc"), &[]);
        assert_eq!(run.code(), 0, "{mode}: {}", run.stderr);
        assert_eq!(run.stdout, "realloc ok\n", "{mode}");
        no_error_and_one_definite_leak(&run.report, mode, "threads_realloc.c", 40);
        assert_books_balance(&run.report);
    }
}

#[test]
fn pthread_key_destructors_free_at_thread_exit() {
    for mode in ["--mode=guard", "--mode=fast"] {
        let run = run_fencepost("tls_destructors", &[mode], &prog("tls_destructors"), &[]);
        assert_eq!(run.code(), 0, "{}", run.stderr);
        assert_eq!(run.stdout, "threads done\n");
        no_lost(&run.report);
    }
}

#[test]
fn cxx_thread_local_destructors_free_at_thread_exit() {
    for mode in ["--mode=guard", "--mode=fast"] {
        let run = run_fencepost(
            "thread_local_dtor",
            &[mode],
            &prog("thread_local_dtor"),
            &[],
        );
        assert_eq!(run.code(), 0, "{}", run.stderr);
        assert_eq!(run.stdout, "sum 10\n");
        no_lost(&run.report);
    }
}

#[test]
fn sigint_to_fencepost_reaches_the_program_and_the_report_still_comes() {
    let (child, json, _pid) = start_sigkill_wait("sigint");
    // To fencepost only, as `kill -INT <pid>` does (not the terminal's group-wide ^C).
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (status, _, stderr) = wait_with_output(child, Duration::from_secs(60), "sigint run");
    assert_eq!(status.code(), Some(130), "128 + SIGINT\n{stderr}");
    let report = Report::read(&json, &stderr);
    assert_eq!(report.exit(), Err(2), "{}", report.pretty());
    let at = |marker| {
        Some((
            "sigkill_wait.c".to_owned(),
            marker_line("c/sigkill_wait.c", marker),
        ))
    };
    let (global, local) = (at("unreleased_global"), at("unreleased_local"));
    let mut held: Vec<(u64, u64)> = leaks_of_kind(&report, "unreleased")
        .iter()
        .filter(|l| {
            let line = l.user_line(&["sigkill_wait.c"]);
            line == global || line == local
        })
        .map(|l| (l.bytes, l.blocks))
        .collect();
    held.sort();
    assert_eq!(held, vec![(1000, 1), (2000, 1)], "{}", report.pretty());
    assert_books_balance(&report);
}

/// `ends MODE`: the exit code, and the 1000-byte global and the 123-byte last block in the
/// loss records (of `kind`), the freed block not.
fn check_end(mode: &str, code: i32, kind: &str, last_marker: &str) {
    let run = run_fencepost(&format!("ends-{mode}"), &[], &prog("ends"), &[mode]);
    assert_eq!(run.code(), code, "{mode}\n{}", run.stderr);
    assert_eq!(run.stdout, format!("ending {mode}\n"));
    let lines: Vec<(u64, String, Option<u32>)> = run
        .report
        .leaks()
        .into_iter()
        .filter(|l| l.user_line(&["ends.c"]).is_some())
        .map(|l| {
            (
                l.bytes,
                l.kind.clone(),
                l.user_line(&["ends.c"]).map(|(_, n)| n),
            )
        })
        .collect();
    let global = (
        1000,
        kind.to_owned(),
        Some(marker_line("c/ends.c", "global")),
    );
    let last = (
        123,
        kind.to_owned(),
        Some(marker_line("c/ends.c", last_marker)),
    );
    assert!(
        lines.contains(&global),
        "{mode}: {lines:?}\n{}",
        run.report.pretty()
    );
    assert!(
        lines.contains(&last),
        "{mode}: the last allocation is recorded: {lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.0 == 500),
        "{mode}: the freed block is not reported"
    );
    assert_books_balance(&run.report);
}

#[test]
fn sigkill_report_has_everything_up_to_the_end() {
    check_end("kill", 137, "unreleased", "last");
}

#[test]
fn sigsegv_report_has_everything_up_to_the_end() {
    check_end("segv", 139, "unreleased", "last");
}

#[test]
fn abort_report_has_everything_up_to_the_end() {
    check_end("abort", 134, "unreleased", "last");
}

#[test]
fn underscore_exit_is_leak_checked() {
    // Both blocks are held by globals: reachable.
    check_end("_exit", 7, "reachable", "last");
}

#[test]
fn exit_from_a_second_thread_is_leak_checked() {
    check_end("thread-exit", 5, "reachable", "last_thread");
}
