//! Baselines: adopt fencepost on a codebase with known findings and fail only on new ones.
//!
//! A baseline is a JSON report (`--json`) of an earlier run. Findings of the new run whose
//! [fingerprint](crate::fingerprint) appears in it are *known*: they leave `errors` and
//! `leaks`, are not counted as errors, and are listed under `baseline` in the new JSON
//! report; everything else is reported as usual. A report made with a baseline can itself
//! serve as the next baseline (its known findings are read too).

use std::collections::HashSet;
use std::fmt::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::report::{LeakKind, Report};
use crate::suppress::{recount_summary, Finding};

/// What `--baseline` did, as the JSON report's `baseline`: `{"file", "known", "findings"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineOutcome {
    /// The baseline file as given.
    pub file: String,
    /// Findings of this run already in the baseline.
    pub known: u64,
    /// Those findings, in full.
    #[serde(default)]
    pub findings: Vec<Finding>,
}

/// The fingerprints of a baseline report.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    pub file: String,
    pub fingerprints: HashSet<String>,
}

impl Baseline {
    /// Reads a JSON report written by `--json`. A report from before fingerprints existed
    /// gets them computed from its stacks.
    pub fn load(path: &Path) -> Result<Baseline, String> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the baseline '{file}': {e}"))?;
        let report = Report::from_json(&text).map_err(|e| format!("baseline '{file}': {e}"))?;
        Ok(Self::from_report(&report, file))
    }

    pub fn from_report(report: &Report, file: String) -> Baseline {
        let mut fingerprints = HashSet::new();
        for e in &report.errors {
            fingerprints.insert(Finding::Error(e.clone()).fingerprint());
        }
        for l in &report.leaks {
            fingerprints.insert(Finding::Leak(l.clone()).fingerprint());
        }
        if let Some(b) = &report.baseline {
            fingerprints.extend(b.findings.iter().map(Finding::fingerprint));
        }
        Baseline { file, fingerprints }
    }

    /// Moves the known findings out of `errors` and out of `leaks` (loss records of the
    /// `leak_kinds` that count as errors only: the others are not findings to fail on) into
    /// `report.baseline`, and recounts the summary.
    pub fn apply(&self, report: &mut Report, leak_kinds: &[LeakKind]) {
        let mut outcome = BaselineOutcome {
            file: self.file.clone(),
            known: 0,
            findings: Vec::new(),
        };
        let errors = std::mem::take(&mut report.errors);
        for e in errors {
            if self.fingerprints.contains(&e.fingerprint) {
                outcome.findings.push(Finding::Error(e));
            } else {
                report.errors.push(e);
            }
        }
        let leaks = std::mem::take(&mut report.leaks);
        for l in leaks {
            if leak_kinds.contains(&l.kind) && self.fingerprints.contains(&l.fingerprint) {
                outcome.findings.push(Finding::Leak(l));
            } else {
                report.leaks.push(l);
            }
        }
        outcome.known = outcome.findings.len() as u64;
        report.baseline = Some(outcome);
        recount_summary(report);
    }
}

/// The text report's line about known findings (empty without a baseline).
pub fn render_known(report: &Report) -> String {
    let mut out = String::new();
    if let Some(b) = &report.baseline {
        let _ = writeln!(
            out,
            "\n{} known {} from the baseline {} not reported ({})",
            b.known,
            crate::analysis::plural(b.known, "finding", "findings"),
            crate::analysis::plural(b.known, "was", "were"),
            b.file
        );
    }
    out
}
