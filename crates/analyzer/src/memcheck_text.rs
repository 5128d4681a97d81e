//! memcheck's text format (`--valgrind-compat`, or fencepost run as `valgrind`): every line
//! prefixed `==PID== `, memcheck's headlines, HEAP SUMMARY, loss records, LEAK SUMMARY and
//! ERROR SUMMARY, line for line as valgrind 3.19 writes them, so that tools parsing
//! memcheck's text (ctest's memory checker, CI scripts) read fencepost's unchanged.
//!
//! The wording comes from [`crate::memcheck`]; this module only lays it out. What fencepost
//! cannot say in memcheck's terms is listed there.

use crate::memcheck::{
    frame_text, loss_record_text, loss_records_of, owns_findings, thousands, FatalPart,
    MemcheckError,
};
use crate::report::{
    Frame, LeakKind, LeakTotal, LeakTotals, ProcessEnd, ProcessReport, ProcessStartKind, Report,
};
use crate::suppress::Finding;
use crate::text::{LeakCheck, TextOptions};

#[derive(Debug, Clone, Default)]
pub struct MemcheckTextOptions {
    pub text: TextOptions,
    /// `-q`: errors and loss records only, no header and no summaries.
    pub quiet: bool,
    /// `--child-silent-after-fork=yes`: nothing from forked children.
    pub child_silent_after_fork: bool,
}

/// One `==PID== `-prefixed section per process image, in the report's order.
pub fn render_memcheck_text(report: &Report, opts: &MemcheckTextOptions) -> String {
    let mut out = String::new();
    for (index, process) in report.processes.iter().enumerate() {
        if opts.child_silent_after_fork && process.start == ProcessStartKind::Fork {
            continue;
        }
        let mut w = Prefixed {
            out: &mut out,
            prefix: format!("=={}== ", process.pid),
        };
        render_process(&mut w, report, index, process, opts);
    }
    out
}

/// Writes lines with the `==PID== ` prefix (a blank line is the prefix alone, as memcheck's).
struct Prefixed<'a> {
    out: &'a mut String,
    prefix: String,
}

impl Prefixed<'_> {
    fn line(&mut self, text: impl AsRef<str>) {
        self.out.push_str(&self.prefix);
        self.out.push_str(text.as_ref());
        self.out.push('\n');
    }
    fn blank(&mut self) {
        self.line("");
    }
    fn stack(&mut self, stack: &[Frame], num_callers: usize) {
        let limit = if num_callers == 0 {
            stack.len()
        } else {
            num_callers
        };
        for (i, frame) in stack.iter().take(limit).enumerate() {
            let lead = if i == 0 { "at" } else { "by" };
            self.line(format!("   {lead} {}", frame_text(frame)));
        }
    }
}

