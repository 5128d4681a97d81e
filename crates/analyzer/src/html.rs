//! The HTML report (`--html FILE`): one self-contained page a student can read without a
//! cheat-sheet. Inline CSS, inline SVG drawings and a few lines of inline script; no
//! network, no external fonts. Only reads a [`Report`] (and the source files its frames
//! name, for the snippets), like every other renderer.
//!
//! The page: a summary; a chart of heap bytes in use over time per process (from the
//! report's `timeline`) with the leaked bytes marked; each error with the source lines
//! around it, its stacks and a drawing of the block, the guard and the access; each loss
//! record with its stack and source; a plain explanation of each kind ([`crate::explain`]).
//! Documented in `docs/html-report.md`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use crate::analysis::plural;
use crate::explain::{self, Explanation};
use crate::picture::{draw, picture_for, BlockPicture, Side};
use crate::report::{
    signal_abbrev, ErrorKind, ErrorReport, ExitStatus, Frame, LeakKind, LossRecord, Report,
};
use crate::text::thousands;
use crate::timeline::ProcessTimeline;

/// Lines of source shown on each side of the highlighted one.
const CONTEXT_LINES: u32 = 3;
/// Source files larger than this are not read for snippets.
const MAX_SOURCE_BYTES: u64 = 16 << 20;
/// Process curves drawn at most (the JSON keeps them all).
const MAX_CHARTS: usize = 8;

#[derive(Debug, Clone)]
pub struct HtmlOptions {
    /// Frames shown per stack; 0 means all the report has.
    pub num_callers: usize,
    /// Read the source files named by frames for the snippets.
    pub read_sources: bool,
}

impl Default for HtmlOptions {
    fn default() -> Self {
        HtmlOptions {
            num_callers: 0,
            read_sources: true,
        }
    }
}

/// Renders the whole page.
pub fn render_html(report: &Report, opts: &HtmlOptions) -> String {
    let mut page = Page {
        out: String::with_capacity(64 * 1024),
        opts,
        sources: HashMap::new(),
        explained: Vec::new(),
    };
    page.document(report);
    page.out
}

/// HTML-escapes text for element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

struct Page<'a> {
    out: String,
    opts: &'a HtmlOptions,
    /// Source files read so far: path → lines, `None` when unreadable.
    sources: HashMap<String, Option<Vec<String>>>,
    /// Kinds already explained in full (later findings of a kind get the text folded).
    explained: Vec<String>,
}

const STYLE: &str = r#"
:root { --ink:#1d2330; --muted:#5b6474; --line:#d9dde5; --bg:#f6f7f9; --card:#fff;
  --err:#c0392b; --warn:#b9770e; --ok:#1e8449; --blue:#2463b5; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
  color:var(--ink); background:var(--bg); }
