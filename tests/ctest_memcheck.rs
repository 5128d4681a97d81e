//! The ctest proof: a CMake project (tests/ctest_project/) whose `ctest -T memcheck`, with
//! fencepost as the memory checker, reports the defects of a leaking and an overrunning
//! test and none for a clean one. ctest runs the checker with `--log-file=…` and memcheck's
//! options and parses the log as valgrind text, so this passes only if fencepost's
//! command line and memcheck-format text are what ctest expects.
//!
//! Needs cmake (with ctest) and a C compiler; `.ci/run` installs them. A missing cmake
//! fails the test with a clear message: it is never skipped.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::{
    fencepost_bin, repo_root, scratch_dir, spawn_in_own_group, wait_with_output, RUN_TIMEOUT,
};

fn require_cmake() {
    for tool in ["cmake", "ctest"] {
        let ok = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "`{tool}` is not installed: the ctest memcheck test needs cmake \
             (`apt-get install cmake`; .ci/run installs it)"
        );
    }
}

fn run(cmd: &mut Command, dir: &Path) -> String {
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let child = spawn_in_own_group(cmd);
    let (status, stdout, stderr) = wait_with_output(child, RUN_TIMEOUT, &what);
    assert!(
        status.success(),
        "{what} failed: {status:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

/// Configures and builds the project with `defines`, runs `ctest -T memcheck`, and returns
/// ctest's output, the build directory, and the defects per test from ctest's
/// DynamicAnalysis.xml.
fn memcheck_with(test: &str, defines: &[String]) -> (String, PathBuf, Vec<(String, u64)>) {
    require_cmake();
    let build = scratch_dir(test);
    let source = repo_root().join("tests").join("ctest_project");
    let mut configure = Command::new("cmake");
    configure
        .arg("-S")
        .arg(&source)
        .arg("-B")
        .arg(&build)
        .args(defines);
    run(&mut configure, &build);
    run(Command::new("cmake").arg("--build").arg(&build), &build);
    let out = run(Command::new("ctest").args(["-T", "memcheck"]), &build);

    let testing = build.join("Testing");
    let tag = std::fs::read_to_string(testing.join("TAG")).expect("ctest wrote Testing/TAG");
    let tag = tag.lines().next().expect("a tag").trim().to_owned();
    let xml_path = testing.join(&tag).join("DynamicAnalysis.xml");
    let xml = std::fs::read_to_string(&xml_path)
        .unwrap_or_else(|e| panic!("no {}: {e}\nctest output:\n{out}", xml_path.display()));
    let doc = roxmltree::Document::parse(&xml).expect("ctest's DynamicAnalysis.xml parses");
    let defects = doc
        .descendants()
        .filter(|n| n.has_tag_name("Test") && n.attribute("Status").is_some())
        .map(|t| {
            let name = t
                .children()
                .find(|c| c.has_tag_name("Name"))
                .and_then(|n| n.text())
                .unwrap_or("")
                .to_owned();
            let count = t
                .descendants()
                .filter(|d| d.has_tag_name("Defect"))
                .filter_map(|d| d.text()?.trim().parse::<u64>().ok())
                .sum();
            (name, count)
        })
        .collect();
    (out, build, defects)
}

fn defects_of(defects: &[(String, u64)], name: &str) -> u64 {
    defects
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, c)| *c)
        .sum()
}

/// ctest's own summary line for a test: "1/3 MemCheck: #1: leaky ....   Defects: 1".
fn summary_defects(out: &str, name: &str) -> Option<u64> {
    out.lines()
        .filter(|l| l.contains("MemCheck: #"))
        .find(|l| l.split_whitespace().nth(3) == Some(name))
        .and_then(|l| {
            l.rsplit("Defects:")
                .next()
                .filter(|_| l.contains("Defects:"))
        })
        .and_then(|n| n.trim().parse().ok())
}

fn assert_leaky_and_overrun_found_clean_not(out: &str, build: &Path, defects: &[(String, u64)]) {
    let context = format!("ctest output:\n{out}\ndefects: {defects:?}");
    assert!(
        defects_of(defects, "leaky") >= 1,
        "leaky: no defect\n{context}"
    );
    assert!(
        defects_of(defects, "overrun") >= 1,
        "overrun: no defect\n{context}"
    );
    assert_eq!(
        defects_of(defects, "clean"),
        0,
        "clean has defects\n{context}"
    );
    assert!(
        summary_defects(out, "leaky").is_some_and(|n| n >= 1),
        "{context}"
    );
    assert!(
        summary_defects(out, "overrun").is_some_and(|n| n >= 1),
        "{context}"
    );
    assert_eq!(summary_defects(out, "clean"), None, "{context}");
    assert!(out.contains("Memory Leak - 1"), "{context}");
    // ctest files memcheck's "Invalid read of size N" under this name.
    assert!(out.contains("Uninitialized Memory Read - 1"), "{context}");

    // The clean test did run under fencepost: its log exists and holds no finding.
    let logs = build.join("Testing").join("Temporary");
    let clean_log = std::fs::read_dir(&logs)
        .expect("Testing/Temporary")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("MemoryChecker."))
        })
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .filter(|log| !log.contains("definitely lost") && !log.contains("Invalid read"))
        .count();
    assert_eq!(
        clean_log, 1,
        "expected exactly one finding-free log (clean's)\n{context}"
    );
}

#[test]
fn ctest_memcheck_with_fencepost_as_memorycheck_command_finds_the_leak_and_the_overrun() {
    // ctest recognises valgrind by its name or by MEMORYCHECK_TYPE; with fencepost's own
    // name, the type says how to parse the log and --valgrind-compat asks for that format.
    let fencepost = fencepost_bin();
    let (out, build, defects) = memcheck_with(
        "ctest_memcheck_fencepost",
        &[
            format!("-DMEMORYCHECK_COMMAND={}", fencepost.display()),
            "-DMEMORYCHECK_TYPE=Valgrind".into(),
            "-DMEMORYCHECK_COMMAND_OPTIONS=--valgrind-compat -q --tool=memcheck --leak-check=yes \
             --show-reachable=yes --num-callers=50"
                .into(),
        ],
    );
    assert_leaky_and_overrun_found_clean_not(&out, &build, &defects);
}

#[test]
fn ctest_memcheck_with_fencepost_linked_as_valgrind_needs_no_configuration() {
    // fencepost reached through a link named `valgrind`: ctest's defaults, memcheck's text.
    let dir = scratch_dir("ctest_memcheck_link");
    let link = dir.join("valgrind");
    std::os::unix::fs::symlink(fencepost_bin(), &link).expect("symlink");
    let (out, build, defects) = memcheck_with(
        "ctest_memcheck_as_valgrind",
        &[format!("-DMEMORYCHECK_COMMAND={}", link.display())],
    );
    assert_leaky_and_overrun_found_clean_not(&out, &build, &defects);
}
