//! Exit status: the program's own, `--error-exitcode=N` when errors were found, and
//! 128+N with `"exit": {"signal": N}` when the program died of a signal; a SIGKILLed
//! program's live blocks are still reported, as `unreleased`.

mod support;

use support::*;

#[test]
fn error_exitcode_is_used_when_a_free_error_is_found() {
    let run = run_fencepost(
        "exit_double_free",
        &["--error-exitcode=42"],
        &prog("double_free"),
        &[],
    );
    assert_eq!(run.code(), 42, "{}", run.stderr);
    assert_eq!(
        run.report.exit(),
        Ok(0),
        "the report keeps the program's own status"
    );
    assert_eq!(run.report.errors().len(), 1);
}

#[test]
fn error_exitcode_is_used_when_a_definite_leak_is_found() {
    let run = run_fencepost(
        "exit_leak",
        &["--error-exitcode=42"],
        &prog("leak_definite"),
        &[],
    );
    assert_eq!(run.code(), 42, "definite leaks are errors\n{}", run.stderr);
    assert_eq!(leaks_of_kind(&run.report, "definite").len(), 1);
}

#[test]
fn error_exitcode_is_used_when_a_possible_leak_is_found() {
    let run = run_fencepost(
        "exit_possible",
        &["--error-exitcode=42"],
        &prog("possible_leak"),
        &[],
    );
    assert_eq!(
        run.code(),
        42,
        "possible leaks are errors by default\n{}",
        run.stderr
    );
    assert_eq!(leaks_of_kind(&run.report, "possible").len(), 1);
}

#[test]
fn without_error_exitcode_the_programs_status_is_returned_despite_errors() {
    let run = run_fencepost("exit_plain", &[], &prog("double_free"), &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr);
    assert_eq!(run.report.errors().len(), 1);
}

#[test]
fn programs_own_status_passes_through_when_no_error() {
    let run = run_fencepost(
        "exit_own",
        &["--error-exitcode=42"],
        &prog("reachable_global"),
        &[],
    );
    assert_eq!(run.code(), 3, "{}", run.stderr);
    assert_eq!(run.report.exit(), Ok(3));
}

#[test]
fn sigkilled_program_exits_137_and_reports_its_live_blocks_as_unreleased() {
    // The program says "ready <pid>" once its blocks are allocated.
    let (child, json, pid) = start_sigkill_wait("sigkill");
    assert_ne!(
        pid,
        child.id(),
        "the program is fencepost's child, not fencepost"
    );
    kill_9(&pid.to_string());
    let (status, _, stderr) = wait_with_output(child, RUN_TIMEOUT, "fencepost run sigkill_wait");

    assert_eq!(status.code(), Some(137), "128 + SIGKILL\n{stderr}");
    let report = Report::read(&json, &stderr);
    assert_eq!(report.exit(), Err(9), "\"exit\": {{\"signal\": 9}}");
    let unreleased = leaks_of_kind(&report, "unreleased");
    let at = |marker| {
        let line = marker_line("c/sigkill_wait.c", marker);
        let found: Vec<_> = unreleased
            .iter()
            .filter(|l| {
                l.user_line(&["sigkill_wait.c"]) == Some(("sigkill_wait.c".to_owned(), line))
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one unreleased record at line {line} ({marker})\n{}",
            report.pretty()
        );
        (found[0].bytes, found[0].blocks)
    };
    assert_eq!(at("unreleased_global"), (1000, 1));
    assert_eq!(at("unreleased_local"), (2000, 1));
    let freed_line = marker_line("c/sigkill_wait.c", "freed");
    assert!(
        report
            .leaks()
            .iter()
            .all(|l| l.user_line(&["sigkill_wait.c"])
                != Some(("sigkill_wait.c".to_owned(), freed_line))),
        "the freed block is not reported"
    );
    // A killed process gets no scan: nothing is classified definite/reachable for it.
    assert!(
        report.leaks().iter().all(|l| l.kind == "unreleased"),
        "{}",
        report.pretty()
    );
    assert_books_balance(&report);
}
