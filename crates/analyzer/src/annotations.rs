//! GitHub Actions annotations (`--github-annotations`): one workflow command per finding,
//! `::error file=F,line=N,title=T::MESSAGE`, so that a CI run marks the lines in the pull
//! request. Written to stderr by the CLI (stdout belongs to the traced program; the Actions
//! runner reads workflow commands from both).
//!
//! The location is the first frame in the user's code, as in SARIF; the message carries the
//! stack, one frame per line (`%0A`-escaped, as the runner wants).

use std::fmt::Write;
use std::path::Path;

use crate::fingerprint::user_frames;
use crate::report::{Frame, LeakKind, Report};
use crate::sarif::Locator;
use crate::text::frame_text;

/// One line per error and per loss record of `leak_kinds`.
pub fn render(report: &Report, leak_kinds: &[LeakKind], cwd: &Path) -> String {
    let locator = Locator::new(cwd);
    let mut out = String::new();
    for e in &report.errors {
        let stack: &[Frame] = if e.stack.is_empty() {
            e.alloc_stack.as_deref().unwrap_or_default()
        } else {
            &e.stack
        };
        let times = if e.count > 1 {
            format!(" ({} times)", e.count)
        } else {
            String::new()
        };
        let mut message = format!("{}{times}", e.message);
        append_stack(&mut message, "", stack);
        if let Some(s) = &e.alloc_stack {
            append_stack(&mut message, "block allocated at", s);
        }
        if let Some(s) = &e.free_stack {
            append_stack(&mut message, "freed at", s);
        }
        line(
            &mut out,
            "error",
            &locator,
            stack,
            &format!("fencepost {}", e.kind),
            &message,
        );
    }
    for l in report.leaks.iter().filter(|l| leak_kinds.contains(&l.kind)) {
        let level = match l.kind {
            LeakKind::Definite | LeakKind::Possible => "error",
            _ => "warning",
        };
        let mut message = format!(
            "{} {} in {} {} {} lost",
            l.bytes,
            crate::analysis::plural(l.bytes, "byte", "bytes"),
            l.blocks,
            crate::analysis::plural(l.blocks, "block", "blocks"),
            match l.kind {
                LeakKind::Definite => "definitely",
                LeakKind::Indirect => "indirectly",
                LeakKind::Possible => "possibly",
                LeakKind::Reachable => "not (still reachable),",
                LeakKind::Unreleased => "never released,",
            }
        );
        append_stack(&mut message, "allocated at", &l.stack);
        line(
            &mut out,
            level,
            &locator,
            &l.stack,
            &format!("fencepost leak-{}", l.kind),
            &message,
        );
    }
    out
}

fn append_stack(message: &mut String, heading: &str, stack: &[Frame]) {
    if !heading.is_empty() {
        let _ = write!(message, "\n{heading}");
    }
    for (i, f) in stack.iter().enumerate() {
        let lead = if i == 0 { "at" } else { "by" };
        let _ = write!(message, "\n   {lead} {}", frame_text(f));
    }
}

fn line(
    out: &mut String,
    level: &str,
    locator: &Locator,
    stack: &[Frame],
    title: &str,
    message: &str,
) {
    let mut props = Vec::new();
    if let Some(f) = user_frames(stack).next().or(stack.first()) {
        if let Some(file) = &f.file {
            let path = locator.relative(file).unwrap_or(file);
            props.push(format!("file={}", escape_property(path)));
            if let Some(l) = f.line {
                props.push(format!("line={l}"));
            }
        }
    }
    props.push(format!("title={}", escape_property(title)));
    let _ = writeln!(
        out,
        "::{level} {}::{}",
        props.join(","),
        escape_data(message)
    );
}

/// The runner's escaping of a command's message.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// The runner's escaping of a property value (`,` and `:` separate properties).
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape_data("a%b\nc"), "a%25b%0Ac");
        assert_eq!(escape_property("x:y,z"), "x%3Ay%2Cz");
    }
}
