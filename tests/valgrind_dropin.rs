//! fencepost as a drop-in for valgrind: `fencepost [valgrind options] PROG`, memcheck's
//! options mapped onto fencepost's, and memcheck's text format (`--valgrind-compat`, or run
//! as `valgrind`) with the `==PID==` prefix and the summary lines parsers read, compared
//! line for line with valgrind's own on the same program.

mod support;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use support::cli::{fencepost, CliRun};
use support::{prog, scratch_dir};

/// Every line starts with `==PID== `; returns the pids seen, in order.
fn assert_prefixed(log: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for line in log.lines() {
        let pid = line
            .strip_prefix("==")
            .and_then(|l| l.split_once("== "))
            .or_else(|| line.strip_prefix("==").and_then(|l| l.split_once("==")))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
            .unwrap_or_else(|| panic!("line without the ==PID== prefix: {line:?}\nlog:\n{log}"));
        if !pids.contains(&pid) {
            pids.push(pid);
        }
    }
    pids
}

/// The log's lines without their `==PID== ` prefix.
fn bodies(log: &str) -> Vec<String> {
    log.lines()
        .map(|l| {
            l.splitn(3, "==")
                .nth(2)
                .unwrap_or("")
                .trim_start_matches(' ')
                .to_owned()
        })
        .collect()
}

/// The lines starting with one of `starts`, prefix removed, addresses masked.
fn lines_starting(log: &str, starts: &[&str]) -> Vec<String> {
    bodies(log)
        .into_iter()
        .map(|l| l.trim_start().to_owned())
        .filter(|l| starts.iter().any(|s| l.starts_with(s)))
        .map(|l| mask_addresses(&l))
        .collect()
}

