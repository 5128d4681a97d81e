//! valgrind's XML output, protocol version 4, element for element as memcheck 3.19 writes
//! it (`--xml=yes --xml-file=F`, or `fencepost run --xml-file F`), so existing consumers of
//! memcheck's XML (CI plugins, IDEs, the valgrind XML parsers of test harnesses) read
//! fencepost's findings unchanged.
//!
//! Layout of a document (see valgrind's `docs/internals/xml-output-protocol4.txt`):
//! `<valgrindoutput>`, `<protocolversion>4`, `<protocoltool>memcheck`, `<preamble>`,
//! `<pid>`, `<ppid>`, `<tool>`, `<args>`, `<status>RUNNING`, the errors (and a
//! `<fatal_signal>` if the process died of one), `<status>FINISHED`, the loss records as
//! `<error>`s with `<xwhat>`, `<errorcounts>`, `<suppcounts>`. The words come from
//! [`crate::memcheck`], which also lists what fencepost cannot say in memcheck's terms
//! (notably: a definite record's `<leakedbytes>` counts its own blocks only).

use std::fmt::Write;

use crate::memcheck::{
    basename, dirname, leak_xml_kind, loss_record_text, loss_records_of, owns_findings,
    thread_number, MemcheckError,
};
use crate::report::{Frame, ProcessEnd, ProcessReport, ProcessStartKind, Report};
use crate::suppress::Finding;
use crate::text::{LeakCheck, TextOptions};

#[derive(Debug, Clone, Default)]
pub struct XmlOptions {
    pub text: TextOptions,
    /// The tool's own command line for `<args><vargv>`: the executable, then its arguments.
    pub vargv: Vec<String>,
}

/// One document about the processes in `pids` (all of them when `None`); `<pid>` and
/// `<ppid>` are the first such process's.
pub fn render_xml(report: &Report, opts: &XmlOptions, pids: Option<&[u32]>) -> String {
    let wanted = |pid: u32| pids.is_none_or(|p| p.contains(&pid));
    let first = report
        .processes
        .iter()
        .filter(|p| wanted(p.pid))
        .find(|p| p.start == ProcessStartKind::Main)
        .or_else(|| report.processes.iter().find(|p| wanted(p.pid)));
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\"?>\n\n<valgrindoutput>\n\n");
    x.push_str("<protocolversion>4</protocolversion>\n<protocoltool>memcheck</protocoltool>\n\n");
    let command = match first {
        Some(p) if p.start != ProcessStartKind::Main => p.exe.clone(),
        _ => report.command.join(" "),
    };
    x.push_str("<preamble>\n");
    for line in [
        "Memcheck, a memory error detector".to_string(),
        format!(
            "fencepost {} writing memcheck's XML (no valgrind involved)",
            env!("CARGO_PKG_VERSION")
        ),
        format!("Command: {command}"),
    ] {
        let _ = writeln!(x, "  <line>{}</line>", escape(&line));
    }
    x.push_str("</preamble>\n\n");
    let _ = writeln!(x, "<pid>{}</pid>", first.map_or(0, |p| p.pid));
    let _ = writeln!(x, "<ppid>{}</ppid>", first.map_or(0, |p| p.ppid));
    x.push_str("<tool>memcheck</tool>\n\n<args>\n  <vargv>\n");
    write_argv(&mut x, &opts.vargv);
    x.push_str("  </vargv>\n  <argv>\n");
    let argv: Vec<String> = match first {
        Some(p) if p.start != ProcessStartKind::Main => vec![p.exe.clone()],
        _ => report.command.clone(),
    };
    write_argv(&mut x, &argv);
    x.push_str("  </argv>\n</args>\n\n");
    status(&mut x, "RUNNING");

    let num_callers = opts.text.num_callers;
    let mut unique = 0u64;
    let mut counts: Vec<(u64, u64)> = Vec::new();
    let owners: Vec<&ProcessReport> = report
        .processes
        .iter()
        .enumerate()
        .filter(|(i, p)| wanted(p.pid) && owns_findings(report, *i))
        .map(|(_, p)| p)
        .collect();
    let mut fatals = String::new();
    for e in report.errors.iter().filter(|e| wanted(e.pid)) {
        let m = MemcheckError::of(e);
        if let Some(part) = &m.error {
            x.push_str("<error>\n");
            let _ = writeln!(x, "  <unique>{unique:#x}</unique>");
            let _ = writeln!(x, "  <tid>{}</tid>", thread_number(e));
            let _ = writeln!(x, "  <kind>{}</kind>", part.kind);
            let _ = writeln!(x, "  <what>{}</what>", escape(&part.what));
            stack(&mut x, part.stack, num_callers);
            for (text, frames) in &part.aux {
                let _ = writeln!(x, "  <auxwhat>{}</auxwhat>", escape(text));
                if let Some(frames) = frames {
                    stack(&mut x, frames, num_callers);
                }
            }
            x.push_str("</error>\n\n");
            counts.push((unique, e.count));
            unique += 1;
        }
        if let Some(f) = &m.fatal {
            fatals.push_str("<fatal_signal>\n");
            let _ = writeln!(fatals, "  <tid>{}</tid>", thread_number(e));
            let _ = writeln!(fatals, "  <signo>{}</signo>", f.signal);
            let _ = writeln!(fatals, "  <signame>{}</signame>", escape(&f.signame));
            if let Some(code) = f.si_code {
                let _ = writeln!(fatals, "  <sicode>{code}</sicode>");
            }
            if let Some(event) = f.event {
                let _ = writeln!(fatals, "  <event>{event}</event>");
            }
            if let Some(a) = f.address {
                let _ = writeln!(fatals, "  <siaddr>{a:#x}</siaddr>");
            }
            stack(&mut fatals, f.stack, num_callers);
            fatals.push_str("</fatal_signal>\n\n");
        }
    }
    x.push_str(&fatals);
    status(&mut x, "FINISHED");

    if opts.text.leak_check == LeakCheck::Full {
        for p in owners.iter().filter(|p| p.end != ProcessEnd::Exec) {
            let records = loss_records_of(report, p.pid);
            for (i, r) in records.iter().enumerate() {
                let Some(kind) = leak_xml_kind(r.kind) else {
                    continue;
                };
                if !opts.text.show_leak_kinds.contains(&r.kind) {
                    continue;
                }
                x.push_str("<error>\n");
                let _ = writeln!(x, "  <unique>{unique:#x}</unique>");
                x.push_str("  <tid>1</tid>\n");
                let _ = writeln!(x, "  <kind>{kind}</kind>");
                x.push_str("  <xwhat>\n");
                let _ = writeln!(
                    x,
                    "    <text>{}</text>",
                    escape(&loss_record_text(r, i + 1, records.len()))
                );
                let _ = writeln!(x, "    <leakedbytes>{}</leakedbytes>", r.bytes);
                let _ = writeln!(x, "    <leakedblocks>{}</leakedblocks>", r.blocks);
                x.push_str("  </xwhat>\n");
                stack(&mut x, &r.stack, num_callers);
                x.push_str("</error>\n\n");
                unique += 1;
            }
        }
    }

    x.push_str("<errorcounts>\n");
    for (u, count) in counts {
        let _ = writeln!(
            x,
            "  <pair>\n    <count>{count}</count>\n    <unique>{u:#x}</unique>\n  </pair>"
        );
    }
    x.push_str("</errorcounts>\n\n<suppcounts>\n");
    // Per suppression: how many findings of these processes it removed.
    let mut used: Vec<(&str, u64)> = Vec::new();
    for s in &report.suppressed {
        let (pid, n) = match &s.finding {
            Finding::Error(e) => (e.pid, e.count),
            Finding::Leak(l) => (l.pid, 1),
        };
        if !wanted(pid) {
            continue;
        }
        match used.iter_mut().find(|(name, _)| *name == s.suppression) {
            Some((_, count)) => *count += n,
            None => used.push((&s.suppression, n)),
        }
    }
    for (name, count) in used {
        let _ = writeln!(
            x,
            "  <pair>\n    <count>{count}</count>\n    <name>{}</name>\n  </pair>",
            escape(name)
        );
    }
    x.push_str("</suppcounts>\n\n</valgrindoutput>\n\n");
    x
}

