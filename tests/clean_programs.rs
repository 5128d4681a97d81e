//! Correct programs are reported clean: no error, no definite, indirect or possible
//! leak, the program's output and status untouched — in guard mode (the default) with
//! each block layout (`--protect-below`, `--alignment=16`), every block guarded.

mod support;

use support::*;

#[test]
fn correct_c_program_has_no_error_and_no_leak() {
    let run = run_fencepost("clean_c", &["--error-exitcode=42"], &prog("clean"), &[]);
    assert_eq!(
        run.stdout, "clean ok\n",
        "the program ran correctly under the shim\n{}",
        run.stderr
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    assert_eq!(run.report.exit(), Ok(0));
    assert_no_error_and_no_loss(&run.report);
    assert_books_balance(&run.report);
}

#[test]
fn correct_cpp_program_has_no_error_and_no_leak() {
    let run = run_fencepost(
        "clean_cpp",
        &["--error-exitcode=42"],
        &prog("clean_cpp"),
        &[],
    );
    assert_eq!(
        run.stdout, "clean ok\n",
        "the program ran correctly under the shim\n{}",
        run.stderr
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    assert_eq!(run.report.exit(), Ok(0));
    assert_no_error_and_no_loss(&run.report);
    assert_books_balance(&run.report);
}

/// Runs a correct program in guard mode with `options` and asserts it is reported clean
/// and that every block it got came from the guard-page heap (so the run really was in
/// guard mode, not quietly on glibc's blocks).
fn assert_clean_in_guard_mode(test_name: &str, program: &str, options: &[&str]) {
    let run = run_fencepost(test_name, options, &prog(program), &[]);
    assert_eq!(
        run.stdout, "clean ok\n",
        "the program ran correctly on guarded blocks\n{}",
        run.stderr
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    assert_eq!(run.report.exit(), Ok(0));
    assert_no_error_and_no_loss(&run.report);
    assert_books_balance(&run.report);
    let guard = &run.report.json["summary"]["guard"];
    assert_eq!(
        guard["guarded"].as_u64(),
        Some(run.report.summary_u64("allocations")),
        "summary.guard.guarded: every allocation got a guarded block\n{}",
        run.report.pretty()
    );
    assert_eq!(guard["unguarded"], 0, "{}", run.report.pretty());
}

#[test]
fn correct_c_program_is_clean_in_guard_mode() {
    assert_clean_in_guard_mode("clean_c_guard", "clean", &["--mode=guard"]);
}

#[test]
fn correct_c_program_is_clean_with_protect_below() {
    assert_clean_in_guard_mode("clean_c_below", "clean", &["--protect-below"]);
}

#[test]
fn correct_c_program_is_clean_with_alignment_16() {
    assert_clean_in_guard_mode("clean_c_align16", "clean", &["--alignment=16"]);
}

#[test]
fn correct_cpp_program_is_clean_in_guard_mode() {
    assert_clean_in_guard_mode("clean_cpp_guard", "clean_cpp", &["--mode=guard"]);
}

#[test]
fn correct_cpp_program_is_clean_with_protect_below() {
    assert_clean_in_guard_mode("clean_cpp_below", "clean_cpp", &["--protect-below"]);
}

#[test]
fn correct_cpp_program_is_clean_with_alignment_16() {
    assert_clean_in_guard_mode("clean_cpp_align16", "clean_cpp", &["--alignment=16"]);
}
