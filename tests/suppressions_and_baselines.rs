//! Living with known findings: suppression files (valgrind's and LSan's), the blocks
//! `--gen-suppressions=all` writes, the built-in suppressions, fingerprints and
//! `--baseline`. The program is testprogs/c/known_findings.c: four findings, and a fifth
//! (a new leak through strdup) with the argument `extra`.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::cli::fencepost;
use support::*;

const SOURCE: &str = "c/known_findings.c";

fn files_dir(test: &str) -> PathBuf {
    scratch_dir(&format!("{test}_files"))
}

fn array<'a>(json: &'a Value, key: &str) -> &'a Vec<Value> {
    json[key]
        .as_array()
        .unwrap_or_else(|| panic!("no array '{key}' in the report"))
}

/// The fingerprints of a report's errors and of its loss records of `kinds`.
fn fingerprints(json: &Value, kinds: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in array(json, "errors") {
        out.insert(
            e["fingerprint"]
                .as_str()
                .expect("error fingerprint")
                .to_string(),
        );
    }
    for l in array(json, "leaks") {
        if kinds.contains(&l["kind"].as_str().unwrap_or("")) {
            out.insert(
                l["fingerprint"]
                    .as_str()
                    .expect("leak fingerprint")
                    .to_string(),
            );
        }
    }
    out
}

/// The suppression blocks in a text report.
fn generated_blocks(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line == "{" {
            inside = true;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
        if line == "}" {
            inside = false;
        }
    }
    out
}

/// The one definite loss record left, checked to be the strdup of add_label.
fn assert_only_the_extra_leak(json: &Value, what: &str) {
    let definite: Vec<&Value> = array(json, "leaks")
        .iter()
        .filter(|l| matches!(l["kind"].as_str(), Some("definite" | "possible")))
        .collect();
    assert_eq!(definite.len(), 1, "{what}: one leak left\n{json:#}");
    let extra = marker_line(SOURCE, "extra");
    let stack = definite[0]["stack"].as_array().expect("stack");
    assert!(
        stack
            .iter()
            .any(|f| f["function"] == "add_label" && f["line"].as_u64() == Some(u64::from(extra))),
        "{what}: the leak left is add_label's (known_findings.c:{extra})\n{:#}",
        definite[0]
    );
    assert_eq!(definite[0]["bytes"], 7, "{what}");
    assert!(
        array(json, "errors").is_empty(),
        "{what}: no errors left\n{json:#}"
    );
}

