//! `--explain` puts a plain explanation (what it means, usual cause, how to fix) after each
//! error and loss record of the text report; and the text report says once per module when
//! frames show no file and line because the module has no debug information.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::*;

/// `fencepost run [options] -- prog`: the text report (stderr) and the JSON report.
fn text_report(test_name: &str, prog: &Path, options: &[&str]) -> (String, Report) {
    let json = scratch_dir(test_name).join("report.json");
    let mut cmd = fencepost_command(options, &json, prog, &[]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = spawn_in_own_group(&mut cmd);
    let (_, _, stderr) = wait_with_output(child, RUN_TIMEOUT, "fencepost run");
    let report = Report::read(&json, &stderr);
    (stderr, report)
}

#[test]
fn explain_follows_each_error_and_loss_record() {
    let (text, _) = text_report("explain_uaf", &prog("use_after_free"), &["--explain"]);
    assert_eq!(
        text.matches(" explanation: Using a block after it was freed\n")
            .count(),
        2,
        "{text}"
    );
    assert_eq!(text.matches("   how to fix: ").count(), 2, "{text}");
    // Right after the error's own lines (the picture), before the next error.
    let second = text.find("use-after-free: write of 4 bytes").expect(&text);
    let first_expl = text.find(" explanation:").unwrap();
    assert!(first_expl < second, "{text}");

    let (text, _) = text_report("explain_list", &prog("leak_list"), &["--explain"]);
    let record = text.find("are definitely lost (loss record").expect(&text);
    let expl = text
        .find(" explanation: Definitely lost: a leak")
        .expect(&text);
    assert!(
        record < expl && expl < text.find("HEAP SUMMARY").unwrap(),
        "{text}"
    );
    // The indirect record is not shown by default, so it is not explained either.
    assert!(!text.contains("explanation: Indirectly lost"), "{text}");

    let (plain, _) = text_report("explain_off", &prog("leak_list"), &[]);
    assert!(!plain.contains("explanation:"), "{plain}");
}

#[test]
fn a_stripped_program_gets_one_note_about_debug_information() {
    let stripped = scratch_dir("stripped_prog").join("leak_definite_stripped");
    let status = Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(prog("leak_definite"))
        .status()
        .expect("run strip (binutils)");
    assert!(status.success());
    let (text, report) = text_report("stripped_note", &stripped, &[]);
    let note = format!(
        "note: no debug information for {}: compile with -g to see file and line",
        stripped.display()
    );
    assert_eq!(text.matches(&note).count(), 1, "{text}");
    // Its frames are addresses in the module, and stop at main's caller (the shim's own
    // trampoline around main is not shown).
    let leak = &report.leaks()[0];
    assert!(leak.stack.iter().all(|f| f.file.is_none()), "{leak:?}");
    assert!(!text.contains("main_trampoline"), "{text}");
    assert!(
        text.contains(&format!("(in {})", stripped.display())),
        "{text}"
    );

    // The same program with -g: no note.
    let (text, _) = text_report("debug_no_note", &prog("leak_definite"), &[]);
    assert!(!text.contains("no debug information"), "{text}");
}
