//! What happens to the findings between the analyzer and the outputs: suppressions
//! (`--suppressions`, the built-in defaults) and the baseline (`--baseline`) take theirs out
//! of the report; SARIF (`--sarif`) and GitHub annotations (`--github-annotations`) are
//! written from what is left.

use fencepost_analyzer::{
    annotations, sarif, Baseline, LeakCheck, LeakKind, Report, SuppressionSet,
};

use crate::ReportArgs;

/// The suppressions and baseline in effect, read before the program runs so that a bad file
/// is one clear error, not a lost run.
pub struct Filters {
    suppressions: SuppressionSet,
    baseline: Option<Baseline>,
}

impl Filters {
    pub fn load(args: &ReportArgs) -> Result<Filters, String> {
        let mut suppressions = SuppressionSet::new();
        if args.default_suppressions {
            suppressions.add_defaults();
        }
        for path in &args.suppressions {
            suppressions.add_file(path).map_err(|e| e.to_string())?;
        }
        let baseline = match &args.baseline {
            Some(path) => Some(Baseline::load(path)?),
            None => None,
        };
        Ok(Filters {
            suppressions,
            baseline,
        })
    }

    /// Whether these filters look at loss records' stacks: a suppression may match any kind
    /// of record (a suppressed reachable block is counted as suppressed), a baseline compares
    /// fingerprints.
    pub fn read_leak_stacks(&self) -> bool {
        !self.suppressions.is_empty() || self.baseline.is_some()
    }

    /// Suppressions first (a suppressed finding is not "known", it is gone), then the
    /// baseline, which only takes loss records that would count as errors.
    pub fn apply(&self, mut report: Report, args: &ReportArgs) -> Report {
        self.suppressions.apply(&mut report);
        if let Some(b) = &self.baseline {
            b.apply(&mut report, error_leak_kinds(args));
        }
        report
    }
}

/// Loss records that count as errors (none with `--leak-check=no`).
fn error_leak_kinds(args: &ReportArgs) -> &[LeakKind] {
    match args.leak_check {
        LeakCheck::No => &[],
        _ => &args.errors_for_leak_kinds.0,
    }
}

/// Loss records that are findings for SARIF and annotations: those shown or counted.
pub fn finding_leak_kinds(args: &ReportArgs) -> Vec<LeakKind> {
    if args.leak_check == LeakCheck::No {
        return Vec::new();
    }
    let mut kinds = args.show_leak_kinds.0.clone();
    for k in &args.errors_for_leak_kinds.0 {
        if !kinds.contains(k) {
            kinds.push(*k);
        }
    }
    kinds
}

pub fn write_sarif_and_annotations(report: &Report, args: &ReportArgs) -> Result<(), String> {
    if args.sarif.is_none() && !args.github_annotations {
        return Ok(());
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let kinds = finding_leak_kinds(args);
    if let Some(path) = &args.sarif {
        std::fs::write(path, sarif::render(report, &kinds, &cwd))
            .map_err(|e| format!("cannot write the SARIF report '{}': {e}", path.display()))?;
    }
    if args.github_annotations {
        // stderr: stdout is the traced program's (the Actions runner reads both).
        eprint!("{}", annotations::render(report, &kinds, &cwd));
    }
    Ok(())
}
