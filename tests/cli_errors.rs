//! Bad input gets one clear line: a program fencepost cannot run or cannot trace, a bad
//! flag or value, a trace file that is missing, foreign, truncated or of another
//! version, a missing shim. Each case must print exactly one line on stderr starting
//! with `fencepost: ` that says what is wrong (no panic, no backtrace), write nothing on
//! stdout, run nothing, and exit non-zero.

mod support;

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use support::cli::{fencepost, CliRun};
use support::*;

/// `fencepost run -- PROG` (with `--json` to a scratch file, as a user would).
fn run_prog(test: &str, prog: &Path) -> CliRun {
    let json = scratch_dir(test).join("report.json");
    let run = fencepost(
        &[
            OsStr::new("run"),
            OsStr::new("--json"),
            json.as_os_str(),
            OsStr::new("--"),
            prog.as_os_str(),
        ],
        &[],
    );
    assert!(
        !json.exists(),
        "a program that cannot be traced gets no report\n{run:?}"
    );
    run
}

/// A copy of a built test program in the test's scratch directory, with `mode`.
fn copy_with_mode(test: &str, name: &str, mode: u32) -> PathBuf {
    let copy = scratch_dir(test).join(name);
    std::fs::copy(prog("leak_definite"), &copy).expect("copy test program");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(mode)).expect("chmod");
    copy
}

