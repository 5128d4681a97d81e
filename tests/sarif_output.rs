//! `--sarif FILE` validates against the SARIF 2.1.0 JSON schema (with a real validator:
//! ajv and the official schema, installed in tests/sarif by .ci/run — missing is a
//! failure, not a skip) and says what the text report says; `--github-annotations` writes
//! one workflow command per finding to stderr, none to stdout.

mod support;

use std::process::Command;

use serde_json::Value;
use support::*;

const SOURCE: &str = "c/known_findings.c";

#[test]
fn sarif_validates_and_carries_the_findings() {
    let dir = scratch_dir("sarif_files");
    let sarif = dir.join("report.sarif");
    let opt = format!("--sarif={}", sarif.display());
    let run = run_fencepost("sarif", &[&opt], &prog("known_findings"), &["extra"]);
    assert_eq!(run.code(), 0, "{}", run.stderr);

    let validator = repo_root().join("tests/sarif/validate.js");
    let out = Command::new("node")
        .arg(&validator)
        .arg(&sarif)
        .output()
        .expect("node is installed (.ci/run)");
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "SARIF validation failed:\n{said}");
    assert!(said.contains("valid SARIF 2.1.0"), "{said}");

    let log: Value = serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let run0 = &log["runs"][0];
    let rules = run0["tool"]["driver"]["rules"].as_array().unwrap();
    let rule_ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(rule_ids.contains(&"fencepost/heap-buffer-overflow"));
    assert!(rules
        .iter()
        .all(|r| r["shortDescription"]["text"].is_string() && r["help"]["text"].is_string()));
    let results = run0["results"].as_array().unwrap();
    // Overflow, double free, three definite leaks.
    assert_eq!(results.len(), 5, "{:#}", run0["results"]);
    let prints: Vec<&str> = results
        .iter()
        .map(|r| {
            r["partialFingerprints"]["fencepostFingerprint/v1"]
                .as_str()
                .unwrap()
        })
        .collect();
    let json_prints: Vec<&str> = run.report.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .chain(run.report.json["leaks"].as_array().unwrap())
        .filter(|f| !matches!(f["kind"].as_str(), Some("indirect" | "reachable")))
        .map(|f| f["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(prints, json_prints, "the JSON report's fingerprints");

    let overflow = results
        .iter()
        .find(|r| r["ruleId"] == "fencepost/heap-buffer-overflow")
        .expect("overflow result");
    assert_eq!(overflow["level"], "error");
    let loc = &overflow["locations"][0]["physicalLocation"];
    assert!(
        loc["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("known_findings.c"),
        "{loc:#}"
    );
    assert_eq!(
        loc["region"]["startLine"].as_u64(),
        Some(u64::from(marker_line(SOURCE, "overflow")))
    );
    let related = overflow["relatedLocations"].as_array().expect("alloc site");
    assert_eq!(
        related[0]["physicalLocation"]["region"]["startLine"].as_u64(),
        Some(u64::from(marker_line(SOURCE, "overflow") - 2)),
        "the malloc two lines above"
    );
    let strdup_leak = results
        .iter()
        .find(|r| {
            r["message"]["text"]
                .as_str()
                .unwrap()
                .starts_with("7 bytes")
        })
        .expect("strdup leak");
    assert_eq!(strdup_leak["ruleId"], "fencepost/leak-definite");
    assert_eq!(
        strdup_leak["locations"][0]["physicalLocation"]["region"]["startLine"].as_u64(),
        Some(u64::from(marker_line(SOURCE, "extra"))),
        "the first user frame, not strdup in libc"
    );
}

#[test]
fn github_annotations_go_to_stderr() {
    let run = run_fencepost(
        "annotations",
        &["--github-annotations"],
        &prog("known_findings"),
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    assert!(!run.stdout.contains("::error"), "stdout is the program's");
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("::error "))
        .collect();
    assert_eq!(lines.len(), 4, "{}", run.stderr);
    let overflow = marker_line(SOURCE, "overflow");
    assert!(
        lines.iter().any(|l| l.contains("known_findings.c,")
            && l.contains(&format!(",line={overflow},"))
            && l.contains("title=fencepost heap-buffer-overflow::read of 1 byte")),
        "{lines:#?}"
    );
}
