//! `fencepost record -o T -- prog` keeps the event stream; `fencepost report T` replays it
//! through the same analyzer. Both must give the same findings (loss records with kind,
//! bytes, blocks and file:line; free errors), the same `exit`, and the same exit status.

mod support;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::cli::{fencepost, CliRun};
use support::*;

/// One record-then-report round trip.
struct RoundTrip {
    record: CliRun,
    recorded: Report,
    report: CliRun,
    replayed: Report,
}

/// `fencepost record -o t.fpt OPTIONS --json a.json -- prog ARGS`, then
/// `fencepost report t.fpt OPTIONS --json b.json`.
fn round_trip(test: &str, options: &[&str], prog: &Path, args: &[&str]) -> RoundTrip {
    let dir = scratch_dir(test);
    let (trace, a, b) = (dir.join("t.fpt"), dir.join("a.json"), dir.join("b.json"));
    let os = |s: &str| OsString::from(s);
    let mut rec_args: Vec<OsString> = vec![os("record"), os("-o"), trace.clone().into()];
    rec_args.extend(options.iter().map(|o| os(o)));
    rec_args.extend([os("--json"), a.clone().into(), os("--"), prog.into()]);
    rec_args.extend(args.iter().map(|a| os(a)));
    let record = fencepost(&rec_args, &[]);
    assert!(!record.killed, "{record:?}");
    assert!(trace.is_file(), "record wrote no trace\n{record:?}");
    let recorded = Report::read(&a, &record.stderr);

    let mut rep_args: Vec<OsString> = vec![os("report"), trace.into()];
    rep_args.extend(options.iter().map(|o| os(o)));
    rep_args.extend([os("--json"), b.clone().into()]);
    let report = fencepost(&rep_args, &[]);
    assert!(!report.killed, "{report:?}");
    let replayed = Report::read(&b, &report.stderr);
    RoundTrip {
        record,
        recorded,
        report,
        replayed,
    }
}

/// (kind, bytes, blocks, user file:line) of every loss record, sorted.
/// (kind, bytes, blocks, user file:line) of a loss record.
type LeakKey = (String, u64, u64, Option<(String, u32)>);

fn leak_keys(report: &Report, files: &[&str]) -> Vec<LeakKey> {
    let mut keys: Vec<_> = report
        .leaks()
        .into_iter()
        .map(|l| {
            let line = l.user_line(files);
            (l.kind, l.bytes, l.blocks, line)
        })
        .collect();
    keys.sort();
    keys
}

/// The parts of the JSON report that a replay must reproduce exactly.
fn findings(report: &Report) -> Vec<(&'static str, Value)> {
    ["exit", "summary", "errors", "leaks", "processes"]
        .into_iter()
        .map(|k| (k, report.json[k].clone()))
        .collect()
}

fn assert_same(trip: &RoundTrip, files: &[&str]) {
    let context = format!(
        "record: {:?}\nreport: {:?}\nrecorded JSON:\n{}\nreplayed JSON:\n{}",
        trip.record,
        trip.report,
        trip.recorded.pretty(),
        trip.replayed.pretty()
    );
    assert_eq!(
        trip.record.code, trip.report.code,
        "record and report must exit alike\n{context}"
    );
    assert_eq!(
        trip.recorded.exit(),
        trip.replayed.exit(),
        "\"exit\" differs\n{context}"
    );
    assert_eq!(
        leak_keys(&trip.recorded, files),
        leak_keys(&trip.replayed, files),
        "loss records differ (kind, bytes, blocks, file:line)\n{context}"
    );
    for ((key, recorded), (_, replayed)) in findings(&trip.recorded)
        .into_iter()
        .zip(findings(&trip.replayed))
    {
        assert_eq!(recorded, replayed, "\"{key}\" differs\n{context}");
    }
}

#[test]
fn replayed_lost_list_has_the_same_definite_and_indirect_records() {
    let files = ["leak_list.c"];
    let trip = round_trip("replay_leak_list", &[], &prog("leak_list"), &[]);
    assert_eq!(trip.record.code, 0, "{:?}", trip.record);
    assert_same(&trip, &files);
    // Not two empty reports: the round trip carried the leaks.
    let kinds: Vec<String> = trip.replayed.leaks().into_iter().map(|l| l.kind).collect();
    assert!(
        kinds.iter().any(|k| k == "definite") && kinds.iter().any(|k| k == "indirect"),
        "the replay has the definite head and the indirect nodes\n{}",
        trip.replayed.pretty()
    );
    assert_books_balance(&trip.replayed);
    // The text report is the same too (it is rendered from the same Report).
    assert_eq!(
        trip.record.stderr, trip.report.stderr,
        "record's and report's text reports differ"
    );
}

