//! Correct programs are reported clean: no error, no definite, indirect or possible
//! leak, the program's output and status untouched.

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