main { max-width:1100px; margin:0 auto; padding:20px 24px 60px; }
h1 { font-size:24px; margin:0 0 4px; }
h2 { font-size:19px; margin:34px 0 10px; padding-bottom:4px; border-bottom:2px solid var(--line); }
h3 { font-size:16px; margin:0 0 6px; }
code, pre, .mono { font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace; font-size:13px; }
.sub { color:var(--muted); margin:0 0 14px; }
.cards { display:flex; flex-wrap:wrap; gap:10px; margin:10px 0; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:10px 14px; min-width:150px; }
.card .n { font-size:22px; font-weight:600; }
.card.bad .n { color:var(--err); } .card.good .n { color:var(--ok); }
table { border-collapse:collapse; background:var(--card); }
th, td { border:1px solid var(--line); padding:4px 10px; text-align:left; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
.finding { background:var(--card); border:1px solid var(--line); border-left:6px solid var(--err);
  border-radius:8px; padding:14px 18px; margin:14px 0; }
.finding.leak { border-left-color:var(--warn); }
.finding.leak.reachable, .finding.leak.indirect { border-left-color:#8e9aaf; }
.kind { display:inline-block; font-size:12px; font-weight:700; letter-spacing:.03em; color:#fff;
  background:var(--err); border-radius:4px; padding:1px 7px; margin-right:6px; vertical-align:1px; }
.leak .kind { background:var(--warn); }
.leak.reachable .kind, .leak.indirect .kind { background:#8e9aaf; }
.where { margin:2px 0 8px; }
.where .loc { font-weight:600; }
.cols { display:flex; flex-wrap:wrap; gap:18px; }
.cols > div { flex:1 1 420px; min-width:0; }
.label { font-size:12px; font-weight:700; text-transform:uppercase; color:var(--muted); margin:10px 0 2px; }
ol.stack { margin:0; padding-left:26px; }
ol.stack li { margin:1px 0; }
ol.stack .fn { color:var(--blue); }
ol.stack .file { color:var(--ink); }
ol.stack .mod { color:var(--muted); }
ol.stack .inl { color:var(--muted); font-style:italic; }
pre.src { background:#fbfbfc; border:1px solid var(--line); border-radius:6px; margin:4px 0; padding:6px 0;
  overflow-x:auto; line-height:1.45; }
pre.src span { display:block; padding:0 10px; white-space:pre; }
pre.src span.hl { background:#fde2df; box-shadow:inset 4px 0 0 var(--err); font-weight:600; }
.leak pre.src span.hl { background:#fdf0d5; box-shadow:inset 4px 0 0 var(--warn); }
pre.src .ln { color:#9aa1ad; display:inline-block; width:4.5em; text-align:right; margin-right:12px; user-select:none; }
.na { color:var(--muted); font-style:italic; margin:4px 0; }
figure { margin:10px 0 0; }
figcaption { color:var(--muted); font-size:13px; }
details.explain { background:#eef3fb; border:1px solid #c9d7ee; border-radius:6px; padding:6px 12px; margin-top:12px; }
details.explain summary { cursor:pointer; font-weight:600; color:var(--blue); }
details.explain dl { margin:6px 0 2px; }
details.explain dt { font-weight:700; font-size:13px; }
details.explain dd { margin:0 0 6px 0; }
.note { background:#fff8e5; border:1px solid #f0d98c; border-radius:6px; padding:6px 12px; margin:8px 0; }
.chart { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:8px; margin:10px 0; }
.chart h3 { margin:4px 8px; }
svg text { font-family:system-ui,"DejaVu Sans",sans-serif; }
.adv { font-weight:600; }
footer { color:var(--muted); font-size:12px; margin-top:40px; }
"#;

/// Marks the page as loaded (the HTML test looks for `#fp-loaded`), counts the findings it
/// sees, and records script errors in `#fp-js-errors` so a broken page is visible.
const SCRIPT: &str = r#"
(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    errors.push(String(e.message));
    var el = document.getElementById('fp-js-errors') || document.createElement('div');
    el.id = 'fp-js-errors'; el.hidden = true; el.textContent = errors.join('\n');
    document.body.appendChild(el);
  });
  function ready() {
    var n = function (sel) { return document.querySelectorAll(sel).length; };
    var m = document.createElement('div');
    m.id = 'fp-loaded'; m.hidden = true;
    m.setAttribute('data-errors', n('article.finding.error'));
    m.setAttribute('data-leaks', n('article.finding.leak'));
    m.textContent = 'loaded';
    document.body.appendChild(m);
    // Clicking a stack frame with source shows or hides its snippet.
    Array.prototype.forEach.call(document.querySelectorAll('button.toggle'), function (b) {
      b.addEventListener('click', function () {
        var t = document.getElementById(b.getAttribute('data-for'));
        if (t) { t.hidden = !t.hidden; b.textContent = t.hidden ? 'show source' : 'hide source'; }
      });
    });
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', ready);
  else ready();
})();
"#;

impl Page<'_> {
    fn document(&mut self, r: &Report) {
        let command = r.command.join(" ");
        let title = if command.is_empty() {
            "fencepost report".to_string()
        } else {
            format!("fencepost: {command}")
        };
        let _ = write!(
            self.out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n",
            esc(&title)
        );
        self.summary(r);
        self.timelines(r);
        self.errors(r);
        self.leaks(r);
        self.warnings(r);
        let _ = write!(
            self.out,
            "<footer>Made by fencepost from the report <code>{}</code>. \
             The same data is in the JSON report (<code>--json</code>).</footer>\n\
             </main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n",
            esc(&r.schema)
        );
    }

    fn summary(&mut self, r: &Report) {
        let command = if r.command.is_empty() {
            "(unknown command)".to_string()
        } else {
            r.command.join(" ")
        };
        let exit = match r.exit {
            Some(ExitStatus::Code(c)) => format!("exited with code {c}"),
            Some(ExitStatus::Signal(s)) => match signal_abbrev(s) {
                Some(name) => format!("killed by signal {s} ({name})"),
                None => format!("killed by signal {s}"),
            },
            None => "exit status unknown".to_string(),
        };
        let main = r.processes.first();
        let pid = main.map(|p| format!(", pid {}", p.pid)).unwrap_or_default();
        let _ = write!(
            self.out,
            "<header id=\"summary\">\n<h1>fencepost report</h1>\n\
             <p class=\"sub\"><code class=\"mono\" id=\"command\">{}</code> &mdash; {}{}</p>\n",
            esc(&command),
            esc(&exit),
            esc(&pid)
        );
        let s = &r.summary;
        let lost = s.leaked.definite.bytes + s.leaked.indirect.bytes + s.leaked.possible.bytes;
        let cards = [
            (
                "errors",
                thousands(s.errors),
                format!("{} distinct", thousands(s.error_contexts)),
                s.errors > 0,
            ),
            (
                "bytes lost",
                thousands(lost),
                "definitely, indirectly or possibly".to_string(),
                lost > 0,
            ),
            (
                "in use at exit",
                thousands(s.in_use_at_exit.bytes),
                format!(
                    "bytes in {} {}",
                    thousands(s.in_use_at_exit.blocks),
                    plural(s.in_use_at_exit.blocks, "block", "blocks")
                ),
                false,
            ),
            (
                "allocations",
                thousands(s.allocations),
                format!(
                    "{} frees, {} bytes allocated",
                    thousands(s.frees),
                    thousands(s.bytes_allocated)
                ),
                false,
            ),
        ];
        self.out.push_str("<div class=\"cards\">\n");
        for (label, n, detail, bad) in cards {
            let class = match (label, bad) {
                (_, true) => " bad",
                ("errors" | "bytes lost", false) => " good",
                _ => "",
            };
            let _ = writeln!(
                self.out,
                "<div class=\"card{class}\"><div class=\"n\">{}</div><div>{}</div>\
                 <div class=\"sub\" style=\"margin:0\">{}</div></div>",
                esc(&n),
                esc(label),
                esc(&detail)
            );
        }
        self.out.push_str("</div>\n");

        // Counts per kind.
        let mut by_kind: BTreeMap<ErrorKind, (u64, u64)> = BTreeMap::new();
        for e in &r.errors {
            let entry = by_kind.entry(e.kind).or_default();
            entry.0 += e.count;
            entry.1 += 1;
        }
        self.out
            .push_str("<div class=\"cols\"><div>\n<div class=\"label\">errors by kind</div>\n");
        if by_kind.is_empty() {
            self.out.push_str("<p class=\"na\">no errors</p>\n");
        } else {
            self.out.push_str(
                "<table id=\"error-kinds\"><tr><th>kind</th><th class=\"num\">occurrences</th>\
                 <th class=\"num\">distinct</th></tr>\n",
            );
            for (kind, (count, contexts)) in &by_kind {
                let _ = writeln!(
                    self.out,
                    "<tr><td><a href=\"#{k}-1\">{k}</a></td><td class=\"num\">{}</td>\
                     <td class=\"num\">{}</td></tr>",
                    thousands(*count),
                    thousands(*contexts),
                    k = esc(kind.as_str())
                );
            }
            self.out.push_str("</table>\n");
        }
        self.out.push_str(
            "</div><div>\n<div class=\"label\">memory left at exit</div>\n\
             <table id=\"leak-kinds\"><tr><th>kind</th><th class=\"num\">bytes</th>\
             <th class=\"num\">blocks</th><th class=\"num\">records</th></tr>\n",
        );
        for kind in LeakKind::ALL {
            let t = s.leaked.get(kind);
            if kind == LeakKind::Unreleased && t.records == 0 {
                continue;
            }
            let _ = writeln!(
                self.out,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td></tr>",
                esc(leak_label(kind)),
                thousands(t.bytes),
                thousands(t.blocks),
                thousands(t.records)
            );
        }
        self.out.push_str("</table>\n</div></div>\n");

        if r.processes.len() > 1 {
            self.out.push_str(
                "<div class=\"label\">processes</div>\n<table id=\"processes\"><tr><th>pid</th>\
                 <th>program</th><th>start</th><th>end</th><th class=\"num\">allocations</th>\
                 <th class=\"num\">frees</th><th class=\"num\">bytes allocated</th></tr>\n",
            );
            for p in &r.processes {
                let _ = writeln!(
                    self.out,
                    "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td>\
                     <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                    p.pid,
                    esc(&p.exe),
                    esc(&format!("{:?}", p.start).to_lowercase()),
                    esc(&format!("{:?}", p.end).to_lowercase()),
                    thousands(p.allocations),
                    thousands(p.frees),
                    thousands(p.bytes_allocated)
                );
            }
            self.out.push_str("</table>\n");
        }
        let own = s.allocations.saturating_sub(s.inherited);
        if let Some(note) = s.guard.and_then(|g| g.sample_note(own)) {
            let _ = writeln!(self.out, "<p class=\"note\">{}.</p>", esc(&note));
        }
        if let Some(g) = s.guard.filter(|g| g.unguarded > 0) {
            let _ = writeln!(
                self.out,
                "<p class=\"note\">{} {} not guarded (the guard budget was reached): their \
                 overruns are only found when they are freed.</p>",
                thousands(g.unguarded),
                plural(g.unguarded, "block was", "blocks were")
            );
        }
        for module in explain::modules_without_debug_info(explain::all_frames(r)) {
            let _ = writeln!(
                self.out,
                "<p class=\"note debug-info\">{}</p>",
                esc(&explain::no_debug_info_note(&module))
            );
        }
        self.out.push_str("</header>\n");
    }

    fn timelines(&mut self, r: &Report) {
        self.out
            .push_str("<section id=\"timeline\">\n<h2>Heap in use over time</h2>\n");
        let drawable: Vec<&ProcessTimeline> = r.timeline.iter().collect();
        if drawable.is_empty() {
            self.out.push_str(
                "<p class=\"na\">No timeline in this report (no allocations, or a report \
                 from an older fencepost).</p>\n</section>\n",
            );
            return;
        }
        self.out.push_str(
            "<p class=\"sub\">Bytes allocated and not yet freed, after each allocation and \
             free. The pale area is the highest level inside each sample; the red line is \
             what was lost at exit.</p>\n",
        );
        for t in drawable.iter().take(MAX_CHARTS) {
            let exe = r
                .processes
                .get(t.process)
                .map(|p| p.exe.as_str())
                .unwrap_or("");
            let last_image_of_pid = r
                .processes
                .iter()
                .rposition(|p| p.pid == t.pid)
                .is_none_or(|i| i == t.process);
            let lost: u64 = if last_image_of_pid {
                r.leaks
                    .iter()
                    .filter(|l| l.pid == t.pid)
                    .filter(|l| {
                        matches!(
                            l.kind,
                            LeakKind::Definite
                                | LeakKind::Indirect
                                | LeakKind::Possible
                                | LeakKind::Unreleased
                        )
                    })
                    .map(|l| l.bytes)
                    .sum()
            } else {
                0
            };
            let _ = writeln!(
                self.out,
                "<div class=\"chart\" data-pid=\"{}\"><h3>pid {} <code>{}</code></h3>",
                t.pid,
                t.pid,
                esc(exe)
            );
            self.out.push_str(&chart_svg(t, lost));
            self.out.push_str("</div>\n");
        }
        if drawable.len() > MAX_CHARTS {
            let _ = writeln!(
                self.out,
                "<p class=\"na\">{} more processes not drawn (their curves are in the JSON \
                 report).</p>",
                drawable.len() - MAX_CHARTS
            );
        }
        self.out.push_str("</section>\n");
    }

    fn errors(&mut self, r: &Report) {
        let _ = writeln!(
            self.out,
            "<section id=\"errors\">\n<h2>Errors ({})</h2>",
            r.errors.len()
        );
        if r.errors.is_empty() {
            self.out
                .push_str("<p class=\"na\">No heap errors were found.</p>\n");
        }
        let mut nth: HashMap<ErrorKind, usize> = HashMap::new();
        for (i, e) in r.errors.iter().enumerate() {
            let n = nth.entry(e.kind).or_default();
            *n += 1;
            let anchor = format!("{}-{}", e.kind.as_str(), n);
            self.error(i, e, &anchor);
        }
        self.out.push_str("</section>\n");
    }

    fn error(&mut self, index: usize, e: &ErrorReport, anchor: &str) {
        let times = if e.count > 1 {
            format!(" ({} times)", thousands(e.count))
        } else {
            String::new()
        };
        let thread = if e.thread != 0 && e.thread != e.pid {
            format!(", thread {}", e.thread)
        } else {
            String::new()
        };
        let _ = write!(
            self.out,
            "<article class=\"finding error\" id=\"{}\" data-kind=\"{}\" data-index=\"{index}\">\n\
             <h3><span class=\"kind\">{}</span>{}{}</h3>\n",
            esc(anchor),
            esc(e.kind.as_str()),
            esc(e.kind.as_str()),
            esc(&e.message),
            esc(&times)
        );
        let top = first_with_source(&e.stack);
        let _ = writeln!(
            self.out,
            "<p class=\"where\">in process {}{}{}</p>",
            e.pid,
            esc(&thread),
            top.map(|f| format!(", at <span class=\"loc\">{}</span>", esc(&location(f))))
                .unwrap_or_default()
        );
        if let Some(advice) = &e.advice {
            let _ = writeln!(self.out, "<p class=\"adv\">{}</p>", esc(advice));
        }
        if let Some(picture) = picture_for(e) {
            self.out.push_str("<figure class=\"block\">");
            self.out.push_str(&block_svg(&picture));
            let [a, b] = draw(&picture);
            let _ = writeln!(
                self.out,
                "<figcaption>{}</figcaption>\n<details><summary>as text</summary>\
                 <pre>{}\n{}</pre></details></figure>",
                esc(&caption(&picture)),
                esc(&a),
                esc(&b)
            );
        }
        // The source of the error itself.
        let source_stack: &[Frame] = &e.stack;
        let what = if e.found_at.is_some() {
            "where the damage was found"
        } else if matches!(
            e.kind,
            ErrorKind::DoubleFree | ErrorKind::InvalidFree | ErrorKind::MismatchedFree
        ) {
            "the bad release"
        } else {
            "the bad access"
        };
        let _ = writeln!(self.out, "<div class=\"label\">{what}</div>");
        self.snippet(source_stack, "err", index);
        self.out.push_str("<div class=\"cols\">\n<div>\n");
        if !(e.found_at.is_some() && e.stack.is_empty()) {
            self.out.push_str("<div class=\"label\">stack</div>\n");
            self.stack(&e.stack, &format!("e{index}s"));
        }
        self.out.push_str("</div>\n");
        if let Some(stack) = &e.alloc_stack {
            let by = e
                .block
                .as_ref()
                .and_then(|b| b.allocated_by.as_deref())
                .map(|f| format!(" by {f}"))
                .unwrap_or_default();
            let _ = writeln!(
                self.out,
                "<div>\n<div class=\"label\">block allocated{}</div>",
                esc(&by)
            );
            self.stack(stack, &format!("e{index}a"));
            self.out.push_str("</div>\n");
        }
        if let Some(stack) = &e.free_stack {
            let by = e
                .block
                .as_ref()
                .and_then(|b| b.freed_by.as_deref())
                .map(|f| format!(" by {f}"))
                .unwrap_or_default();
            let _ = writeln!(
                self.out,
                "<div>\n<div class=\"label\">block freed{}</div>",
                esc(&by)
            );
            self.stack(stack, &format!("e{index}f"));
            self.out.push_str("</div>\n");
        }
        self.out.push_str("</div>\n");
        self.explanation(e.kind.as_str(), &explain::error(e.kind));
        self.out.push_str("</article>\n");
    }

    fn leaks(&mut self, r: &Report) {
        let _ = writeln!(
            self.out,
            "<section id=\"leaks\">\n<h2>Memory not freed ({} loss {})</h2>",
            r.leaks.len(),
            plural(r.leaks.len() as u64, "record", "records")
        );
        if r.leaks.is_empty() {
            self.out.push_str(
                "<p class=\"na\">Every block was freed: nothing leaked.</p>\n</section>\n",
            );
            return;
        }
        self.out.push_str(
            "<p class=\"sub\">Blocks still allocated when the program ended, grouped by where \
             they were allocated, biggest first.</p>\n",
        );
        let n = r.leaks.len();
        for (i, l) in r.leaks.iter().enumerate() {
            self.leak(i, n, l);
        }
        self.out.push_str("</section>\n");
    }

    fn leak(&mut self, i: usize, n: usize, l: &LossRecord) {
        let _ = write!(
            self.out,
            "<article class=\"finding leak {}\" id=\"leak-{}\" data-kind=\"{}\" data-bytes=\"{}\">\n\
             <h3><span class=\"kind\">{}</span>{} {} in {} {} {} (loss record {} of {})</h3>\n",
            esc(l.kind.as_str()),
            i + 1,
            esc(l.kind.as_str()),
            l.bytes,
            esc(l.kind.as_str()),
            thousands(l.bytes),
            plural(l.bytes, "byte", "bytes"),
            thousands(l.blocks),
            plural(l.blocks, "block", "blocks"),
            leak_phrase(l.kind),
            i + 1,
            n
        );
        let by = l
            .allocated_by
            .as_deref()
            .map(|f| format!(" by {f}"))
            .unwrap_or_default();
        let top = first_with_source(&l.stack);
        let _ = writeln!(
            self.out,
            "<p class=\"where\">in process {}, allocated{}{}</p>",
            l.pid,
            esc(&by),
            top.map(|f| format!(" at <span class=\"loc\">{}</span>", esc(&location(f))))
                .unwrap_or_default()
        );
        self.out
            .push_str("<div class=\"label\">the allocation</div>\n");
        self.snippet(&l.stack, "leak", i);
        self.out.push_str("<div class=\"label\">stack</div>\n");
        self.stack(&l.stack, &format!("l{i}"));
        self.explanation(&format!("leak-{}", l.kind.as_str()), &explain::leak(l.kind));
        self.out.push_str("</article>\n");
    }

    fn warnings(&mut self, r: &Report) {
        if r.warnings.is_empty() {
            return;
        }
        self.out
            .push_str("<section id=\"warnings\">\n<h2>Warnings</h2>\n<ul>\n");
        for w in &r.warnings {
            let pid = w.pid.map(|p| format!("pid {p}: ")).unwrap_or_default();
            let _ = writeln!(self.out, "<li>{}{}</li>", esc(&pid), esc(&w.message));
        }
        self.out.push_str("</ul>\n</section>\n");
    }

    /// The explanation box: open the first time a kind appears, folded after.
    fn explanation(&mut self, key: &str, x: &Explanation) {
        let first = !self.explained.iter().any(|k| k == key);
        if first {
            self.explained.push(key.to_string());
        }
        let _ = writeln!(
            self.out,
            "<details class=\"explain\"{}><summary>What does this mean? {}</summary><dl>\
             <dt>What it means</dt><dd>{}</dd><dt>Usual cause</dt><dd>{}</dd>\
             <dt>How to fix it</dt><dd>{}</dd></dl></details>",
            if first { " open" } else { "" },
            esc(x.title),
            esc(x.meaning),
            esc(x.cause),
            esc(x.fix)
        );
    }

    fn stack(&mut self, stack: &[Frame], id: &str) {
        if stack.is_empty() {
            self.out
                .push_str("<p class=\"na\">(no stack recorded)</p>\n");
            return;
        }
        let limit = match self.opts.num_callers {
            0 => stack.len(),
            n => n,
        };
        self.out.push_str("<ol class=\"stack\">\n");
        for (i, f) in stack.iter().take(limit).enumerate() {
            let function = match &f.function {
                Some(name) => format!("<code class=\"fn\">{}</code>", esc(name)),
                None => format!("<code class=\"fn\">{:#x}</code>", f.address),
            };
            let place = match (&f.file, f.line, &f.module) {
                (Some(file), Some(line), _) => format!(
                    " <span class=\"file\" title=\"{}\">{}:{line}</span>",
                    esc(file),
                    esc(basename(file))
                ),
                (Some(file), None, _) => format!(
                    " <span class=\"file\" title=\"{}\">{}</span>",
                    esc(file),
                    esc(basename(file))
                ),
                (None, _, Some(module)) => {
                    format!(" <span class=\"mod\">in {}</span>", esc(module))
                }
                (None, _, None) => String::new(),
            };
            let inlined = if f.inlined {
                " <span class=\"inl\">(inlined)</span>"
            } else {
                ""
            };
            // Frames below the first with source can show theirs on demand.
            let toggle = match (&f.file, f.line, i) {
                (Some(file), Some(line), i) if i > 0 && self.opts.read_sources => {
                    let snippet = self.snippet_html(file, line);
                    snippet.map(|s| {
                        format!(
                            " <button class=\"toggle\" data-for=\"{id}-{i}\">show source</button>\
                             <div id=\"{id}-{i}\" hidden>{s}</div>"
                        )
                    })
                }
                _ => None,
            }
            .unwrap_or_default();
            let _ = writeln!(self.out, "<li>{function}{place}{inlined}{toggle}</li>");
        }
        if stack.len() > limit {
            let _ = writeln!(
                self.out,
                "<li class=\"na\">{} more frames (--num-callers)</li>",
                stack.len() - limit
            );
        }
        self.out.push_str("</ol>\n");
    }

    /// The source lines around the first frame of `stack` that names a file and line.
    fn snippet(&mut self, stack: &[Frame], _what: &str, _index: usize) {
        let Some(f) = first_with_source(stack) else {
            let why = if stack.is_empty() {
                "no stack recorded"
            } else {
                "no debug information: compile with -g to see file and line"
            };
            let _ = writeln!(
                self.out,
                "<p class=\"na src-missing\">source not available ({why})</p>"
            );
            return;
        };
        let (file, line) = (f.file.clone().unwrap_or_default(), f.line.unwrap_or(0));
        match self.snippet_html(&file, line) {
            Some(html) => self.out.push_str(&html),
            None => {
                let _ = writeln!(
                    self.out,
                    "<p class=\"na src-missing\">source not available (<code>{}</code> \
                     line {line} could not be read)</p>",
                    esc(&file)
                );
            }
        }
    }

    /// `<pre class="src">` with ±[`CONTEXT_LINES`] lines around `line`, or `None` when the
    /// file cannot be read or is shorter.
    fn snippet_html(&mut self, file: &str, line: u32) -> Option<String> {
        if !self.opts.read_sources || line == 0 {
            return None;
        }
        let lines = self
            .sources
            .entry(file.to_string())
            .or_insert_with(|| read_source(file))
            .as_ref()?;
        let index = line as usize - 1;
        if index >= lines.len() {
            return None;
        }
        let first = index.saturating_sub(CONTEXT_LINES as usize);
        let last = (index + CONTEXT_LINES as usize).min(lines.len() - 1);
        let mut html = format!(
            "<pre class=\"src\" data-file=\"{}\" data-line=\"{line}\" title=\"{}\">",
            esc(basename(file)),
            esc(file)
        );
        for (i, text) in lines.iter().enumerate().take(last + 1).skip(first) {
            let class = if i == index { " class=\"hl\"" } else { "" };
            let _ = write!(
                html,
                "<span{class}><span class=\"ln\">{}</span>{}</span>",
                i + 1,
                esc(&text.replace('\t', "    "))
            );
        }
        html.push_str("</pre>\n");
        Some(html)
    }
}

fn read_source(path: &str) -> Option<Vec<String>> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_SOURCE_BYTES {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    Some(
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

fn first_with_source(stack: &[Frame]) -> Option<&Frame> {
    stack.iter().find(|f| f.file.is_some() && f.line.is_some())
}

/// `function (file.c:12)` for the "where" line.
fn location(f: &Frame) -> String {
    let file = f.file.as_deref().map(basename).unwrap_or("?");
    match (&f.function, f.line) {
        (Some(func), Some(line)) => format!("{file}:{line} in {func}"),
        (None, Some(line)) => format!("{file}:{line}"),
        (Some(func), None) => format!("{file} in {func}"),
        (None, None) => file.to_string(),
    }
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn leak_label(kind: LeakKind) -> &'static str {
    match kind {
        LeakKind::Definite => "definitely lost",
        LeakKind::Indirect => "indirectly lost",
        LeakKind::Possible => "possibly lost",
        LeakKind::Reachable => "still reachable",
        LeakKind::Unreleased => "unreleased (process died)",
    }
}

fn leak_phrase(kind: LeakKind) -> &'static str {
    match kind {
        LeakKind::Definite => "definitely lost",
        LeakKind::Indirect => "indirectly lost",
        LeakKind::Possible => "possibly lost",
        LeakKind::Reachable => "still reachable",
        LeakKind::Unreleased => "never released (the process died)",
    }
}

fn caption(p: &BlockPicture) -> String {
    let block = format!(
        "{}a block of {} {}",
        if p.freed { "freed: " } else { "" },
        thousands(p.block_size),
        plural(p.block_size, "byte", "bytes")
    );
    let beside = match (p.before, p.after) {
        (Side::Guard, _) | (_, Side::Guard) => ", with its guard page",
        (Side::Canary, _) | (_, Side::Canary) => ", with its canary bytes",
        _ => "",
    };
    format!("{block}{beside}; {}", p.note)
}

/// Bytes for axis labels: `512 B`, `4.0 KiB`, `1.5 MiB`.
fn short_bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{} B", v.round() as u64)
    } else if v >= 100.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The block as a bar, the guard page hatched, the canaries dotted, the access as a red
/// marker at its offset; a freed block is grey and crossed out.
fn block_svg(p: &BlockPicture) -> String {
    const W: f64 = 760.0;
    const BAR_Y: f64 = 34.0;
    const BAR_H: f64 = 44.0;
    let size = p.block_size;
    let len = p.len.unwrap_or(1).max(1);
    let before_w = match (p.before, p.offset < 0) {
        (Side::Nothing, false) => 0.0,
        _ => 150.0,
    };
    let after_w = match (p.after, p.offset >= 0 && p.offset as u64 >= size) {
        (Side::Nothing, false) => 0.0,
        _ => 150.0,
    };
    let x0 = 20.0 + before_w;
    let x1 = W - 20.0 - after_w;
    let bw = x1 - x0;
    // x of a byte offset (left edge of the byte).
    let x_of = |o: f64| -> f64 {
        if o < 0.0 {
            // Before the block: the first 4096 bytes across its region, right to left.
            let k = (-o).min(4096.0) / 4096.0;
            (x0 - 6.0 - k * (before_w - 12.0)).max(x0 - before_w)
        } else if o >= size as f64 {
            let k = (o - size as f64).min(4096.0) / 4096.0;
            x1 + 2.0 + k * (after_w - 12.0)
        } else {
            x0 + o / size.max(1) as f64 * bw
        }
    };
    let start = p.offset as f64;
    let end = start + len.min(1 << 40) as f64;
    let ax0 = x_of(start);
    let mut ax1 = if start < size as f64 && end > size as f64 {
        x_of(size as f64).max(x_of(end - 1.0)) + 4.0
    } else {
        x_of(end)
    };
    if ax1 - ax0 < 4.0 {
        ax1 = ax0 + 4.0;
    }
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"block-drawing\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" \
         height=\"120\" viewBox=\"0 0 {W} 120\" role=\"img\" aria-label=\"{}\">\
         <defs><pattern id=\"hatch\" width=\"8\" height=\"8\" patternUnits=\"userSpaceOnUse\" \
         patternTransform=\"rotate(45)\"><rect width=\"8\" height=\"8\" fill=\"#eceff3\"/>\
         <line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"8\" stroke=\"#7b8494\" stroke-width=\"3\"/></pattern>\
         <pattern id=\"dots\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\">\
         <rect width=\"6\" height=\"6\" fill=\"#fff6dc\"/><circle cx=\"3\" cy=\"3\" r=\"1.3\" fill=\"#c99a1c\"/>\
         </pattern></defs>",
        esc(&caption(p))
    );
    // Neighbours.
    let side = |s: &mut String, side: Side, x: f64, w: f64| match side {
        Side::Guard => {
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{BAR_Y}\" width=\"{w:.1}\" height=\"{BAR_H}\" \
                 fill=\"url(#hatch)\" stroke=\"#7b8494\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"13\" \
                 fill=\"#3b4252\">guard page</text>",
                x + w / 2.0,
                BAR_Y + BAR_H + 16.0
            );
        }
        Side::Canary => {
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{BAR_Y}\" width=\"{w:.1}\" height=\"{BAR_H}\" \
                 fill=\"url(#dots)\" stroke=\"#c99a1c\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"13\" \
                 fill=\"#3b4252\">canary bytes</text>",
                x + w / 2.0,
                BAR_Y + BAR_H + 16.0
            );
        }
        Side::Nothing => {
            if w > 0.0 {
                let _ = write!(
                    s,
                    "<rect x=\"{x:.1}\" y=\"{BAR_Y}\" width=\"{w:.1}\" height=\"{BAR_H}\" \
                     fill=\"none\" stroke=\"#b8bfcc\" stroke-dasharray=\"4 3\"/>\
                     <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"13\" \
                     fill=\"#3b4252\">outside the block</text>",
                    x + w / 2.0,
                    BAR_Y + BAR_H + 16.0
                );
            }
        }
    };
    if before_w > 0.0 {
        side(&mut s, p.before, x0 - before_w, before_w - 2.0);
    }
    if after_w > 0.0 {
        side(&mut s, p.after, x1 + 2.0, after_w - 2.0);
    }
    // The block.
    let (fill, stroke) = if p.freed {
        ("#d5d9e0", "#6b7385")
    } else {
        ("#cfe3fb", "#2463b5")
    };
    let _ = write!(
        s,
        "<rect class=\"bar\" x=\"{x0:.1}\" y=\"{BAR_Y}\" width=\"{bw:.1}\" height=\"{BAR_H}\" \
         fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"2\"/>"
    );
    if p.freed {
        let _ = write!(
            s,
            "<line class=\"cross\" x1=\"{x0:.1}\" y1=\"{BAR_Y}\" x2=\"{x1:.1}\" y2=\"{:.1}\" stroke=\"#6b7385\" stroke-width=\"2\"/>\
             <line class=\"cross\" x1=\"{x0:.1}\" y1=\"{:.1}\" x2=\"{x1:.1}\" y2=\"{BAR_Y}\" stroke=\"#6b7385\" stroke-width=\"2\"/>",
            BAR_Y + BAR_H,
            BAR_Y + BAR_H
        );
    }
    let label = if p.freed {
        format!(
            "freed block: {} {}",
            thousands(size),
            plural(size, "byte", "bytes")
        )
    } else {
        format!(
            "block: {} {}",
            thousands(size),
            plural(size, "byte", "bytes")
        )
    };
    // The label goes in the middle of the bar, or beside the access when it would cover it.
    let label_w = label.chars().count() as f64 * 8.0 + 10.0;
    let centre = (x0 + x1) / 2.0;
    let covers = |c: f64| c - label_w / 2.0 < ax1 + 4.0 && c + label_w / 2.0 > ax0 - 4.0;
    let label_x = if !covers(centre) {
        centre
    } else if ax0 - x0 > x1 - ax1 {
        ((x0 + ax0) / 2.0).max(x0 + label_w / 2.0)
    } else {
        ((ax1 + x1) / 2.0).min(x1 - label_w / 2.0)
    };
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"600\" \
         fill=\"#1d2330\" paint-order=\"stroke\" stroke=\"{fill}\" stroke-width=\"5\">{}</text>",
        label_x,
        BAR_Y + BAR_H / 2.0 + 5.0,
        esc(&label)
    );
    // Offsets 0 and size under the bar.
    let _ = write!(
        s,
        "<text x=\"{x0:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"#5b6474\" text-anchor=\"middle\">0</text>\
         <text x=\"{x1:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"#5b6474\" text-anchor=\"middle\">{}</text>",
        BAR_Y + BAR_H + 32.0,
        BAR_Y + BAR_H + 32.0,
        thousands(size)
    );
    // The access.
    let _ = write!(
        s,
        "<rect class=\"access\" x=\"{ax0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
         fill=\"#e74c3c\" fill-opacity=\"0.85\" stroke=\"#a93226\"/>\
         <path d=\"M{:.1},{:.1} l-7,-11 h14 z\" fill=\"#c0392b\"/>",
        BAR_Y - 4.0,
        ax1 - ax0,
        BAR_H + 8.0,
        ax0 + (ax1 - ax0) / 2.0,
        BAR_Y - 6.0
    );
    let mid = ax0 + (ax1 - ax0) / 2.0;
    let anchor = if mid < 160.0 {
        "start"
    } else if mid > W - 160.0 {
        "end"
    } else {
        "middle"
    };
    let _ = write!(
        s,
        "<text x=\"{mid:.1}\" y=\"14\" text-anchor=\"{anchor}\" font-size=\"13\" \
         font-weight=\"600\" fill=\"#c0392b\">{}</text></svg>",
        esc(&p.note)
    );
    s
}

/// The curve of one process: bytes in use (a step line), the peak inside each sample (a
/// pale area), and the bytes lost at exit (a red dashed line and a dot at the end).
fn chart_svg(t: &ProcessTimeline, lost: u64) -> String {
    const W: f64 = 1000.0;
    const H: f64 = 260.0;
    const L: f64 = 78.0;
    const R: f64 = 20.0;
    const T: f64 = 16.0;
    const B: f64 = 40.0;
    let pts = &t.points;
    let first_t = pts.first().map(|p| p.t_ns).unwrap_or(0);
    let last_t = pts.last().map(|p| p.t_ns).unwrap_or(0);
    let distinct_times = {
        let mut v: Vec<u64> = pts.iter().map(|p| p.t_ns).collect();
        v.dedup();
        v.len()
    };
    // The coarse clock ticks every few ms: a short run is drawn against events instead.
    let by_time = last_t.saturating_sub(first_t) >= 5_000_000 && distinct_times >= 3;
    let xs: Vec<f64> = std::iter::once(if by_time { first_t as f64 } else { 0.0 })
        .chain(pts.iter().map(|p| {
            if by_time {
                p.t_ns as f64
            } else {
                p.events as f64
            }
        }))
        .collect();
    let ys: Vec<f64> = std::iter::once(t.start_bytes as f64)
        .chain(pts.iter().map(|p| p.bytes as f64))
        .collect();
    let peaks: Vec<f64> = std::iter::once(t.start_bytes as f64)
        .chain(pts.iter().map(|p| p.peak as f64))
        .collect();
    let x_min = xs[0];
    let x_max = xs.last().copied().unwrap_or(1.0).max(x_min + 1.0);
    let y_max = peaks.iter().copied().fold(lost as f64, f64::max).max(1.0) * 1.1;
    let px = |x: f64| L + (x - x_min) / (x_max - x_min) * (W - L - R);
    let py = |y: f64| T + (1.0 - y / y_max) * (H - T - B);

    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"timeline-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"100%\" \
         viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"heap bytes in use over time, pid {}\">",
        t.pid
    );
    // Grid and y labels.
    for i in 0..=4 {
        let v = y_max / 1.1 * i as f64 / 4.0;
        let y = py(v);
        let _ = write!(
            s,
            "<line x1=\"{L}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e3e6ec\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"12\" fill=\"#5b6474\">{}</text>",
            W - R,
            L - 6.0,
            y + 4.0,
            esc(&short_bytes(v))
        );
    }
    // x labels.
    for i in 0..=4 {
        let x = x_min + (x_max - x_min) * i as f64 / 4.0;
        let label = if by_time {
            format!("{:.0} ms", (x - x_min) / 1e6)
        } else {
            format!("{}", x.round() as u64)
        };
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"12\" fill=\"#5b6474\">{}</text>",
            px(x),
            H - B + 16.0,
            esc(&label)
        );
    }
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"12\" fill=\"#3b4252\">{}</text>",
        L + (W - L - R) / 2.0,
        H - 6.0,
        if by_time {
            "time since the first allocation"
        } else {
            "allocations and frees so far"
        }
    );
    let _ = write!(
        s,
        "<line x1=\"{L}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#8e9aaf\"/>",
        py(0.0),
        W - R,
        py(0.0)
    );
    // The peak area and the level line, through the points (each point is the state
    // after its bucket, and its peak the highest level inside it).
    let mut area = format!("M{:.1},{:.1}", px(xs[0]), py(0.0));
    let mut line = String::new();
    for i in 0..xs.len() {
        let _ = write!(area, " L{:.1},{:.1}", px(xs[i]), py(peaks[i]));
        let _ = write!(
            line,
            "{}{:.1},{:.1}",
            if i == 0 { "M" } else { " L" },
            px(xs[i]),
            py(ys[i])
        );
    }
    let _ = write!(
        area,
        " L{:.1},{:.1} Z",
        px(*xs.last().unwrap_or(&x_min)),
        py(0.0)
    );
    let _ = write!(
        s,
        "<path d=\"{area}\" fill=\"#cfe3fb\" fill-opacity=\"0.7\"/>\
         <path class=\"in-use\" d=\"{line}\" fill=\"none\" stroke=\"#2463b5\" stroke-width=\"2\"/>"
    );
    let end = pts.last().map(|p| p.bytes).unwrap_or(t.start_bytes);
    let ex = px(*xs.last().unwrap_or(&x_min));
    let _ = write!(
        s,
        "<circle cx=\"{ex:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#2463b5\"><title>in use at the end: {} bytes</title></circle>",
        py(end as f64),
        thousands(end)
    );
    if lost > 0 {
        let ly = py(lost as f64);
        let _ = write!(
            s,
            "<line class=\"leaked\" x1=\"{L}\" y1=\"{ly:.1}\" x2=\"{ex:.1}\" y2=\"{ly:.1}\" \
             stroke=\"#c0392b\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\
             <circle cx=\"{ex:.1}\" cy=\"{ly:.1}\" r=\"5\" fill=\"#c0392b\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"13\" font-weight=\"600\" \
             fill=\"#c0392b\">leaked at exit: {} {}</text>",
            ex - 8.0,
            (ly - 8.0).max(T + 12.0),
            thousands(lost),
            plural(lost, "byte", "bytes")
        );
    }
    let peak = peaks.iter().copied().fold(0.0, f64::max) as u64;
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"#2463b5\">peak {} {}</text></svg>",
        L + 8.0,
        T + 12.0,
        thousands(peak),
        plural(peak, "byte", "bytes")
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Access, AccessOp, BlockInfo, LossRecord, Summary, SCHEMA};
    use crate::timeline::TimelinePoint;

    fn frame(function: &str, file: &str, line: u32) -> Frame {
        Frame {
            address: 0x401000,
            module: Some("/tmp/prog".into()),
            function: Some(function.into()),
            file: Some(file.into()),
            line: Some(line),
            inlined: false,
        }
    }

    fn report() -> Report {
        Report {
            schema: SCHEMA.into(),
            command: vec!["./prog".into(), "<a&b>".into()],
            exit: Some(ExitStatus::Code(0)),
            summary: Summary::default(),
            processes: Vec::new(),
            errors: vec![ErrorReport {
                kind: ErrorKind::UseAfterFree,
                pid: 7,
                thread: 7,
                count: 2,
                call: None,
                access: Some(Access {
                    op: AccessOp::Write,
                    size: Some(4),
                    address: 0x1000c,
                }),
                block: Some(BlockInfo {
                    address: 0x10000,
                    size: 40,
                    offset: 12,
                    allocated_by: Some("malloc".into()),
                    freed_by: Some("free".into()),
                }),
                signal: None,
                signal_code: None,
                fault_address: None,
                found_at: None,
                advice: None,
                stack: vec![frame("std::vector<int>::push_back", "/nonexistent/a.cc", 3)],
                alloc_stack: Some(vec![frame("main", "/nonexistent/a.cc", 1)]),
                free_stack: Some(vec![frame("main", "/nonexistent/a.cc", 2)]),
                message: "write of 4 bytes, 12 bytes inside a freed 40-byte block".into(),
                fingerprint: String::new(),
            }],
            leaks: vec![LossRecord {
                kind: LeakKind::Definite,
                bytes: 100,
                blocks: 1,
                pid: 7,
                allocated_by: Some("malloc".into()),
                stack: vec![Frame {
                    module: Some("/tmp/stripped".into()),
                    file: None,
                    line: None,
                    function: None,
                    ..frame("", "", 0)
                }],
                fingerprint: String::new(),
            }],
            warnings: Vec::new(),
            suppressed: Vec::new(),
            baseline: None,
            timeline: vec![ProcessTimeline {
                process: 0,
                pid: 7,
                start_bytes: 0,
                points: vec![
                    TimelinePoint {
                        t_ns: 0,
                        events: 1,
                        bytes: 40,
                        peak: 40,
                    },
                    TimelinePoint {
                        t_ns: 0,
                        events: 2,
                        bytes: 140,
                        peak: 140,
                    },
                ],
            }],
        }
    }

    #[test]
    fn everything_is_escaped_and_self_contained() {
        let html = render_html(&report(), &HtmlOptions::default());
        assert!(
            html.contains("std::vector&lt;int&gt;::push_back"),
            "names escaped"
        );
        assert!(html.contains("&lt;a&amp;b&gt;"), "command escaped");
        assert!(!html.contains("<a&b>"));
        assert!(!html.contains("http://") || !html.contains("src=\"http"));
        assert!(!html.contains("<link"), "no external resources");
        assert!(html.contains("source not available"));
        assert!(html.contains("note: no debug information for /tmp/stripped"));
        assert!(html.contains("leaked at exit: 100 bytes"));
        assert!(html.contains("Using a block after it was freed"));
        assert!(html.contains("data-kind=\"use-after-free\""));
        assert!(html.contains("(2 times)"));
    }

    #[test]
    fn the_source_line_is_highlighted() {
        let dir = std::env::temp_dir().join(format!("fp-html-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("x.c");
        std::fs::write(&src, "l1\nl2\nl3\nl4 <bad>\nl5\nl6\nl7\nl8\n").unwrap();
        let mut r = report();
        r.errors[0].stack = vec![frame("main", src.to_str().unwrap(), 4)];
        let html = render_html(&r, &HtmlOptions::default());
        assert!(
            html.contains("<span class=\"hl\"><span class=\"ln\">4</span>l4 &lt;bad&gt;</span>"),
            "{html}"
        );
        assert!(html.contains("<span class=\"ln\">1</span>l1"));
        assert!(html.contains("<span class=\"ln\">7</span>l7"));
        assert!(!html.contains("<span class=\"ln\">8</span>"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn block_drawings_place_the_access() {
        let over = BlockPicture {
            block_size: 13,
            freed: false,
            before: Side::Nothing,
            after: Side::Guard,
            offset: 13,
            len: Some(1),
            note: "read 1 byte at offset 13".into(),
        };
        let svg = block_svg(&over);
        assert!(svg.contains("guard page") && svg.contains("url(#hatch)"));
        assert!(svg.contains("block: 13 bytes"));
        let freed = BlockPicture {
            freed: true,
            after: Side::Nothing,
            offset: 5,
            block_size: 24,
            ..over
        };
        let svg = block_svg(&freed);
        assert!(svg.contains("freed block: 24 bytes"));
        assert_eq!(svg.matches("class=\"cross\"").count(), 2, "crossed out");
        assert!(short_bytes(4224.0) == "4.1 KiB" && short_bytes(12.0) == "12 B");
    }
}
