//! The text report: reads like memcheck's (its users know it), but says plainly what is wrong
//! and where the block came from. Only reads a [`Report`]; display options filter and
//! shorten, they never change the findings (the JSON keeps everything).

use std::fmt::Write;

use crate::analysis::plural;
use crate::picture::{draw, picture_for};
use crate::report::{
    signal_abbrev, ErrorKind, ErrorReport, ExitStatus, FoundAt, Frame, LeakKind, LeakTotal,
    LeakTotals, LossRecord, ProcessEnd, ProcessReport, ProcessStartKind, Report,
};

/// `--leak-check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeakCheck {
    /// No leak records and no leak summary.
    No,
    /// The leak summary only.
    Summary,
    /// Loss records of the shown kinds, then the summary.
    #[default]
    Full,
}

#[derive(Debug, Clone)]
pub struct TextOptions {
    pub leak_check: LeakCheck,
    /// `--show-leak-kinds`: which loss records are printed in full.
    pub show_leak_kinds: Vec<LeakKind>,
    /// `--errors-for-leak-kinds`: which loss records count in the ERROR SUMMARY.
    pub errors_for_leak_kinds: Vec<LeakKind>,
    /// Frames shown per stack; 0 means all the report has.
    pub num_callers: usize,
    /// `--gen-suppressions=all`: a suppression block after each error and shown loss record.
    pub gen_suppressions: bool,
    /// `--explain`: a plain explanation of the kind after each error and shown loss record
    /// ([`crate::explain`]).
    pub explain: bool,
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            leak_check: LeakCheck::Full,
            show_leak_kinds: vec![LeakKind::Definite, LeakKind::Possible],
            errors_for_leak_kinds: vec![LeakKind::Definite, LeakKind::Possible],
            num_callers: 0,
            gen_suppressions: false,
            explain: false,
        }
    }
}

/// Renders the whole report. One section per process image; when there are several, each
/// starts with a line naming its pid and executable.
pub fn render_text(report: &Report, opts: &TextOptions) -> String {
    let mut out = String::new();
    let several = report.processes.len() > 1;
    let command = report.command.join(" ");
    let main_pid = report
        .processes
        .iter()
        .find(|p| p.start == ProcessStartKind::Main)
        .or(report.processes.first())
        .map(|p| p.pid);
    match main_pid {
        Some(pid) => {
            let _ = writeln!(out, "fencepost: {} (pid {pid})", or_unknown(&command));
        }
        None => {
            let _ = writeln!(out, "fencepost: {}", or_unknown(&command));
        }
    }

    for (index, process) in report.processes.iter().enumerate() {
        let owner = owns_findings(report, index);
        if several {
            let _ = writeln!(out, "\n{}", process_heading(process));
        }
        if owner {
            for error in report.errors.iter().filter(|e| e.pid == process.pid) {
                out.push('\n');
                render_error(&mut out, error, opts.num_callers);
                if opts.explain {
                    out.push_str(&crate::explain::as_text(&crate::explain::error(error.kind)));
                }
                if opts.gen_suppressions {
                    out.push_str(&crate::suppress::generate_for_error(error));
                }
            }
        }
        if process.end == ProcessEnd::Exec {
            let _ = writeln!(
                out,
                "\nreplaced by exec: not leak-checked; total heap usage: {}",
                heap_usage(process)
            );
            continue;
        }
        let records: Vec<&LossRecord> = if owner {
            report
                .leaks
                .iter()
                .filter(|l| l.pid == process.pid)
                .collect()
        } else {
            Vec::new()
        };
        let set_aside = if owner {
            crate::suppress::set_aside_leaks(report, process.pid)
        } else {
            Default::default()
        };
        render_process_leaks(&mut out, process, &records, opts, set_aside);
    }

    if !report.warnings.is_empty() {
        out.push('\n');
        for w in &report.warnings {
            match w.pid {
                Some(pid) => {
                    let _ = writeln!(out, "warning (pid {pid}): {}", w.message);
                }
                None => {
                    let _ = writeln!(out, "warning: {}", w.message);
                }
            }
        }
    }

    let notes = crate::explain::modules_without_debug_info(shown_frames(report, opts));
    if !notes.is_empty() {
        out.push('\n');
        for module in notes {
            let _ = writeln!(out, "{}", crate::explain::no_debug_info_note(&module));
        }
    }

    let leak_kinds: &[LeakKind] = if opts.leak_check == LeakCheck::No {
        &[]
    } else {
        &opts.errors_for_leak_kinds
    };
    let errors = report.error_count(leak_kinds);
    let contexts = report.error_contexts(leak_kinds);
    out.push_str(&crate::baseline::render_known(report));
    out.push_str(&crate::suppress::render_used(report));
    // memcheck's "(suppressed: N from M)", when suppressions took something.
    let suppressed = match crate::suppress::suppressed_counts(report) {
        (_, 0) => String::new(),
        (n, m) => format!(" (suppressed: {} from {})", thousands(n), thousands(m)),
    };
    let _ = writeln!(
        out,
        "\nERROR SUMMARY: {} {} from {} {}{suppressed}",
        thousands(errors as u64),
        plural(errors as u64, "error", "errors"),
        thousands(contexts as u64),
        plural(contexts as u64, "context", "contexts"),
    );
    out
}