#[test]
fn generated_suppressions_suppress_exactly_those_findings() {
    let prog = prog("known_findings");
    let first = run_fencepost("gen_first", &["--gen-suppressions=all"], &prog, &[]);
    assert_eq!(first.code(), 0, "{}", first.stderr);
    let blocks = generated_blocks(&first.stderr);
    assert_eq!(
        blocks.matches("<insert_a_suppression_name_here>").count(),
        4,
        "{blocks}"
    );
    assert!(
        blocks.contains("   Memcheck:Leak\n   match-leak-kinds: definite\n   fun:malloc\n   fun:make_node\n   fun:main\n}"),
        "memcheck's format, malloc on top:\n{blocks}"
    );
    assert!(
        blocks.contains("   Memcheck:Addr1\n   fun:main\n}"),
        "{blocks}"
    );
    assert!(
        blocks.contains("   Memcheck:Free\n   fun:free\n   fun:main\n}"),
        "{blocks}"
    );
    let supp = files_dir("gen").join("generated.supp");
    std::fs::write(&supp, &blocks).expect("write supp");
    let supp_opt = format!("--suppressions={}", supp.display());

    // The same program: nothing left, exit 0 despite --error-exitcode.
    let same = run_fencepost("gen_same", &[&supp_opt, "--error-exitcode=9"], &prog, &[]);
    assert_eq!(same.code(), 0, "all four suppressed\n{}", same.stderr);
    assert!(array(&same.report.json, "errors").is_empty());
    assert!(
        same.stderr.contains("(suppressed: 4 from 4)"),
        "{}",
        same.stderr
    );
    assert!(same.stderr.contains("used suppression:"), "{}", same.stderr);
    assert!(
        same.stderr
            .contains("        suppressed: 64 bytes in 2 blocks"),
        "{}",
        same.stderr
    );

    // With one more leak: exactly the new one is left; the suppressed ones are the four
    // findings of the first run (same fingerprints), each with the suppression's name.
    let extra = run_fencepost(
        "gen_extra",
        &[&supp_opt, "--error-exitcode=9"],
        &prog,
        &["extra"],
    );
    assert_eq!(
        extra.code(),
        9,
        "the new leak fails the run\n{}",
        extra.stderr
    );
    assert_only_the_extra_leak(&extra.report.json, "with generated suppressions");
    let suppressed = array(&extra.report.json, "suppressed");
    assert_eq!(suppressed.len(), 4, "{:#}", extra.report.json["suppressed"]);
    let suppressed_prints: BTreeSet<String> = suppressed
        .iter()
        .map(|s| {
            assert_eq!(s["suppression"], "<insert_a_suppression_name_here>");
            assert!(s["origin"]
                .as_str()
                .unwrap()
                .starts_with(&supp.display().to_string()));
            let finding = if s["error"].is_object() {
                &s["error"]
            } else {
                &s["leak"]
            };
            finding["fingerprint"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        suppressed_prints,
        fingerprints(&first.report.json, &["definite", "possible"]),
        "the suppressed findings are the first run's"
    );
    assert_eq!(extra.report.json["summary"]["errors"], 0);
    assert_eq!(
        extra.report.json["summary"]["leaked"]["definite"]["records"],
        1
    );
}

#[test]
fn handwritten_memcheck_and_lsan_suppressions() {
    let prog = prog("known_findings");
    let dir = files_dir("handwritten");
    // Wildcards, `...`, a mangled-style pattern that matches nothing, another tool's block.
    let supp = dir.join("mine.supp");
    std::fs::write(
        &supp,
        "# leaks through our allocating helpers\n\
         {\n   helpers\n   Memcheck:Leak\n   match-leak-kinds: definite,possible\n   fun:*alloc\n   fun:make_*\n   ...\n   fun:main\n}\n\
         {\n   not-ours\n   Helgrind:Race\n   fun:*\n}\n\
         {\n   overread\n   Memcheck:Addr1\n   src:known_findings.c\n}\n\
         {\n   wrong-size\n   Memcheck:Addr4\n   fun:main\n}\n",
    )
    .unwrap();
    let lsan = dir.join("lsan.txt");
    std::fs::write(&lsan, "# LSan's format\nleak:add_label\n").unwrap();
    let opts = [
        format!("--suppressions={}", supp.display()),
        format!("--suppressions={}", lsan.display()),
        "--error-exitcode=9".to_string(),
    ];
    let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
    let run = run_fencepost("handwritten", &opts, &prog, &["extra"]);
    let json = &run.report.json;
    // Left: the double free only (no Free suppression).
    let errors = array(json, "errors");
    assert_eq!(errors.len(), 1, "{json:#}");
    assert_eq!(errors[0]["kind"], "double-free");
    assert_eq!(run.code(), 9);
    let by_name = |name: &str| {
        array(json, "suppressed")
            .iter()
            .filter(|s| s["suppression"] == name)
            .count()
    };
    assert_eq!(by_name("helpers"), 2, "make_node and make_table");
    assert_eq!(by_name("overread"), 1);
    assert_eq!(by_name("add_label"), 1, "the LSan line");
    assert_eq!(by_name("wrong-size"), 0);
    assert!(
        run.stderr.contains("(suppressed: 4 from 4)"),
        "{}",
        run.stderr
    );
}

#[test]
fn malformed_suppression_file_is_one_clear_error_before_running() {
    let prog = prog("known_findings");
    let supp = files_dir("malformed").join("bad.supp");
    std::fs::write(
        &supp,
        "{\n   x\n   Memcheck:Leak\n   fun:malloc\n   fnu:main\n}\n",
    )
    .unwrap();
    let out = fencepost(
        &[
            "run".to_string(),
            format!("--suppressions={}", supp.display()),
            "--".to_string(),
            prog.display().to_string(),
        ],
        &[],
    );
    assert_ne!(out.code, 0);
    assert_eq!(out.stdout, "", "the program did not run");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line:\n{}", out.stderr);
    assert!(
        lines[0].starts_with("fencepost: ")
            && lines[0].contains(&supp.display().to_string())
            && lines[0].contains("line 5")
            && lines[0].contains("fnu:main"),
        "{}",
        lines[0]
    );
}

#[test]
fn baseline_passes_the_same_run_and_fails_only_on_the_new_leak() {
    let prog = prog("known_findings");
    let first = run_fencepost("baseline_first", &[], &prog, &[]);
    let base = files_dir("baseline").join("old.json");
    std::fs::write(&base, first.report.json.to_string()).unwrap();
    let base_opt = format!("--baseline={}", base.display());

    let same = run_fencepost(
        "baseline_same",
        &[&base_opt, "--error-exitcode=1"],
        &prog,
        &[],
    );
    assert_eq!(same.code(), 0, "nothing new\n{}", same.stderr);
    assert_eq!(
        same.report.json["baseline"]["known"], 4,
        "{:#}",
        same.report.json["baseline"]
    );
    assert!(array(&same.report.json, "errors").is_empty());
    assert!(
        same.stderr
            .contains("4 known findings from the baseline were not reported"),
        "{}",
        same.stderr
    );
    assert!(
        same.stderr.contains("ERROR SUMMARY: 0 errors"),
        "{}",
        same.stderr
    );

    let extra = run_fencepost(
        "baseline_extra",
        &[&base_opt, "--error-exitcode=1"],
        &prog,
        &["extra"],
    );
    assert_eq!(extra.code(), 1, "the new leak fails\n{}", extra.stderr);
    assert_eq!(extra.report.json["baseline"]["known"], 4);
    assert_only_the_extra_leak(&extra.report.json, "with the baseline");
    assert!(
        extra.stderr.contains("add_label"),
        "the new leak is in the text"
    );
    assert!(
        !extra.stderr.contains("make_node"),
        "known ones are not:\n{}",
        extra.stderr
    );

    // A report made with a baseline serves as the next one: its known findings count.
    let chained = files_dir("baseline_chain").join("chained.json");
    std::fs::write(&chained, extra.report.json.to_string()).unwrap();
    let again = run_fencepost(
        "baseline_chained",
        &[
            &format!("--baseline={}", chained.display()),
            "--error-exitcode=1",
        ],
        &prog,
        &["extra"],
    );
    assert_eq!(again.code(), 0, "{}", again.stderr);
    assert_eq!(again.report.json["baseline"]["known"], 5);
}

/// Copies known_findings.c with `blank` empty lines on top (every line moves) and builds
/// it into `dir`, as a recompile that does not touch the code.
fn build_shifted(dir: &Path, blank: usize) -> PathBuf {
    let src = dir.join("known_findings.c");
    let text = std::fs::read_to_string(source_path(SOURCE)).unwrap();
    std::fs::write(&src, "\n".repeat(blank) + &text).unwrap();
    let out = dir.join("known_findings");
    let status = Command::new("gcc")
        .args(["-g", "-O0", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("gcc");
    assert!(status.success());
    out
}

#[test]
fn fingerprints_survive_aslr_and_moved_lines() {
    let kinds = ["definite", "possible", "indirect", "reachable"];
    let a = run_fencepost("fp_a", &[], &prog("known_findings"), &["extra"]);
    let b = run_fencepost("fp_b", &[], &prog("known_findings"), &["extra"]);
    let prints_a = fingerprints(&a.report.json, &kinds);
    assert_eq!(
        prints_a.len(),
        5,
        "five distinct findings\n{:#}",
        a.report.json
    );
    assert!(prints_a
        .iter()
        .all(|p| p.len() == 16 && p.bytes().all(|c| c.is_ascii_hexdigit())));
    let addr = |j: &Value| j["leaks"][0]["stack"][0]["address"].clone();
    assert_ne!(
        addr(&a.report.json),
        addr(&b.report.json),
        "ASLR moved the program"
    );
    assert_eq!(
        prints_a,
        fingerprints(&b.report.json, &kinds),
        "same across runs"
    );

    let dir = files_dir("fp_moved");
    let moved = run_fencepost("fp_moved", &[], &build_shifted(&dir, 7), &["extra"]);
    let lines = |j: &Value| j["leaks"][0]["stack"][0]["line"].as_u64().unwrap();
    assert_ne!(
        lines(&a.report.json),
        lines(&moved.report.json),
        "the lines moved"
    );
    assert_eq!(
        prints_a,
        fingerprints(&moved.report.json, &kinds),
        "same after a rebuild"
    );
}

#[test]
fn correct_programs_report_nothing_with_default_suppressions() {
    let opts = ["--show-leak-kinds=definite,possible", "--error-exitcode=1"];
    let mut programs: Vec<(PathBuf, Vec<&str>)> = vec![
        (prog("clean"), vec![]),
        (prog("clean_cpp"), vec![]),
        (PathBuf::from("/bin/bash"), vec!["-c", "true"]),
        // Subshells: they once looked leaky (a fencepost bug, see default.supp).
        (
            PathBuf::from("/bin/bash"),
            vec!["-c", "x=$(echo hi); y=$(/bin/true); echo $x"],
        ),
    ];
    // The real interpreter, not a version manager's wrapper script.
    let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("python3 is installed (.ci/run)");
    programs.push((python, vec!["-c", "print(1)"]));
    for (i, (path, args)) in programs.iter().enumerate() {
        let run = run_fencepost(&format!("defaults_{i}"), &opts, path, args);
        assert_eq!(run.code(), 0, "{}: {}", path.display(), run.stderr);
        let json = &run.report.json;
        assert!(
            array(json, "errors").is_empty(),
            "{}: {json:#}",
            path.display()
        );
        for l in array(json, "leaks") {
            assert!(
                !matches!(l["kind"].as_str(), Some("definite" | "possible")),
                "{}: {l:#}",
                path.display()
            );
        }
    }
}