fn mask_addresses(line: &str) -> String {
    line.split(' ')
        .map(|w| if w.starts_with("0x") { "0x?" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

/// valgrind's own text log of `prog` with the same options.
fn valgrind_log(test: &str, program: &Path, options: &[&str]) -> String {
    let log = scratch_dir(&format!("{test}-valgrind")).join("vg.log");
    let status = Command::new("valgrind")
        .args(options)
        .arg(format!("--log-file={}", log.display()))
        .arg(program)
        .output()
        .expect("valgrind is installed (.ci/run installs it)");
    assert!(status.status.code().is_some(), "valgrind died");
    std::fs::read_to_string(&log).expect("valgrind wrote its log")
}

fn no_env() -> [(&'static str, &'static OsStr); 0] {
    []
}

#[test]
fn valgrind_command_line_with_error_exitcode_and_pid_in_log_file() {
    let dir = scratch_dir("dropin_leak_list");
    let log = format!("{}/fp.%p.log", dir.display());
    let program = prog("leak_list");
    let run = fencepost(
        &[
            "--leak-check=full",
            "--error-exitcode=3",
            "--valgrind-compat",
            &format!("--log-file={log}"),
            program.to_str().unwrap(),
        ],
        &no_env(),
    );
    assert_eq!(
        run.code, 3,
        "--error-exitcode=3 with a definite leak\n{run:?}"
    );
    let logs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let name = logs[0].file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(&logs[0]).unwrap();
    let pids = assert_prefixed(&text);
    assert_eq!(pids.len(), 1, "{text}");
    // %p is the traced program's pid, the one in every line's prefix.
    assert_eq!(name, format!("fp.{}.log", pids[0]), "{text}");

    let vg = valgrind_log("dropin_leak_list", &program, &["--leak-check=full"]);
    let summary = [
        "definitely lost:",
        "indirectly lost:",
        "possibly lost:",
        "ERROR SUMMARY:",
        "HEAP SUMMARY:",
        "LEAK SUMMARY:",
        "in use at exit:",
    ];
    assert_eq!(
        lines_starting(&text, &summary),
        lines_starting(&vg, &summary),
        "fencepost:\n{text}\nvalgrind:\n{vg}"
    );
    // memcheck's loss-record line, with fencepost's own-bytes count (see docs/valgrind-compat.md).
    assert!(
        text.contains("32 bytes in 1 blocks are definitely lost in loss record"),
        "{text}"
    );
}

#[test]
fn bad_read_headline_and_address_line_read_as_memcheck_writes_them() {
    let program = prog("overrun_read");
    let dir = scratch_dir("dropin_overrun");
    let log = dir.join("fp.log");
    let run = fencepost(
        &[
            "--valgrind-compat".as_ref(),
            format!("--log-file={}", log.display()).as_ref(),
            program.as_os_str(),
        ],
        &no_env(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_prefixed(&text);
    let vg = valgrind_log("dropin_overrun", &program, &[]);
    let wanted = [
        "Invalid read of size",
        "Address 0x",
        "ERROR SUMMARY:",
        "All heap blocks",
    ];
    assert_eq!(
        lines_starting(&text, &wanted),
        lines_starting(&vg, &wanted),
        "{text}\n{vg}"
    );
    let at = bodies(&text)
        .into_iter()
        .find(|l| l.trim_start().starts_with("at 0x"))
        .expect("an `at` frame");
    assert!(at.ends_with(": main (overrun_read.c:30)"), "{at}");
}

#[test]
fn invoked_as_valgrind_writes_memcheck_text_without_being_asked() {
    let dir = scratch_dir("dropin_as_valgrind");
    let link = dir.join("valgrind");
    std::os::unix::fs::symlink(support::fencepost_bin(), &link).unwrap();
    let program = prog("leak_definite");
    let out = Command::new(&link)
        .args(["-q", "--tool=memcheck", "--leak-check=yes"])
        .arg(&program)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_prefixed(&stderr);
    assert!(
        stderr.contains("are definitely lost in loss record"),
        "{stderr}"
    );
    // -q: no header and no summaries, as memcheck's.
    assert!(!stderr.contains("HEAP SUMMARY"), "{stderr}");
    assert!(
        !stderr.contains("Memcheck, a memory error detector"),
        "{stderr}"
    );
}

#[test]
fn unknown_option_is_one_clear_line() {
    let program = prog("clean");
    let run: CliRun = fencepost(&["--bogus-option=1", program.to_str().unwrap()], &no_env());
    run.assert_one_line_error(&["unknown option", "--bogus-option"]);
}

#[test]
fn other_valgrind_tools_are_refused() {
    let program = prog("clean");
    let run = fencepost(&["--tool=helgrind", program.to_str().unwrap()], &no_env());
    run.assert_one_line_error(&["--tool=helgrind", "memcheck"]);
}

#[test]
fn xml_without_a_file_is_refused() {
    let program = prog("clean");
    let run = fencepost(&["--xml=yes", program.to_str().unwrap()], &no_env());
    run.assert_one_line_error(&["--xml-file"]);
}

#[test]
fn track_origins_is_accepted_with_one_notice_and_env_in_log_file_expands() {
    let dir = scratch_dir("dropin_origins");
    let program = prog("clean");
    let run = fencepost(
        &[
            "--track-origins=yes",
            "--undef-value-errors=no",
            "--demangle=no",
            "--leak-check-heuristics=all",
            "--show-below-main=no",
            "--log-file=%q{FP_LOG_DIR}/out.log",
            program.to_str().unwrap(),
        ],
        &[("FP_LOG_DIR", dir.as_os_str())],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let notices = run
        .stderr
        .lines()
        .filter(|l| l.contains("--track-origins is not supported"))
        .count();
    assert_eq!(notices, 1, "{}", run.stderr);
    assert!(
        dir.join("out.log").is_file(),
        "%q{{FP_LOG_DIR}} not expanded"
    );
}

#[test]
fn xml_yes_with_pid_in_xml_file_writes_the_main_process_document() {
    let dir = scratch_dir("dropin_xml");
    let program = prog("double_free");
    let run = fencepost(
        &[
            "--xml=yes",
            &format!("--xml-file={}/vg.%p.xml", dir.display()),
            "--log-file=/dev/null",
            program.to_str().unwrap(),
        ],
        &no_env(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed");
    let pid = doc
        .descendants()
        .find(|n| n.has_tag_name("pid"))
        .and_then(|n| n.text())
        .unwrap();
    assert_eq!(
        files[0].file_name().unwrap().to_string_lossy(),
        format!("vg.{pid}.xml")
    );
    let kinds: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("kind"))
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(kinds, ["InvalidFree"], "{text}");
}