/// The frames the text report prints: every error's stacks, and the loss records of the
/// shown kinds, each cut at `num_callers`.
fn shown_frames<'a>(report: &'a Report, opts: &'a TextOptions) -> impl Iterator<Item = &'a Frame> {
    let limit = if opts.num_callers == 0 {
        usize::MAX
    } else {
        opts.num_callers
    };
    let errors = report.errors.iter().flat_map(move |e| {
        e.stack
            .iter()
            .take(limit)
            .chain(e.alloc_stack.iter().flat_map(move |s| s.iter().take(limit)))
            .chain(e.free_stack.iter().flat_map(move |s| s.iter().take(limit)))
    });
    let leaks = report
        .leaks
        .iter()
        .filter(move |l| {
            opts.leak_check == LeakCheck::Full && opts.show_leak_kinds.contains(&l.kind)
        })
        .flat_map(move |l| l.stack.iter().take(limit));
    errors.chain(leaks)
}

/// Findings carry a pid, not an image: a pid that exec'd has several images, and its findings
/// are shown once, in the section of its last image.
fn owns_findings(report: &Report, index: usize) -> bool {
    let pid = report.processes[index].pid;
    let last = report
        .processes
        .iter()
        .enumerate()
        .filter(|(_, p)| p.pid == pid)
        .map(|(i, _)| i)
        .next_back();
    last == Some(index)
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() {
        "(unknown command)"
    } else {
        s
    }
}

fn process_heading(p: &ProcessReport) -> String {
    let origin = match p.start {
        ProcessStartKind::Main => String::new(),
        ProcessStartKind::Fork => format!(", forked from {}", p.ppid),
        ProcessStartKind::Exec => ", after exec".to_string(),
        ProcessStartKind::Unknown => String::new(),
    };
    let ending = match (p.end, p.exit) {
        (ProcessEnd::Exec, _) => "replaced by exec".to_string(),
        (_, Some(ExitStatus::Signal(s))) => format!("killed by {}", signal_name(s)),
        (ProcessEnd::Died, _) => "died without exiting".to_string(),
        (_, Some(ExitStatus::Code(c))) => format!("exited with code {c}"),
        (_, None) => "exited".to_string(),
    };
    format!(
        "== pid {}{origin}: {} ({ending}) ==",
        p.pid,
        or_unknown(&p.exe)
    )
}

fn render_error(out: &mut String, e: &ErrorReport, num_callers: usize) {
    let times = if e.count > 1 {
        format!(" ({} times)", thousands(e.count))
    } else {
        String::new()
    };
    let thread = if e.thread != 0 && e.thread != e.pid {
        format!(" [thread {}]", e.thread)
    } else {
        String::new()
    };
    let _ = writeln!(out, "{}: {}{times}{thread}", e.kind, e.message);
    if !matches!(
        e.kind,
        ErrorKind::DoubleFree | ErrorKind::InvalidFree | ErrorKind::MismatchedFree
    ) {
        render_access_error(out, e, num_callers);
        return;
    }
    render_stack(out, &e.stack, num_callers);
    if let Some(stack) = &e.alloc_stack {
        let (size, by) = match &e.block {
            Some(b) => (
                b.size,
                b.allocated_by
                    .as_deref()
                    .map(|f| format!(" by {f}"))
                    .unwrap_or_default(),
            ),
            None => (0, String::new()),
        };
        let what = match (&e.block, e.kind) {
            (Some(b), ErrorKind::InvalidFree) if b.offset != 0 => format!(
                " the address is {} {} inside a block of {} {} allocated{by} at",
                b.offset,
                plural(b.offset.unsigned_abs(), "byte", "bytes"),
                thousands(size),
                plural(size, "byte", "bytes")
            ),
            _ => format!(
                " block of {} {} allocated{by} at",
                thousands(size),
                plural(size, "byte", "bytes")
            ),
        };
        let _ = writeln!(out, "{what}");
        render_stack(out, stack, num_callers);
    }
    if let Some(stack) = &e.free_stack {
        let _ = writeln!(out, " freed at");
        render_stack(out, stack, num_callers);
    }
}