/// A text file with `mode` in the test's scratch directory.
fn text_file(test: &str, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = scratch_dir(test).join(name);
    std::fs::write(&path, text).expect("write file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

// ---- programs fencepost cannot run or cannot trace ----

#[test]
fn missing_program_by_path_is_one_line() {
    let missing = "/nonexistent/fencepost-test/prog";
    let run = fencepost(&["run", "--", missing], &[]);
    run.assert_one_line_error(&[missing, "no such file"]);
}

#[test]
fn missing_program_on_path_is_one_line() {
    let run = fencepost(&["run", "--", "fencepost-no-such-program-xyz"], &[]);
    run.assert_one_line_error(&["fencepost-no-such-program-xyz", "no such file", "PATH"]);
}

#[test]
fn directory_as_program_is_one_line() {
    let dir = scratch_dir("directory_as_program");
    let run = run_prog("directory_as_program_out", &dir);
    run.assert_one_line_error(&["is a directory"]);
}

#[test]
fn program_without_exec_permission_is_one_line() {
    let copy = copy_with_mode("no_exec_permission", "leak_definite_0644", 0o644);
    let run = run_prog("no_exec_permission_out", &copy);
    run.assert_one_line_error(&["leak_definite_0644", "not executable"]);
}

#[test]
fn text_file_with_exec_bit_but_no_shebang_is_one_line() {
    let script = text_file(
        "no_shebang",
        "no_shebang.sh",
        "echo this must not run\n",
        0o755,
    );
    let run = run_prog("no_shebang_out", &script);
    run.assert_one_line_error(&["no_shebang.sh", "#!"]);
}

#[test]
fn script_whose_interpreter_does_not_exist_is_one_line() {
    let script = text_file(
        "missing_interpreter",
        "missing_interp.sh",
        "#!/nonexistent/fencepost-test/interp -x\necho this must not run\n",
        0o755,
    );
    let run = run_prog("missing_interpreter_out", &script);
    run.assert_one_line_error(&[
        "missing_interp.sh",
        "/nonexistent/fencepost-test/interp",
        "does not exist",
    ]);
}

#[test]
fn statically_linked_program_is_refused_with_the_reason() {
    let libc_a = Path::new("/usr/lib/x86_64-linux-gnu/libc.a");
    assert!(
        libc_a.is_file(),
        "{} is missing: building a static test program needs libc6-dev (.ci/run installs it)",
        libc_a.display()
    );
    let run = run_prog("static_program", &prog("clean_static"));
    run.assert_one_line_error(&["clean_static", "statically linked", "LD_PRELOAD"]);
}

#[test]
fn setuid_program_is_refused() {
    // CI runs as root, where the setuid bit changes nothing for the run itself; the
    // loader would still ignore LD_PRELOAD (AT_SECURE) for a non-root user, so it must
    // be refused in every case.
    let copy = copy_with_mode("setuid_program", "leak_definite_suid", 0o4755);
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
    assert_ne!(mode & 0o4000, 0, "the copy must keep its setuid bit");
    let run = run_prog("setuid_program_out", &copy);
    run.assert_one_line_error(&["leak_definite_suid", "setuid"]);
}

#[test]
fn setgid_program_is_refused() {
    let copy = copy_with_mode("setgid_program", "leak_definite_sgid", 0o2755);
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
    assert_ne!(mode & 0o2000, 0, "the copy must keep its setgid bit");
    let run = run_prog("setgid_program_out", &copy);
    run.assert_one_line_error(&["leak_definite_sgid", "setgid"]);
}

// ---- bad flags and values ----

/// An unknown option before `--` is an unknown option, not the program's name.
fn assert_unknown_flag(run: &CliRun, flag: &str) {
    let line = run.assert_one_line_error(&[flag]);
    let lower = line.to_lowercase();
    assert!(
        [
            "unexpected argument",
            "unknown option",
            "unknown flag",
            "unrecognized"
        ]
        .iter()
        .any(|p| lower.contains(p)),
        "{flag} must be called an unknown/unexpected option, got: {line}\n(command: {})",
        run.what
    );
    assert!(
        !lower.contains("cannot find program"),
        "{flag} is an option before `--`, not a program name: {line}"
    );
}

#[test]
fn unknown_flag_of_run_is_one_line() {
    let run = fencepost(&["run", "--bogus", "--", "true"], &[]);
    assert_unknown_flag(&run, "--bogus");
}

#[test]
fn unknown_flag_of_record_is_one_line() {
    let trace = scratch_dir("unknown_flag_record").join("t.fpt");
    let run = fencepost(
        &[
            OsStr::new("record"),
            OsStr::new("-o"),
            trace.as_os_str(),
            OsStr::new("--bogus"),
            OsStr::new("--"),
            OsStr::new("true"),
        ],
        &[],
    );
    assert_unknown_flag(&run, "--bogus");
}

#[test]
fn unknown_flag_of_report_is_one_line() {
    let run = fencepost(&["report", "--bogus", "trace.fpt"], &[]);
    assert_unknown_flag(&run, "--bogus");
}

#[test]
fn bad_leak_check_value_is_one_line() {
    let run = fencepost(&["run", "--leak-check=maybe", "--", "true"], &[]);
    run.assert_one_line_error(&["--leak-check", "maybe"]);
}

#[test]
fn zero_num_callers_is_one_line() {
    let run = fencepost(&["run", "--num-callers=0", "--", "true"], &[]);
    let line = run.assert_one_line_error(&["--num-callers"]);
    assert!(
        line.contains("'0'") || line.contains(" 0 "),
        "names the value 0: {line}"
    );
}

#[test]
fn bad_show_leak_kinds_value_is_one_line() {
    let run = fencepost(&["run", "--show-leak-kinds=sometimes", "--", "true"], &[]);
    run.assert_one_line_error(&["--show-leak-kinds", "sometimes"]);
}

#[test]
fn missing_program_argument_names_what_is_missing() {
    // `fencepost run` alone: the line must say that the program is missing, not end in
    // the middle of clap's multi-line message.
    let run = fencepost(&["run"], &[]);
    run.assert_one_line_error(&["PROG"]);
    let run = fencepost(&["run", "--"], &[]);
    run.assert_one_line_error(&["PROG"]);
}

#[test]
fn record_without_output_names_the_missing_option() {
    let run = fencepost(&["record", "--", "true"], &[]);
    run.assert_one_line_error(&["--output"]);
}

// ---- trace files `report` cannot read ----

/// Records `leak_definite` into `<scratch>/t.fpt` and returns the trace's bytes.
fn record_real_trace(test: &str) -> Vec<u8> {
    let trace = scratch_dir(test).join("t.fpt");
    let rec = fencepost(
        &[
            OsStr::new("record"),
            OsStr::new("-o"),
            trace.as_os_str(),
            OsStr::new("--"),
            prog("leak_definite").as_os_str(),
        ],
        &[],
    );
    assert_eq!(rec.code, 0, "record must succeed\n{rec:?}");
    std::fs::read(&trace).expect("read the recorded trace")
}

/// The start offsets and lengths of the records of a trace file (docs: a 16-byte header,
/// then records, each `u32 len | u16 kind | u16 reserved | payload`, `len` whole).
fn record_spans(trace: &[u8]) -> Vec<(usize, usize)> {
    assert!(
        trace.len() > 16 && trace.starts_with(b"FPTRACE\0"),
        "a trace file"
    );
    let mut spans = Vec::new();
    let mut pos = 16;
    while pos < trace.len() {
        let len = u32::from_le_bytes(trace[pos..pos + 4].try_into().unwrap()) as usize;
        assert!(
            len >= 8 && pos + len <= trace.len(),
            "record at {pos} is sane"
        );
        spans.push((pos, len));
        pos += len;
    }
    spans
}

fn report_of(test: &str, name: &str, bytes: &[u8]) -> (PathBuf, CliRun) {
    let path = scratch_dir(test).join(name);
    std::fs::write(&path, bytes).expect("write trace");
    let run = fencepost(&[OsStr::new("report"), path.as_os_str()], &[]);
    (path, run)
}

#[test]
fn report_of_missing_file_is_one_line() {
    let missing = "/nonexistent/fencepost-test/trace.fpt";
    let run = fencepost(&["report", missing], &[]);
    run.assert_one_line_error(&[missing, "no such file"]);
}

#[test]
fn report_of_random_bytes_is_not_a_fencepost_trace() {
    // Deterministic "random" bytes (xorshift), never starting with the trace magic.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    assert!(!bytes.starts_with(b"FPTRACE"));
    let (_, run) = report_of("report_random", "random.fpt", &bytes);
    run.assert_one_line_error(&["random.fpt", "not a fencepost trace"]);
}

#[test]
fn report_of_empty_file_is_not_a_fencepost_trace() {
    let (_, run) = report_of("report_empty", "empty.fpt", b"");
    run.assert_one_line_error(&["empty.fpt", "not a fencepost trace"]);
}

#[test]
fn report_of_truncated_trace_names_the_offset() {
    let trace = record_real_trace("report_truncated");
    let spans = record_spans(&trace);
    assert!(spans.len() >= 3, "a real trace has several records");
    // A record in the middle that is long enough to be cut inside its payload.
    let &(start, len) = spans[spans.len() / 2..]
        .iter()
        .find(|(_, len)| *len >= 16)
        .expect("a record of 16 bytes or more");
    let cut = start + len / 2;
    let (_, run) = report_of("report_truncated_out", "truncated.fpt", &trace[..cut]);
    let line = run.assert_one_line_error(&["truncated.fpt", "offset"]);
    // The offset named is the start of the cut record, or the end of the file.
    assert!(
        line.contains(&format!("offset {start}")) || line.contains(&format!("offset {cut}")),
        "the error must name offset {start} (the truncated record) or {cut} (the cut): {line}"
    );
}

#[test]
fn report_of_trace_with_wrong_version_names_the_version() {
    let mut trace = record_real_trace("report_version");
    trace[8..12].copy_from_slice(&99u32.to_le_bytes());
    let (_, run) = report_of("report_version_out", "v99.fpt", &trace);
    run.assert_one_line_error(&["v99.fpt", "version", "99"]);
}

// ---- the shim ----

#[test]
fn missing_shim_named_by_fencepost_shim_is_one_line() {
    let missing = "/nonexistent/fencepost-test/libfencepost_shim.so";
    let run = fencepost(
        &[
            OsStr::new("run"),
            OsStr::new("--"),
            prog("leak_definite").as_os_str(),
        ],
        &[("FENCEPOST_SHIM", OsStr::new(missing))],
    );
    run.assert_one_line_error(&["FENCEPOST_SHIM", missing]);
}

#[test]
fn an_unwritable_report_file_is_refused_before_the_program_runs() {
    // valgrind checks its log file before starting the program; so do we, for every
    // report file: a run's findings must not be lost after it.
    for (option, what) in [
        ("--json", "JSON report"),
        ("--log-file", "log file"),
        ("--sarif", "SARIF report"),
    ] {
        let run = fencepost(
            &[
                "run",
                option,
                "/nonexistent/fencepost-test/out",
                "--",
                "/bin/echo",
                "the program ran",
            ],
            &[],
        );
        run.assert_one_line_error(&[what, "/nonexistent/fencepost-test/out", "no directory"]);
        assert!(
            !run.stdout.contains("the program ran"),
            "{option}: the program must not run\nstdout: {}",
            run.stdout
        );
    }
}