fn render_process(
    w: &mut Prefixed,
    report: &Report,
    index: usize,
    process: &ProcessReport,
    opts: &MemcheckTextOptions,
) {
    let num_callers = opts.text.num_callers;
    if !opts.quiet && process.start != ProcessStartKind::Fork {
        let command = match process.start {
            ProcessStartKind::Main if !report.command.is_empty() => report.command.join(" "),
            _ => process.exe.clone(),
        };
        w.line("Memcheck, a memory error detector");
        w.line(format!(
            "fencepost {} writing memcheck's format (no valgrind involved)",
            env!("CARGO_PKG_VERSION")
        ));
        w.line(format!("Command: {command}"));
        w.line(format!("Parent PID: {}", process.ppid));
        w.blank();
    }
    let owner = owns_findings(report, index);
    let mut errors = 0u64;
    let mut contexts = 0u64;
    let mut fatals: Vec<FatalPart> = Vec::new();
    if owner {
        for e in report.errors.iter().filter(|e| e.pid == process.pid) {
            let m = MemcheckError::of(e);
            if let Some(part) = &m.error {
                w.line(&part.what);
                w.stack(part.stack, num_callers);
                for (text, stack) in &part.aux {
                    w.line(format!(" {text}"));
                    if let Some(stack) = stack {
                        w.stack(stack, num_callers);
                    }
                }
                w.blank();
                errors += m.counted(e);
                contexts += 1;
            }
            fatals.extend(m.fatal);
        }
    }
    for f in &fatals {
        if !opts.quiet {
            w.blank();
        }
        w.line(format!(
            "Process terminating with default action of signal {} ({})",
            f.signal, f.signame
        ));
        if let Some(event) = f.event {
            match f.address {
                Some(a) => w.line(format!(" {event} at address {a:#X}").replacen("0X", "0x", 1)),
                None => w.line(format!(" {event}")),
            }
        }
        w.stack(f.stack, num_callers);
    }
    if process.end == ProcessEnd::Exec {
        return; // replaced by another image: not leak-checked, as in memcheck
    }

    let records = if owner {
        loss_records_of(report, process.pid)
    } else {
        Vec::new()
    };
    let mut totals = LeakTotals::default();
    let mut in_use = LeakTotal::default();
    for r in &records {
        totals.get_mut(r.kind).add(r.bytes, r.blocks, 1);
        in_use.add(r.bytes, r.blocks, 1);
    }
    let leak_check = opts.text.leak_check;
    // What suppressions removed from this process, for memcheck's "suppressed:" figures.
    let mut supp_errors = 0u64;
    let mut supp_contexts = 0u64;
    let mut supp_leaked = LeakTotal::default();
    for s in report.suppressed.iter().filter(|_| owner) {
        match &s.finding {
            Finding::Error(e) if e.pid == process.pid => {
                supp_errors += e.count;
                supp_contexts += 1;
            }
            Finding::Leak(l) if l.pid == process.pid => {
                supp_leaked.add(l.bytes, l.blocks, 1);
                in_use.add(l.bytes, l.blocks, 0);
                if leak_check == LeakCheck::Full
                    && opts.text.errors_for_leak_kinds.contains(&l.kind)
                {
                    supp_errors += 1;
                    supp_contexts += 1;
                }
            }
            _ => {}
        }
    }
    if !opts.quiet {
        w.blank();
        w.line("HEAP SUMMARY:");
        w.line(format!(
            "    in use at exit: {} bytes in {} blocks",
            thousands(in_use.bytes),
            thousands(in_use.blocks)
        ));
        w.line(format!(
            "  total heap usage: {} allocs, {} frees, {} bytes allocated",
            thousands(process.allocations),
            thousands(process.frees),
            thousands(process.bytes_allocated)
        ));
        w.blank();
    }
    if leak_check == LeakCheck::Full {
        for (i, r) in records.iter().enumerate() {
            // As memcheck: a record of an --errors-for-leak-kinds kind counts, shown or not.
            if opts.text.errors_for_leak_kinds.contains(&r.kind) {
                errors += 1;
                contexts += 1;
            }
            if !opts.text.show_leak_kinds.contains(&r.kind) {
                continue;
            }
            w.line(loss_record_text(r, i + 1, records.len()));
            w.stack(&r.stack, num_callers);
            w.blank();
        }
    }
    if opts.quiet {
        return;
    }
    if leak_check == LeakCheck::No {
        w.line("For a detailed leak analysis, rerun with: --leak-check=full");
        w.blank();
    } else if in_use.blocks == 0 && in_use.bytes == 0 {
        w.line("All heap blocks were freed -- no leaks are possible");
        w.blank();
    } else {
        w.line("LEAK SUMMARY:");
        for (label, kind) in [
            ("   definitely lost", LeakKind::Definite),
            ("   indirectly lost", LeakKind::Indirect),
            ("     possibly lost", LeakKind::Possible),
            ("   still reachable", LeakKind::Reachable),
        ] {
            let t = totals.get(kind);
            w.line(format!(
                "{label}: {} bytes in {} blocks",
                thousands(t.bytes),
                thousands(t.blocks)
            ));
        }
        w.line(format!(
            "        suppressed: {} bytes in {} blocks",
            thousands(supp_leaked.bytes),
            thousands(supp_leaked.blocks)
        ));
        if totals.unreleased.blocks > 0 {
            w.line(format!(
                "        unreleased: {} bytes in {} blocks (the process died before the leak check)",
                thousands(totals.unreleased.bytes),
                thousands(totals.unreleased.blocks)
            ));
        }
        if leak_check == LeakCheck::Summary {
            w.line("Rerun with --leak-check=full to see details of leaked memory");
        } else if totals.reachable.blocks > 0
            && !opts.text.show_leak_kinds.contains(&LeakKind::Reachable)
        {
            w.line("Reachable blocks (those to which a pointer was found) are not shown.");
            w.line("To see them, rerun with: --leak-check=full --show-leak-kinds=all");
        }
        w.blank();
    }
    w.line(format!(
        "ERROR SUMMARY: {} errors from {} contexts (suppressed: {} from {})",
        thousands(errors),
        thousands(contexts),
        thousands(supp_errors),
        thousands(supp_contexts)
    ));
}

/// Errors memcheck would count over the whole report (its ERROR SUMMARY lines summed):
/// every error occurrence it reports, plus, with `--leak-check=full`, one per loss record
/// of the `--errors-for-leak-kinds` kinds.
pub fn memcheck_error_count(report: &Report, opts: &TextOptions) -> u64 {
    let errors: u64 = report
        .errors
        .iter()
        .map(|e| MemcheckError::of(e).counted(e))
        .sum();
    let leaks = if opts.leak_check == LeakCheck::Full {
        report
            .leaks
            .iter()
            .filter(|l| opts.errors_for_leak_kinds.contains(&l.kind))
            .count() as u64
    } else {
        0
    };
    errors + leaks
}