/// Bad accesses, overwritten canaries and fatal signals: where, the block's history, advice,
/// and the picture of the block and the access.
fn render_access_error(out: &mut String, e: &ErrorReport, num_callers: usize) {
    // A canary's stack is the free that found it (none at exit): shown as the free below.
    if e.found_at.is_none() {
        render_stack(out, &e.stack, num_callers);
    }
    let block = e.block.as_ref();
    if let Some(stack) = &e.alloc_stack {
        let by = block
            .and_then(|b| b.allocated_by.as_deref())
            .map(|f| format!(" by {f}"))
            .unwrap_or_default();
        let _ = writeln!(out, " block allocated{by} at");
        render_stack(out, stack, num_callers);
    }
    if let Some(stack) = &e.free_stack {
        let by = block
            .and_then(|b| b.freed_by.as_deref())
            .map(|f| format!(" by {}", call_text(f)))
            .unwrap_or_default();
        let _ = writeln!(out, " freed{by} at");
        render_stack(out, stack, num_callers);
    }
    if e.found_at == Some(FoundAt::Free) && e.free_stack.is_none() {
        let _ = writeln!(out, " freed at");
        render_stack(out, &e.stack, num_callers);
    }
    if let Some(advice) = &e.advice {
        let _ = writeln!(out, " {advice}");
    }
    if let Some(picture) = picture_for(e) {
        let [top, bottom] = draw(&picture);
        let _ = writeln!(out, "\n   {top}\n   {bottom}");
    }
}

/// `free()`, but `operator delete` as is.
fn call_text(name: &str) -> String {
    if name.starts_with("operator") {
        name.to_string()
    } else {
        format!("{name}()")
    }
}

fn render_stack(out: &mut String, stack: &[Frame], num_callers: usize) {
    if stack.is_empty() {
        let _ = writeln!(out, "   (no stack recorded)");
        return;
    }
    let limit = if num_callers == 0 {
        stack.len()
    } else {
        num_callers
    };
    for (i, frame) in stack.iter().take(limit).enumerate() {
        let lead = if i == 0 { "at" } else { "by" };
        let _ = writeln!(out, "   {lead} {}", frame_text(frame));
    }
}