#[test]
fn replayed_definite_leak_has_its_line() {
    let trip = round_trip("replay_definite", &[], &prog("leak_definite"), &[]);
    assert_same(&trip, &["leak_definite.c"]);
    let line = marker_line("c/leak_definite.c", "leak");
    assert_eq!(
        leak_keys(&trip.replayed, &["leak_definite.c"])
            .into_iter()
            .filter(|k| k.0 == "definite")
            .collect::<Vec<_>>(),
        vec![(
            "definite".to_owned(),
            100,
            1,
            Some(("leak_definite.c".to_owned(), line))
        )],
        "{}",
        trip.replayed.pretty()
    );
}

#[test]
fn replay_keeps_the_programs_exit_code() {
    let trip = round_trip("replay_exit_code", &[], &prog("reachable_global"), &[]);
    assert_eq!(trip.record.code, 3, "{:?}", trip.record);
    assert_eq!(
        trip.report.code, 3,
        "report exits with the recorded program's code\n{:?}",
        trip.report
    );
    assert_eq!(trip.replayed.exit(), Ok(3));
    assert_same(&trip, &["reachable_global.c"]);
}

#[test]
fn replay_applies_error_exitcode_like_the_run() {
    let trip = round_trip(
        "replay_error_exitcode",
        &["--error-exitcode=42"],
        &prog("leak_definite"),
        &[],
    );
    assert_eq!(trip.record.code, 42, "{:?}", trip.record);
    assert_eq!(trip.report.code, 42, "{:?}", trip.report);
    assert_same(&trip, &["leak_definite.c"]);
}

#[test]
fn replay_keeps_free_errors() {
    let trip = round_trip("replay_double_free", &[], &prog("double_free"), &[]);
    assert_same(&trip, &["double_free.c"]);
    let kinds: Vec<String> = trip.replayed.errors().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["double-free"], "{}", trip.replayed.pretty());
}

#[test]
fn replay_keeps_a_signal_death_and_unreleased_blocks() {
    let trip = round_trip("replay_null_deref", &[], &prog("null_deref"), &[]);
    assert_eq!(trip.record.code, 139, "128 + SIGSEGV\n{:?}", trip.record);
    assert_eq!(trip.report.code, 139, "{:?}", trip.report);
    assert_eq!(trip.replayed.exit(), Err(11));
    assert_same(&trip, &["null_deref.c"]);
    assert!(
        !leaks_of_kind(&trip.replayed, "unreleased").is_empty(),
        "{}",
        trip.replayed.pretty()
    );
}

#[test]
fn report_after_the_program_is_deleted_still_has_the_leaks() {
    // Symbols may be gone with the binary, but the findings (kind, bytes, blocks) and the
    // exit status are in the trace.
    let dir = scratch_dir("replay_deleted_binary_prog");
    let copy: PathBuf = dir.join("leak_definite_copy");
    std::fs::copy(prog("leak_definite"), &copy).expect("copy test program");
    let out = scratch_dir("replay_deleted_binary");
    let (trace, a, b) = (out.join("t.fpt"), out.join("a.json"), out.join("b.json"));
    let record = fencepost(
        &[
            OsStr::new("record"),
            OsStr::new("-o"),
            trace.as_os_str(),
            OsStr::new("--json"),
            a.as_os_str(),
            OsStr::new("--"),
            copy.as_os_str(),
        ],
        &[],
    );
    assert_eq!(record.code, 0, "{record:?}");
    std::fs::remove_file(&copy).expect("delete the program");
    let report = fencepost(
        &[
            OsStr::new("report"),
            trace.as_os_str(),
            OsStr::new("--json"),
            b.as_os_str(),
        ],
        &[],
    );
    assert!(!report.killed, "{report:?}");
    assert_eq!(report.code, 0, "{report:?}");
    assert!(!report.stderr.contains("panicked"), "{report:?}");
    let (recorded, replayed) = (
        Report::read(&a, &record.stderr),
        Report::read(&b, &report.stderr),
    );
    let counts = |r: &Report| {
        let mut v: Vec<(String, u64, u64)> = r
            .leaks()
            .into_iter()
            .map(|l| (l.kind, l.bytes, l.blocks))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        counts(&recorded),
        counts(&replayed),
        "{}",
        replayed.pretty()
    );
    assert!(counts(&replayed).contains(&("definite".to_owned(), 100, 1)));
    assert_eq!(replayed.exit(), Ok(0));
}
