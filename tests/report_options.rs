//! The options that shape the report, as memcheck spells them: `--log-file`,
//! `--leak-check`, `--show-leak-kinds`, `--num-callers`, `--error-exitcode`; and the rule
//! that the program's stdout is the program's alone.

mod support;

use std::ffi::OsStr;
use std::process::Command;

use support::cli::fencepost;
use support::*;

/// The program's stdout when run natively (no fencepost).
fn native_stdout(prog: &std::path::Path) -> String {
    let out = Command::new(prog).output().expect("run natively");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Text a report section always has; none of it may leak out of `--log-file`.
const REPORT_TEXT: &[&str] = &[
    "HEAP SUMMARY",
    "LEAK SUMMARY",
    "ERROR SUMMARY",
    "loss record",
    "definitely lost",
];

#[test]
fn log_file_gets_the_text_report_and_stderr_none_of_it() {
    let log = scratch_dir("log_file_target").join("fencepost.log");
    let log_opt = format!("--log-file={}", log.display());
    let run = run_fencepost("log_file", &[&log_opt], &prog("leak_definite"), &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr);
    assert_eq!(run.stdout, "record 7\n", "the program's stdout is its own");
    for text in REPORT_TEXT {
        assert!(
            !run.stderr.contains(text),
            "{text:?} on stderr despite --log-file\nstderr:\n{}",
            run.stderr
        );
    }
    assert!(
        !run.stderr.contains("leak_definite.c"),
        "no stack on stderr despite --log-file\nstderr:\n{}",
        run.stderr
    );
    let text = std::fs::read_to_string(&log).unwrap_or_else(|e| {
        panic!(
            "no log file {}: {e}\nstderr:\n{}",
            log.display(),
            run.stderr
        )
    });
    let line = marker_line("c/leak_definite.c", "leak");
    assert!(
        text.contains("100 bytes in 1 block are definitely lost"),
        "the log has the loss record:\n{text}"
    );
    assert!(
        text.contains(&format!("leak_definite.c:{line}")),
        "the log has the leak's line:\n{text}"
    );
    assert!(text.contains("LEAK SUMMARY"), "{text}");
    // The JSON is written as well, and agrees.
    assert_eq!(leaks_of_kind(&run.report, "definite").len(), 1);
}

#[test]
fn programs_stdout_carries_nothing_of_fencepost() {
    for (name, args) in [
        ("leak_definite", &[][..]),
        ("leak_list", &[][..]),
        ("reachable_global", &[][..]),
        ("clean", &[][..]),
    ] {
        let native = native_stdout(&prog(name));
        for options in [&[][..], &["--leak-check=full", "--show-leak-kinds=all"][..]] {
            let run = run_fencepost(&format!("stdout_{name}"), options, &prog(name), args);
            assert_eq!(
                run.stdout, native,
                "{name} {options:?}: stdout under fencepost must be the program's own\nstderr:\n{}",
                run.stderr
            );
            assert!(!run.stdout.contains("fencepost"), "{}", run.stdout);
        }
    }
}

#[test]
fn leak_check_summary_prints_the_summary_but_no_loss_record() {
    let run = run_fencepost(
        "leak_check_summary",
        &["--leak-check=summary"],
        &prog("leak_definite"),
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    assert!(run.stderr.contains("LEAK SUMMARY"), "{}", run.stderr);
    assert!(
        run.stderr.contains("definitely lost: 100 bytes in 1 block"),
        "the summary counts the leak:\n{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("loss record"),
        "no loss record with --leak-check=summary:\n{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("leak_definite.c:"),
        "no leak stack with --leak-check=summary:\n{}",
        run.stderr
    );
}

#[test]
fn leak_check_no_prints_neither_summary_nor_loss_record() {
    let run = run_fencepost(
        "leak_check_no",
        &["--leak-check=no"],
        &prog("leak_definite"),
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    for text in [
        "LEAK SUMMARY",
        "loss record",
        "definitely lost",
        "leak_definite.c:",
    ] {
        assert!(
            !run.stderr.contains(text),
            "{text:?} with --leak-check=no:\n{}",
            run.stderr
        );
    }
}

/// Whether the text report has a loss-record line of `kind_words` with `bytes`.
fn has_record_line(text: &str, bytes: &str, kind_words: &str) -> bool {
    text.lines()
        .any(|l| l.contains("loss record") && l.contains(bytes) && l.contains(kind_words))
}

#[test]
fn show_leak_kinds_all_shows_the_reachable_record() {
    let line = marker_line("c/reachable_global.c", "global");
    let run = run_fencepost(
        "show_all",
        &["--show-leak-kinds=all"],
        &prog("reachable_global"),
        &[],
    );
    assert_eq!(run.code(), 3, "{}", run.stderr);
    assert!(
        has_record_line(&run.stderr, "64 bytes in 1 block", "reachable"),
        "a reachable loss record with --show-leak-kinds=all:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("reachable_global.c:{line}")),
        "with its line:\n{}",
        run.stderr
    );

    // By default (definite,possible) it is not shown, though the JSON has it.
    let run = run_fencepost("show_default", &[], &prog("reachable_global"), &[]);
    assert!(
        !has_record_line(&run.stderr, "64 bytes", "reachable"),
        "reachable records are not shown by default:\n{}",
        run.stderr
    );
    assert_eq!(
        leaks_of_kind(&run.report, "reachable").len(),
        1,
        "{}",
        run.report.pretty()
    );
}

#[test]
fn num_callers_1_gives_one_frame_stacks() {
    let run = run_fencepost(
        "num_callers_1",
        &["--num-callers=1"],
        &prog("leak_definite"),
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let leaks = run.report.leaks();
    assert!(!leaks.is_empty(), "{}", run.report.pretty());
    for leak in &leaks {
        assert_eq!(leak.stack.len(), 1, "one frame: {leak:#?}");
    }
    let definite = leaks_of_kind(&run.report, "definite");
    assert_eq!(definite.len(), 1, "{}", run.report.pretty());
    let frame = &definite[0].stack[0];
    assert_eq!(frame.function.as_deref(), Some("make_record"), "{frame:?}");
    assert_eq!(frame.file_name(), Some("leak_definite.c"));
    assert_eq!(frame.line, Some(marker_line("c/leak_definite.c", "leak")));

    // Error stacks too: the free, the allocation and the first free, one frame each.
    let run = run_fencepost(
        "num_callers_1_errors",
        &["--num-callers=1"],
        &prog("double_free"),
        &[],
    );
    let errors = run.report.errors();
    assert_eq!(errors.len(), 1, "{}", run.report.pretty());
    let e = &errors[0];
    for (name, stack, marker) in [
        ("stack", &e.stack, "second_free"),
        ("alloc_stack", &e.alloc_stack, "alloc"),
        ("free_stack", &e.free_stack, "first_free"),
    ] {
        assert_eq!(stack.len(), 1, "{name} has one frame: {e:#?}");
        assert_eq!(
            stack[0].line,
            Some(marker_line("c/double_free.c", marker)),
            "{name}: {e:#?}"
        );
    }
}

#[test]
fn error_exitcode_with_a_definite_leak_and_without_errors() {
    let run = run_fencepost(
        "error_exitcode_leak",
        &["--error-exitcode=42"],
        &prog("leak_definite"),
        &[],
    );
    assert_eq!(run.code(), 42, "{}", run.stderr);
    assert_eq!(
        run.report.exit(),
        Ok(0),
        "the JSON keeps the program's own status"
    );

    // Clean programs: their own status, 3 and 0.
    let run = run_fencepost(
        "error_exitcode_reachable",
        &["--error-exitcode=42"],
        &prog("reachable_global"),
        &[],
    );
    assert_eq!(run.code(), 3, "{}", run.stderr);
    let run = run_fencepost(
        "error_exitcode_clean",
        &["--error-exitcode=42"],
        &prog("clean"),
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    assert_no_error_and_no_loss(&run.report);
}

#[test]
fn report_subcommand_honours_log_file_and_leak_check() {
    // The same options on `report` as on `run`.
    let dir = scratch_dir("report_options");
    let trace = dir.join("t.fpt");
    let rec = fencepost(
        &[
            OsStr::new("record"),
            OsStr::new("-o"),
            trace.as_os_str(),
            OsStr::new("--log-file"),
            dir.join("record.log").as_os_str(),
            OsStr::new("--"),
            prog("leak_definite").as_os_str(),
        ],
        &[],
    );
    assert_eq!(rec.code, 0, "{rec:?}");
    let log = dir.join("report.log");
    let rep = fencepost(
        &[
            OsStr::new("report"),
            trace.as_os_str(),
            OsStr::new("--leak-check=summary"),
            OsStr::new("--log-file"),
            log.as_os_str(),
        ],
        &[],
    );
    assert_eq!(rep.code, 0, "{rep:?}");
    assert!(rep.stdout.is_empty(), "{rep:?}");
    for text in REPORT_TEXT {
        assert!(!rep.stderr.contains(text), "{text:?} on stderr: {rep:?}");
    }
    let text = std::fs::read_to_string(&log).expect("report wrote the log file");
    assert!(text.contains("LEAK SUMMARY"), "{text}");
    assert!(!text.contains("loss record"), "{text}");
}

/// Without `--json` or `--html`, only the loss records that an output shows or counts as
/// errors have their stacks symbolized (a run that shows none never reads the debug
/// information only reachable blocks would need). Every output that does read a reachable
/// block's stack must still see it named: the text with `--show-leak-kinds=all`, a
/// suppression (which counts what it takes), and the XML. None of these runs writes JSON.
#[test]
fn text_only_runs_name_the_reachable_blocks_they_show_or_suppress() {
    let program = prog("reachable_global");
    let line = marker_line("c/reachable_global.c", "global");
    let at_line = format!("reachable_global.c:{line}");
    let run = |options: &[String]| {
        let mut args = vec!["run".to_string()];
        args.extend_from_slice(options);
        args.push("--".into());
        args.push(program.display().to_string());
        let out = fencepost(&args, &[]);
        assert_eq!(out.code, 3, "the program's status\n{}", out.stderr);
        out.stderr
    };

    let default = run(&[]);
    assert!(
        default.contains("still reachable: 64 bytes in 1 block"),
        "{default}"
    );
    assert!(!default.contains(&at_line), "not shown\n{default}");

    let all = run(&["--show-leak-kinds=all".into()]);
    assert!(
        all.contains("64 bytes in 1 block are still reachable"),
        "{all}"
    );
    assert!(all.contains(&format!("at main ({at_line})")), "{all}");

    let supp = scratch_dir("reachable_suppressed").join("held.supp");
    std::fs::write(
        &supp,
        "{\n   held-by-global\n   Memcheck:Leak\n   match-leak-kinds: reachable\n   fun:malloc\n   fun:main\n}\n",
    )
    .unwrap();
    let suppressed = run(&[format!("--suppressions={}", supp.display())]);
    assert!(
        suppressed.contains("suppressed: 64 bytes in 1 block"),
        "the suppression matched the named frames\n{suppressed}"
    );
    assert!(!suppressed.contains("still reachable: 64"), "{suppressed}");

    let xml = scratch_dir("reachable_xml").join("out.xml");
    run(&[
        format!("--xml-file={}", xml.display()),
        "--show-leak-kinds=all".into(),
    ]);
    let doc = std::fs::read_to_string(&xml).expect("the XML report");
    assert!(doc.contains("<kind>Leak_StillReachable</kind>"), "{doc}");
    assert!(doc.contains("<fn>main</fn>"), "{doc}");
    assert!(doc.contains(&format!("<line>{line}</line>")), "{doc}");
}