/// `func (file:line)`, or `0xADDR (in module)` when the function is unknown.
pub fn frame_text(f: &Frame) -> String {
    let mut s = match &f.function {
        Some(func) => func.clone(),
        None => format!("{:#x}", f.address),
    };
    match (&f.file, f.line, &f.module) {
        (Some(file), Some(line), _) => {
            let _ = write!(s, " ({}:{line})", basename(file));
        }
        (Some(file), None, _) => {
            let _ = write!(s, " ({})", basename(file));
        }
        (None, _, Some(module)) => {
            let _ = write!(s, " (in {module})");
        }
        (None, _, None) => {}
    }
    if f.inlined {
        s.push_str(" (inlined)");
    }
    s
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn render_process_leaks(
    out: &mut String,
    process: &ProcessReport,
    records: &[&LossRecord],
    opts: &TextOptions,
    // Loss records suppressed, and known from the baseline: still in use at exit.
    (suppressed, known): (LeakTotal, LeakTotal),
) {
    let mut totals = LeakTotals::default();
    let mut in_use = LeakTotal::default();
    in_use.add(suppressed.bytes, suppressed.blocks, suppressed.records);
    in_use.add(known.bytes, known.blocks, known.records);
    for r in records {
        totals.get_mut(r.kind).add(r.bytes, r.blocks, 1);
        in_use.add(r.bytes, r.blocks, 1);
    }

    if opts.leak_check == LeakCheck::Full {
        let n = records.len();
        for (i, r) in records.iter().enumerate() {
            if !opts.show_leak_kinds.contains(&r.kind) {
                continue;
            }
            let _ = writeln!(
                out,
                "\n{} {} in {} {} {} (loss record {} of {})",
                thousands(r.bytes),
                plural(r.bytes, "byte", "bytes"),
                thousands(r.blocks),
                plural(r.blocks, "block", "blocks"),
                leak_phrase(r.kind),
                i + 1,
                n
            );
            render_stack(out, &r.stack, opts.num_callers);
            if opts.explain {
                out.push_str(&crate::explain::as_text(&crate::explain::leak(r.kind)));
            }
            if opts.gen_suppressions {
                out.push_str(&crate::suppress::generate_for_leak(r));
            }
        }
    }

    let _ = writeln!(
        out,
        "\nHEAP SUMMARY: in use at exit: {} {} in {} {}; total heap usage: {}",
        thousands(in_use.bytes),
        plural(in_use.bytes, "byte", "bytes"),
        thousands(in_use.blocks),
        plural(in_use.blocks, "block", "blocks"),
        heap_usage(process)
    );
    let own = process.allocations.saturating_sub(process.inherited);
    if let Some(note) = process.guard.and_then(|g| g.sample_note(own)) {
        let _ = writeln!(out, "{note}");
    }
    if let Some(guard) = process.guard.filter(|g| g.unguarded > 0) {
        let _ = writeln!(
            out,
            "{} {} not guarded (guard budget reached); their overruns are only found at free",
            thousands(guard.unguarded),
            plural(guard.unguarded, "block was", "blocks were"),
        );
    }
    if opts.leak_check == LeakCheck::No {
        return;
    }
    let _ = writeln!(out, "LEAK SUMMARY:");
    let lines = [
        ("   definitely lost", LeakKind::Definite),
        ("   indirectly lost", LeakKind::Indirect),
        ("     possibly lost", LeakKind::Possible),
        ("   still reachable", LeakKind::Reachable),
    ];
    for (label, kind) in lines {
        let t = totals.get(kind);
        let _ = writeln!(out, "{label}: {}", bytes_in_blocks(t));
    }
    if suppressed.records > 0 {
        let _ = writeln!(out, "        suppressed: {}", bytes_in_blocks(&suppressed));
    }
    if known.records > 0 {
        let _ = writeln!(out, "  known (baseline): {}", bytes_in_blocks(&known));
    }
    if totals.unreleased.blocks > 0 || process.end == ProcessEnd::Died {
        let _ = writeln!(
            out,
            "        unreleased: {} (the process died before exit)",
            bytes_in_blocks(&totals.unreleased)
        );
    }
    let hidden: Vec<&str> = LeakKind::ALL
        .iter()
        .filter(|k| totals.get(**k).records > 0)
        .filter(|k| opts.leak_check != LeakCheck::Full || !opts.show_leak_kinds.contains(k))
        .map(|k| k.as_str())
        .collect();
    if !hidden.is_empty() {
        let _ = writeln!(
            out,
            "   not shown: {} (rerun with --leak-check=full --show-leak-kinds=all to see them)",
            hidden.join(", ")
        );
    }
}

fn heap_usage(p: &ProcessReport) -> String {
    let inherited = if p.inherited > 0 {
        format!(" ({} inherited from the parent)", thousands(p.inherited))
    } else {
        String::new()
    };
    format!(
        "{} {}{inherited}, {} {}, {} {} allocated",
        thousands(p.allocations),
        plural(p.allocations, "alloc", "allocs"),
        thousands(p.frees),
        plural(p.frees, "free", "frees"),
        thousands(p.bytes_allocated),
        plural(p.bytes_allocated, "byte", "bytes"),
    )
}

fn bytes_in_blocks(t: &LeakTotal) -> String {
    format!(
        "{} {} in {} {}",
        thousands(t.bytes),
        plural(t.bytes, "byte", "bytes"),
        thousands(t.blocks),
        plural(t.blocks, "block", "blocks")
    )
}

fn leak_phrase(kind: LeakKind) -> &'static str {
    match kind {
        LeakKind::Definite => "are definitely lost",
        LeakKind::Indirect => "are indirectly lost",
        LeakKind::Possible => "are possibly lost",
        LeakKind::Reachable => "are still reachable",
        LeakKind::Unreleased => "were never released (the process died)",
    }
}

fn signal_name(sig: i32) -> String {
    match signal_abbrev(sig) {
        Some(name) => format!("signal {sig} ({name})"),
        None => format!("signal {sig}"),
    }
}

/// `1234567` → `1,234,567`, as memcheck prints counts.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