fn write_argv(x: &mut String, argv: &[String]) {
    if let Some((exe, args)) = argv.split_first() {
        let _ = writeln!(x, "    <exe>{}</exe>", escape(exe));
        for a in args {
            let _ = writeln!(x, "    <arg>{}</arg>", escape(a));
        }
    }
}

fn status(x: &mut String, state: &str) {
    // fencepost does not time the run; the element is kept for consumers that expect it.
    let _ = writeln!(
        x,
        "<status>\n  <state>{state}</state>\n  <time>00:00:00:00.000 </time>\n</status>\n"
    );
}

fn stack(x: &mut String, frames: &[Frame], num_callers: usize) {
    let limit = if num_callers == 0 {
        frames.len()
    } else {
        num_callers
    };
    x.push_str("  <stack>\n");
    for f in frames.iter().take(limit) {
        x.push_str("    <frame>\n");
        let _ = writeln!(x, "      <ip>0x{:X}</ip>", f.address);
        if let Some(obj) = &f.module {
            let _ = writeln!(x, "      <obj>{}</obj>", escape(obj));
        }
        if let Some(func) = &f.function {
            let _ = writeln!(x, "      <fn>{}</fn>", escape(func));
        }
        if let Some(file) = &f.file {
            if let Some(dir) = dirname(file) {
                let _ = writeln!(x, "      <dir>{}</dir>", escape(dir));
            }
            let _ = writeln!(x, "      <file>{}</file>", escape(basename(file)));
            if let Some(line) = f.line {
                let _ = writeln!(x, "      <line>{line}</line>");
            }
        }
        x.push_str("    </frame>\n");
    }
    x.push_str("  </stack>\n");
}

/// Text content escaped for XML 1.0: `&`, `<`, `>`, and control characters (which XML 1.0
/// cannot carry at all) replaced by `?`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escape_makes_any_text_well_formed_xml_content() {
        assert_eq!(
            escape("a<b> & \"c\" 'd'\u{1}"),
            "a&lt;b&gt; &amp; \"c\" 'd'?"
        );
        assert_eq!(
            escape("operator delete[](void*)"),
            "operator delete[](void*)"
        );
    }
}
