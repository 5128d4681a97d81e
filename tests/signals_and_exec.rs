//! A program that dies of a signal (SIGSEGV, SIGABRT) and one that replaces itself with
//! exec: the exit status fencepost returns, the `exit` and `processes` of the JSON, and
//! which blocks are reported.

mod support;

use serde_json::Value;
use support::*;

/// The one loss record of `kind` at `file:line` (innermost frame in `file`).
fn record_at(report: &Report, kind: &str, file: &str, line: u32) -> LossRecord {
    let found: Vec<LossRecord> = leaks_of_kind(report, kind)
        .into_iter()
        .filter(|l| l.user_line(&[file]) == Some((file.to_owned(), line)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {kind} record at {file}:{line}\n{}",
        report.pretty()
    );
    found.into_iter().next().unwrap()
}

/// The `processes` array of the JSON report.
fn processes(report: &Report) -> Vec<Value> {
    report.json["processes"]
        .as_array()
        .unwrap_or_else(|| panic!("report has no processes array\n{}", report.pretty()))
        .clone()
}

#[test]
fn null_dereference_exits_139_and_reports_live_blocks_as_unreleased() {
    let run = run_fencepost("null_deref", &[], &prog("null_deref"), &[]);
    assert_eq!(run.code(), 139, "128 + SIGSEGV\n{}", run.stderr);
    assert_eq!(run.report.exit(), Err(11), "\"exit\": {{\"signal\": 11}}");
    assert_eq!(run.stdout, "about to crash\n");

    let file = "null_deref.c";
    let global = record_at(
        &run.report,
        "unreleased",
        file,
        marker_line("c/null_deref.c", "held_by_global"),
    );
    assert_eq!((global.bytes, global.blocks), (300, 1));
    let local = record_at(
        &run.report,
        "unreleased",
        file,
        marker_line("c/null_deref.c", "held_by_local"),
    );
    assert_eq!((local.bytes, local.blocks), (700, 1));
    let freed = marker_line("c/null_deref.c", "freed");
    assert!(
        run.report
            .leaks()
            .iter()
            .all(|l| l.user_line(&[file]) != Some((file.to_owned(), freed))),
        "the freed block is not reported\n{}",
        run.report.pretty()
    );
    // No leak scan ran in a crashed process: nothing is definite/reachable/...
    assert!(
        run.report.leaks().iter().all(|l| l.kind == "unreleased"),
        "{}",
        run.report.pretty()
    );
    let procs = processes(&run.report);
    assert_eq!(procs.len(), 1, "{}", run.report.pretty());
    assert_eq!(procs[0]["end"], "died", "{}", run.report.pretty());
    assert_books_balance(&run.report);
}

#[test]
fn abort_exits_134_with_signal_6() {
    let run = run_fencepost("abort_live", &[], &prog("abort_live"), &[]);
    assert_eq!(run.code(), 134, "128 + SIGABRT\n{}", run.stderr);
    assert_eq!(run.report.exit(), Err(6), "\"exit\": {{\"signal\": 6}}");
    assert_eq!(run.stdout, "aborting\n");
    let held = record_at(
        &run.report,
        "unreleased",
        "abort_live.c",
        marker_line("c/abort_live.c", "held"),
    );
    assert_eq!((held.bytes, held.blocks), (512, 1));
    assert_books_balance(&run.report);
}

#[test]
fn main_process_entry_says_start_main() {
    // docs/report-format.md: `start` is "main" for the process fencepost spawned.
    let run = run_fencepost("start_main", &[], &prog("leak_definite"), &[]);
    let procs = processes(&run.report);
    assert_eq!(procs.len(), 1, "{}", run.report.pretty());
    assert_eq!(procs[0]["start"], "main", "{}", run.report.pretty());
    assert_eq!(procs[0]["end"], "exit", "{}", run.report.pretty());
}

#[test]
fn exec_by_default_runs_the_new_image_natively_with_one_section() {
    let run = run_fencepost("exec_default", &[], &prog("exec_true"), &[]);
    assert_eq!(
        run.code(),
        0,
        "/bin/true's status (9 would mean exec failed)\n{}",
        run.stderr
    );
    assert_eq!(run.report.exit(), Ok(0), "{}", run.report.pretty());
    assert_eq!(run.stdout, "exec\n");
    let procs = processes(&run.report);
    assert_eq!(
        procs.len(),
        1,
        "only the image fencepost started is traced\n{}",
        run.report.pretty()
    );
    assert!(
        !procs[0]["exe"].as_str().unwrap_or("").ends_with("/true"),
        "{}",
        run.report.pretty()
    );
    assert!(
        !run.stderr.lines().any(|l| l.starts_with("== pid")),
        "no per-process sections with one process\n{}",
        run.stderr
    );
}

#[test]
fn exec_by_default_leaves_no_trace_of_fencepost_in_the_new_image() {
    let run = run_fencepost("exec_env", &[], &prog("exec_true"), &["/usr/bin/env"]);
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let env: Vec<&str> = run.stdout.lines().skip(1).collect();
    assert!(
        env.iter().any(|l| l.starts_with("PATH=")),
        "env ran: {}",
        run.stdout
    );
    for line in &env {
        assert!(
            !line.starts_with("FENCEPOST_") && !line.contains("libfencepost_shim"),
            "the exec'd image must run natively, but its environment has {line:?}"
        );
    }
    assert_eq!(processes(&run.report).len(), 1, "{}", run.report.pretty());
}

#[test]
fn exec_by_default_is_not_reported_as_a_death() {
    // docs/report-format.md: `end` "exec" = replaced, not leak-checked; "died" = killed
    // or crashed, live blocks `unreleased`. The image that called exec did not die.
    let run = run_fencepost("exec_not_died", &[], &prog("exec_true"), &[]);
    let procs = processes(&run.report);
    assert_eq!(procs.len(), 1, "{}", run.report.pretty());
    assert_eq!(
        procs[0]["end"],
        "exec",
        "the image ended by exec\n{}",
        run.report.pretty()
    );
    assert!(
        leaks_of_kind(&run.report, "unreleased").is_empty(),
        "exec is not a death: no unreleased blocks\n{}",
        run.report.pretty()
    );
    assert!(
        !run.stderr.contains("died"),
        "the text must not say the process died\n{}",
        run.stderr
    );
}

#[test]
fn exec_with_trace_children_reports_the_new_image_too() {
    let run = run_fencepost(
        "exec_trace_children",
        &["--trace-children=yes"],
        &prog("exec_true"),
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    assert_eq!(run.report.exit(), Ok(0));
    let procs = processes(&run.report);
    assert_eq!(
        procs.len(),
        2,
        "the image that exec'd and the exec'd /bin/true\n{}",
        run.report.pretty()
    );
    let (before, after) = (&procs[0], &procs[1]);
    assert_eq!(before["pid"], after["pid"], "exec keeps the pid");
    assert_eq!(before["end"], "exec", "{}", run.report.pretty());
    assert_eq!(after["start"], "exec", "{}", run.report.pretty());
    assert!(
        after["exe"].as_str().unwrap_or("").ends_with("/true"),
        "{}",
        run.report.pretty()
    );
    assert_eq!(after["exit"]["code"], 0, "{}", run.report.pretty());
    // The text report has a section for it.
    let pid = after["pid"].as_u64().unwrap();
    let headings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with(&format!("== pid {pid}")))
        .collect();
    assert_eq!(headings.len(), 2, "one section per image\n{}", run.stderr);
    assert!(headings[1].contains("true"), "{headings:?}");
}
