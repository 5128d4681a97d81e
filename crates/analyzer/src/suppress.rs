//! Suppressions: findings the user has decided not to see, in the files they already have.
//!
//! Two formats are read, told apart by their first meaningful line:
//!
//! - valgrind's `.supp` blocks (`{ name / Memcheck:KIND / [match-leak-kinds: …] / frames }`),
//!   with `fun:`, `obj:` and `src:` frame patterns, `*`/`?` wildcards and `...` for any
//!   number of frames. Patterns are anchored at the top of the stack, as in memcheck. The
//!   top frame memcheck sees is its replacement of the allocator or free function
//!   (`fun:malloc`, `fun:_Znwm`, `fun:free`); fencepost's stacks start below its shim, so a
//!   frame for that entry point is put back on top when matching — a block memcheck's
//!   `--gen-suppressions` wrote works unchanged — and a block written against fencepost's
//!   own stacks (starting at the caller) matches too.
//! - LeakSanitizer's `leak:PATTERN` lines: the pattern (a substring, `*` wildcards, `^`/`$`
//!   anchors) matched against the function, source file and module of every frame of a loss
//!   record's allocation stack.
//!
//! memcheck's kinds map onto fencepost's: `Leak` ↔ loss records (restricted by
//! `match-leak-kinds`), `Addr1`…`Addr32` ↔ bad accesses of that many bytes (overflow,
//! underflow, use after free, invalid or misaligned access), `Free` ↔ double, invalid and
//! mismatched frees. Kinds fencepost never reports (`Cond`, `Value8`, `Param`, …) are read and
//! never match. fencepost's own kinds can be named too: `fencepost:fatal-signal`,
//! `fencepost:heap-buffer-overflow` (what `--gen-suppressions` writes when memcheck has no
//! equivalent, e.g. an access of unknown size).
//!
//! Function names are matched against the demangled name fencepost shows; a pattern that is
//! a mangled C++ or Rust name without wildcards is demangled first, so memcheck's generated
//! `fun:_ZN4Tree6insertEi` matches `Tree::insert(int)`. (A mangled pattern *with* wildcards
//! only matches the allocator and free entry points, whose mangled names are known.)

use std::collections::HashMap;
use std::fmt::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fingerprint::is_runtime_module;
use crate::report::{ErrorKind, ErrorReport, Frame, LeakKind, LeakTotal, LossRecord, Report};

/// The built-in suppressions (`--default-suppressions=no` turns them off).
pub const DEFAULT_SUPPRESSIONS: &str = include_str!("default.supp");
/// The name the built-in file is reported under.
pub const DEFAULT_ORIGIN: &str = "<default suppressions>";

/// A finding removed from the report by a suppression, as the JSON report lists it under
/// `suppressed`: `{"suppression": NAME, "origin": "FILE:LINE", "error": {…}}` or
/// `{…, "leak": {…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuppressedFinding {
    /// The suppression's name (valgrind), or the pattern (LSan).
    pub suppression: String,
    /// Where the suppression was read: `FILE:LINE`.
    pub origin: String,
    #[serde(flatten)]
    pub finding: Finding,
}

/// An error or a loss record.
// A report holds a handful of findings, moved rarely: boxing the bigger one buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Finding {
    Error(ErrorReport),
    Leak(LossRecord),
}

impl Finding {
    pub fn fingerprint(&self) -> String {
        match self {
            Finding::Error(e) if !e.fingerprint.is_empty() => e.fingerprint.clone(),
            Finding::Leak(l) if !l.fingerprint.is_empty() => l.fingerprint.clone(),
            Finding::Error(e) => crate::fingerprint::of_error(e),
            Finding::Leak(l) => crate::fingerprint::of_leak(l),
        }
    }
}

/// A suppression file that could not be read: which file, which line, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressionError {
    pub file: String,
    /// 1-based; 0 when the error is about the whole file.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for SuppressionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "suppression file '{}': {}", self.file, self.message)
        } else {
            write!(
                f,
                "suppression file '{}', line {}: {}",
                self.file, self.line, self.message
            )
        }
    }
}

impl std::error::Error for SuppressionError {}

/// Every suppression in effect, in the order they were read (the first match wins).
#[derive(Debug, Clone, Default)]
pub struct SuppressionSet {
    pub suppressions: Vec<Suppression>,
}

#[derive(Debug, Clone)]
pub struct Suppression {
    pub name: String,
    /// `FILE:LINE` of its first line.
    pub origin: String,
    pub rule: Rule,
}

#[derive(Debug, Clone)]
pub enum Rule {
    /// A valgrind block for memcheck (or fencepost).
    Memcheck {
        kind: SuppKind,
        /// `match-leak-kinds:`; `None` matches every kind.
        leak_kinds: Option<Vec<LeakKind>>,
        frames: Vec<FramePattern>,
    },
    /// A valgrind block for another tool (Helgrind, DRD, …): read, never matches.
    OtherTool,
    /// LSan's `leak:PATTERN`, as a glob (anchors and substring rule already applied).
    LsanLeak { glob: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuppKind {
    Leak,
    /// `AddrN`: a bad access of N bytes.
    Addr(u64),
    Free,
    /// `fencepost:KIND`.
    Fencepost(ErrorKind),
    /// A memcheck kind fencepost cannot report (`Cond`, `Value8`, `Param`, …).
    NotReported,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramePattern {
    Fun(String),
    Obj(String),
    /// `src:FILE` or `src:FILE:LINE`.
    Src(String, Option<u32>),
    /// `...`: any number of frames, none included.
    Ellipsis,
}

impl SuppressionSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the built-in suppressions.
    pub fn add_defaults(&mut self) {
        // The built-in file is tested (`default_suppressions_parse`): it cannot fail.
        if let Ok(set) = Self::parse(DEFAULT_SUPPRESSIONS, DEFAULT_ORIGIN) {
            self.suppressions.extend(set.suppressions);
        }
    }

    /// Reads and adds a valgrind `.supp` or LSan suppression file.
    pub fn add_file(&mut self, path: &Path) -> Result<(), SuppressionError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SuppressionError {
            file: name.clone(),
            line: 0,
            message: format!("cannot read it: {e}"),
        })?;
        let set = Self::parse(&text, &name)?;
        self.suppressions.extend(set.suppressions);
        Ok(())
    }

    /// Parses a suppression file's text; `file` names it in errors and origins.
    pub fn parse(text: &str, file: &str) -> Result<Self, SuppressionError> {
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'));
        match first {
            None => Ok(Self::default()),
            Some("{") => parse_valgrind(text, file),
            Some(_) => parse_lsan(text, file),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.suppressions.is_empty()
    }

    /// Moves every suppressed error and loss record of `report` into `report.suppressed`,
    /// and recounts the summary's errors and leak totals over what is left.
    pub fn apply(&self, report: &mut Report) {
        if self.suppressions.is_empty() {
            return;
        }
        let errors = std::mem::take(&mut report.errors);
        for e in errors {
            match self.find(|s| s.matches_error(&e)) {
                Some(s) => report.suppressed.push(SuppressedFinding {
                    suppression: s.name.clone(),
                    origin: s.origin.clone(),
                    finding: Finding::Error(e),
                }),
                None => report.errors.push(e),
            }
        }
        let leaks = std::mem::take(&mut report.leaks);
        for l in leaks {
            match self.find(|s| s.matches_leak(&l)) {
                Some(s) => report.suppressed.push(SuppressedFinding {
                    suppression: s.name.clone(),
                    origin: s.origin.clone(),
                    finding: Finding::Leak(l),
                }),
                None => report.leaks.push(l),
            }
        }
        recount_summary(report);
    }

    fn find(&self, pred: impl Fn(&Suppression) -> bool) -> Option<&Suppression> {
        self.suppressions.iter().find(|s| pred(s))
    }
}

/// The summary's error counts and leak totals over the findings left in the report (after
/// suppressions and the baseline took theirs). `in_use_at_exit` keeps every block.
pub fn recount_summary(report: &mut Report) {
    report.summary.errors = report.errors.iter().map(|e| e.count).sum();
    report.summary.error_contexts = report.errors.len() as u64;
    let mut leaked = crate::report::LeakTotals::default();
    for l in &report.leaks {
        leaked.get_mut(l.kind).add(l.bytes, l.blocks, 1);
    }
    report.summary.leaked = leaked;
}

impl Suppression {
    pub fn matches_error(&self, e: &ErrorReport) -> bool {
        let Rule::Memcheck { kind, frames, .. } = &self.rule else {
            return false;
        };
        let kind_ok = match kind {
            SuppKind::Fencepost(k) => *k == e.kind,
            SuppKind::Free => is_free_error(e.kind),
            SuppKind::Addr(n) => {
                is_access_error(e.kind) && e.access.as_ref().and_then(|a| a.size) == Some(*n)
            }
            SuppKind::Leak | SuppKind::NotReported => false,
        };
        if !kind_ok {
            return false;
        }
        let (stack, top) = error_match_stack(e);
        stack_matches(frames, stack, top)
    }

    pub fn matches_leak(&self, l: &LossRecord) -> bool {
        match &self.rule {
            Rule::Memcheck {
                kind: SuppKind::Leak,
                leak_kinds,
                frames,
            } => {
                leak_kinds.as_ref().is_none_or(|k| k.contains(&l.kind))
                    && stack_matches(
                        frames,
                        &l.stack,
                        l.allocated_by.as_deref().map(EntryPoint::of),
                    )
            }
            Rule::LsanLeak { glob } => l.stack.iter().any(|f| {
                [
                    f.function.as_deref(),
                    f.file.as_deref(),
                    f.module.as_deref(),
                ]
                .into_iter()
                .flatten()
                .any(|s| glob_match(glob, s))
            }),
            _ => false,
        }
    }
}

fn is_free_error(k: ErrorKind) -> bool {
    matches!(
        k,
        ErrorKind::DoubleFree | ErrorKind::InvalidFree | ErrorKind::MismatchedFree
    )
}

fn is_access_error(k: ErrorKind) -> bool {
    matches!(
        k,
        ErrorKind::HeapBufferOverflow
            | ErrorKind::HeapBufferUnderflow
            | ErrorKind::UseAfterFree
            | ErrorKind::InvalidAccess
            | ErrorKind::MisalignedAccess
    )
}

/// The stack a suppression is matched against (and `--gen-suppressions` writes): where the
/// error happened, or, for a canary found at exit (no stack), where the block came from.
/// Free errors get their entry point (`free`, `operator delete`) on top, as in memcheck.
fn error_match_stack(e: &ErrorReport) -> (&[Frame], Option<EntryPoint>) {
    let top = if is_free_error(e.kind) {
        e.call.as_deref().map(EntryPoint::of)
    } else {
        None
    };
    if e.stack.is_empty() {
        if let Some(alloc) = &e.alloc_stack {
            return (alloc, None);
        }
    }
    (&e.stack, top)
}

/// The allocation or release function memcheck shows on top of a stack, with the names a
/// suppression may give it.
#[derive(Debug, Clone, Copy)]
struct EntryPoint {
    /// Demangled and mangled spellings; the first mangled one is what memcheck writes.
    names: &'static [&'static str],
}

impl EntryPoint {
    fn of(call: &str) -> EntryPoint {
        let names: &'static [&'static str] = match call {
            "malloc" => &["malloc"],
            "calloc" => &["calloc"],
            "realloc" => &["realloc"],
            "reallocarray" => &["reallocarray"],
            "posix_memalign" => &["posix_memalign"],
            "aligned_alloc" => &["aligned_alloc"],
            "memalign" => &["memalign"],
            "valloc" => &["valloc"],
            "pvalloc" => &["pvalloc"],
            "free" => &["free"],
            "operator new" => &[
                "_Znwm",
                "_ZnwmRKSt9nothrow_t",
                "_ZnwmSt11align_val_t",
                "_ZnwmSt11align_val_tRKSt9nothrow_t",
                "operator new(unsigned long)",
                "operator new(unsigned long, std::nothrow_t const&)",
                "operator new(unsigned long, std::align_val_t)",
                "operator new",
            ],
            "operator new[]" => &[
                "_Znam",
                "_ZnamRKSt9nothrow_t",
                "_ZnamSt11align_val_t",
                "_ZnamSt11align_val_tRKSt9nothrow_t",
                "operator new[](unsigned long)",
                "operator new[](unsigned long, std::nothrow_t const&)",
                "operator new[](unsigned long, std::align_val_t)",
                "operator new[]",
            ],
            "operator delete" => &[
                "_ZdlPv",
                "_ZdlPvm",
                "_ZdlPvSt11align_val_t",
                "_ZdlPvmSt11align_val_t",
                "_ZdlPvRKSt9nothrow_t",
                "operator delete(void*)",
                "operator delete(void*, unsigned long)",
                "operator delete",
            ],
            "operator delete[]" => &[
                "_ZdaPv",
                "_ZdaPvm",
                "_ZdaPvSt11align_val_t",
                "_ZdaPvmSt11align_val_t",
                "_ZdaPvRKSt9nothrow_t",
                "operator delete[](void*)",
                "operator delete[](void*, unsigned long)",
                "operator delete[]",
            ],
            _ => &[],
        };
        EntryPoint { names }
    }

    /// memcheck's spelling in a generated suppression.
    fn supp_name(self) -> Option<&'static str> {
        self.names.first().copied()
    }
}

/// The modules an `obj:` pattern may name for the entry-point frame: memcheck's preload
/// library (in memcheck's own suppressions) and fencepost's shim.
const ENTRY_POINT_OBJECTS: [&str; 2] = [
    "/usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so",
    "/usr/lib/fencepost/libfencepost_shim.so",
];

/// One frame as a pattern sees it.
enum Candidate<'a> {
    Entry(EntryPoint),
    Frame(&'a Frame),
}

fn stack_matches(patterns: &[FramePattern], stack: &[Frame], top: Option<EntryPoint>) -> bool {
    let frames: Vec<Candidate> = stack.iter().map(Candidate::Frame).collect();
    if let Some(top) = top.filter(|t| !t.names.is_empty()) {
        let mut with_top = Vec::with_capacity(frames.len() + 1);
        with_top.push(Candidate::Entry(top));
        with_top.extend(stack.iter().map(Candidate::Frame));
        if match_from(patterns, &with_top) {
            return true;
        }
    }
    match_from(patterns, &frames)
}

/// Anchored at the first frame; the patterns need not cover the whole stack.
fn match_from(patterns: &[FramePattern], frames: &[Candidate]) -> bool {
    let Some((first, rest)) = patterns.split_first() else {
        return true;
    };
    if *first == FramePattern::Ellipsis {
        return (0..=frames.len()).any(|skip| match_from(rest, &frames[skip..]));
    }
    match frames.split_first() {
        Some((frame, more)) => frame_matches(first, frame) && match_from(rest, more),
        None => false,
    }
}

fn frame_matches(pattern: &FramePattern, frame: &Candidate) -> bool {
    match (pattern, frame) {
        (FramePattern::Fun(p), Candidate::Entry(e)) => e.names.iter().any(|n| glob_match(p, n)),
        (FramePattern::Obj(p), Candidate::Entry(_)) => {
            ENTRY_POINT_OBJECTS.iter().any(|o| glob_match(p, o))
        }
        (FramePattern::Src(..), Candidate::Entry(_)) => false,
        (FramePattern::Fun(p), Candidate::Frame(f)) => {
            let name = f.function.as_deref().unwrap_or("???");
            glob_match(p, name) || demangled_pattern(p).is_some_and(|d| d == name)
        }
        (FramePattern::Obj(p), Candidate::Frame(f)) => {
            glob_match(p, f.module.as_deref().unwrap_or("???"))
        }
        (FramePattern::Src(p, line), Candidate::Frame(f)) => {
            let Some(file) = f.file.as_deref() else {
                return false;
            };
            (glob_match(p, file) || glob_match(p, basename(file)))
                && line.is_none_or(|l| f.line == Some(l))
        }
        (FramePattern::Ellipsis, _) => true,
    }
}

/// A mangled name without wildcards, demangled as the symbolizer demangles.
fn demangled_pattern(p: &str) -> Option<String> {
    if !p.starts_with("_Z") && !p.starts_with("_R") || p.contains(['*', '?']) {
        return None;
    }
    if let Ok(rust) = rustc_demangle::try_demangle(p) {
        return Some(format!("{rust:#}"));
    }
    let symbol = cpp_demangle::Symbol::new(p).ok()?;
    symbol
        .demangle(&cpp_demangle::DemangleOptions::default())
        .ok()
}

/// valgrind's wildcards: `*` any run of characters, `?` one character, `\` escapes.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matching with backtracking to the last `*`.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '\\' if pi + 1 < p.len() && p[pi + 1] == t[ti] => {
                    pi += 2;
                    ti += 1;
                    continue;
                }
                c if c != '\\' && c == t[ti] => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

const MEMCHECK_NOT_REPORTED: [&str; 16] = [
    "Cond",
    "Value1",
    "Value2",
    "Value4",
    "Value8",
    "Value16",
    "Value32",
    "Param",
    "Jump",
    "Overlap",
    "FishyValue",
    "ReallocZero",
    "InvalidMemPool",
    "CoreMemError",
    "Realloczero",
    "Addr0",
];

fn parse_valgrind(text: &str, file: &str) -> Result<SuppressionSet, SuppressionError> {
    let err = |line: usize, message: String| SuppressionError {
        file: file.to_string(),
        line,
        message,
    };
    // Meaningful lines with their 1-based numbers (comments and blank lines dropped).
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let mut set = SuppressionSet::default();
    let last_line = text.lines().count().max(1);
    while let Some((start, open)) = lines.next() {
        if open != "{" {
            return Err(err(
                start,
                format!("expected '{{' to start a suppression, found '{open}'"),
            ));
        }
        let mut next = |what: &str| {
            lines.next().ok_or_else(|| {
                err(
                    last_line,
                    format!("the file ends inside the suppression opened at line {start} (expected {what})"),
                )
            })
        };
        let (name_line, name) = next("a suppression name")?;
        if name == "}" || name.starts_with("fun:") || name.starts_with("obj:") {
            return Err(err(name_line, "expected the suppression's name".into()));
        }
        let (kind_line, kind_text) = next("TOOL:KIND, e.g. Memcheck:Leak")?;
        let Some((tools, kind_name)) = kind_text.split_once(':') else {
            return Err(err(
                kind_line,
                format!("expected TOOL:KIND (e.g. Memcheck:Leak), found '{kind_text}'"),
            ));
        };
        let tools: Vec<&str> = tools.split(',').map(str::trim).collect();
        let ours = tools
            .iter()
            .any(|t| t.eq_ignore_ascii_case("memcheck") || t.eq_ignore_ascii_case("fencepost"));
        let fencepost_tool = tools.iter().any(|t| t.eq_ignore_ascii_case("fencepost"));
        let kind_name = kind_name.trim();
        let kind = if !ours {
            None
        } else if kind_name == "Leak" {
            Some(SuppKind::Leak)
        } else if kind_name == "Free" {
            Some(SuppKind::Free)
        } else if let Some(n) = kind_name
            .strip_prefix("Addr")
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| [1, 2, 4, 8, 16, 32].contains(n))
        {
            Some(SuppKind::Addr(n))
        } else if MEMCHECK_NOT_REPORTED.contains(&kind_name) {
            Some(SuppKind::NotReported)
        } else if let Some(k) = fencepost_kind(kind_name).filter(|_| fencepost_tool) {
            Some(SuppKind::Fencepost(k))
        } else {
            return Err(err(
                kind_line,
                format!(
                    "unknown kind '{kind_name}' (memcheck's: Leak, Free, Addr1/2/4/8/16/32, Cond, Value8, Param, …; fencepost's: fencepost:fatal-signal, fencepost:heap-buffer-overflow, …)"
                ),
            ));
        };
        // Param and FishyValue name the parameter on the next line.
        if ours && matches!(kind_name, "Param" | "FishyValue") {
            next("the parameter's name")?;
        }
        let mut leak_kinds = None;
        let mut frames = Vec::new();
        loop {
            let (n, line) = next("frames and '}'")?;
            if line == "}" {
                break;
            }
            if let Some(kinds) = line.strip_prefix("match-leak-kinds:") {
                if !frames.is_empty() {
                    return Err(err(
                        n,
                        "match-leak-kinds: must come before the frames".into(),
                    ));
                }
                let parsed = LeakKind::parse_set(kinds).map_err(|e| err(n, e))?;
                leak_kinds = Some(parsed);
                continue;
            }
            if line == "..." {
                frames.push(FramePattern::Ellipsis);
            } else if let Some(p) = line.strip_prefix("fun:") {
                frames.push(FramePattern::Fun(p.to_string()));
            } else if let Some(p) = line.strip_prefix("obj:") {
                frames.push(FramePattern::Obj(p.to_string()));
            } else if let Some(p) = line.strip_prefix("src:") {
                let (file_pat, line_no) = match p.rsplit_once(':') {
                    Some((f, l)) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => {
                        (f.to_string(), l.parse().ok())
                    }
                    _ => (p.to_string(), None),
                };
                frames.push(FramePattern::Src(file_pat, line_no));
            } else if line == "{" {
                return Err(err(
                    n,
                    format!(
                        "'{{' inside the suppression opened at line {start} (a '}}' is missing)"
                    ),
                ));
            } else {
                return Err(err(
                    n,
                    format!("expected fun:, obj:, src:, ... or '}}', found '{line}'"),
                ));
            }
        }
        if frames.is_empty() {
            return Err(err(
                start,
                format!("suppression '{name}' has no frames (fun:, obj:, src: or ...)"),
            ));
        }
        if leak_kinds.is_some() && kind != Some(SuppKind::Leak) && kind.is_some() {
            return Err(err(
                kind_line,
                "match-leak-kinds: only applies to Memcheck:Leak".into(),
            ));
        }
        let rule = match kind {
            Some(kind) => Rule::Memcheck {
                kind,
                leak_kinds,
                frames,
            },
            None => Rule::OtherTool,
        };
        set.suppressions.push(Suppression {
            name: name.to_string(),
            origin: format!("{file}:{start}"),
            rule,
        });
    }
    Ok(set)
}

fn fencepost_kind(name: &str) -> Option<ErrorKind> {
    ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
}

/// Suppression types of the sanitizers' common format that are not LSan's: accepted (a
/// file shared with ASan or TSan) and ignored.
const SANITIZER_OTHER_TYPES: [&str; 13] = [
    "interceptor_name",
    "interceptor_via_fun",
    "interceptor_via_lib",
    "odr_violation",
    "init-order",
    "race",
    "race_top",
    "mutex",
    "thread",
    "signal",
    "called_from_lib",
    "deadlock",
    "vptr_check",
];

fn parse_lsan(text: &str, file: &str) -> Result<SuppressionSet, SuppressionError> {
    let mut set = SuppressionSet::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |message: String| SuppressionError {
            file: file.to_string(),
            line: i + 1,
            message,
        };
        let Some((kind, pattern)) = line.split_once(':') else {
            return Err(err(format!(
                "expected 'leak:PATTERN' (LSan) or '{{' (valgrind), found '{line}'"
            )));
        };
        let pattern = pattern.trim();
        if kind == "leak" {
            if pattern.is_empty() {
                return Err(err("'leak:' needs a pattern".into()));
            }
            set.suppressions.push(Suppression {
                name: pattern.to_string(),
                origin: format!("{file}:{}", i + 1),
                rule: Rule::LsanLeak {
                    glob: lsan_glob(pattern),
                },
            });
        } else if !SANITIZER_OTHER_TYPES.contains(&kind) {
            return Err(err(format!(
                "unknown suppression type '{kind}' (LSan's is 'leak:PATTERN')"
            )));
        }
    }
    Ok(set)
}

/// LSan's template rule as a glob: a substring match unless anchored with `^` / `$`.
fn lsan_glob(pattern: &str) -> String {
    let (start, rest) = match pattern.strip_prefix('^') {
        Some(rest) => ("", rest),
        None => ("*", pattern),
    };
    let (body, end) = match rest.strip_suffix('$') {
        Some(body) => (body, ""),
        None => (rest, "*"),
    };
    format!("{start}{body}{end}")
}

/// `--gen-suppressions`: a block for this error, ready to paste into a `.supp` file.
pub fn generate_for_error(e: &ErrorReport) -> String {
    let kind = match e.kind {
        k if is_free_error(k) => "Memcheck:Free".to_string(),
        k if is_access_error(k) => match e.access.as_ref().and_then(|a| a.size) {
            Some(n) if [1, 2, 4, 8, 16, 32].contains(&n) => format!("Memcheck:Addr{n}"),
            _ => format!("fencepost:{k}"),
        },
        k => format!("fencepost:{k}"),
    };
    let (stack, top) = error_match_stack(e);
    block(&kind, None, stack, top)
}

/// `--gen-suppressions`: a block for this loss record.
pub fn generate_for_leak(l: &LossRecord) -> String {
    let kinds = match l.kind {
        LeakKind::Definite => "definite",
        LeakKind::Indirect => "indirect",
        LeakKind::Possible => "possible",
        LeakKind::Reachable => "reachable",
        LeakKind::Unreleased => "unreleased",
    };
    block(
        "Memcheck:Leak",
        Some(kinds),
        &l.stack,
        l.allocated_by.as_deref().map(EntryPoint::of),
    )
}

fn block(kind: &str, leak_kinds: Option<&str>, stack: &[Frame], top: Option<EntryPoint>) -> String {
    let mut out = String::from("{\n   <insert_a_suppression_name_here>\n");
    let _ = writeln!(out, "   {kind}");
    if let Some(k) = leak_kinds {
        let _ = writeln!(out, "   match-leak-kinds: {k}");
    }
    if let Some(name) = top.and_then(EntryPoint::supp_name) {
        let _ = writeln!(out, "   fun:{name}");
    }
    for f in stack {
        match (&f.function, &f.module) {
            (Some(func), _) => {
                let _ = writeln!(out, "   fun:{func}");
            }
            (None, Some(module)) => {
                let _ = writeln!(out, "   obj:{module}");
            }
            (None, None) => {
                let _ = writeln!(out, "   obj:*");
            }
        }
    }
    if stack.is_empty() && top.is_none() {
        out.push_str("   ...\n");
    }
    out.push_str("}\n");
    out
}

/// One line of the "used suppression" list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedSuppression {
    pub name: String,
    pub origin: String,
    /// Error occurrences plus loss records it suppressed.
    pub count: u64,
    pub leaked_bytes: u64,
    pub leaked_blocks: u64,
}

/// Totals of the loss records of `pid` taken out of the report: (suppressed, known from the
/// baseline).
pub fn set_aside_leaks(report: &Report, pid: u32) -> (LeakTotal, LeakTotal) {
    let mut suppressed = LeakTotal::default();
    for s in &report.suppressed {
        if let Finding::Leak(l) = &s.finding {
            if l.pid == pid {
                suppressed.add(l.bytes, l.blocks, 1);
            }
        }
    }
    let mut known = LeakTotal::default();
    for f in report.baseline.iter().flat_map(|b| &b.findings) {
        if let Finding::Leak(l) = f {
            if l.pid == pid {
                known.add(l.bytes, l.blocks, 1);
            }
        }
    }
    (suppressed, known)
}

/// The suppressions used in a report, in the order first used.
pub fn used(report: &Report) -> Vec<UsedSuppression> {
    let mut out: Vec<UsedSuppression> = Vec::new();
    let mut index: HashMap<(&str, &str), usize> = HashMap::new();
    for s in &report.suppressed {
        let i = *index
            .entry((s.suppression.as_str(), s.origin.as_str()))
            .or_insert_with(|| {
                out.push(UsedSuppression {
                    name: s.suppression.clone(),
                    origin: s.origin.clone(),
                    count: 0,
                    leaked_bytes: 0,
                    leaked_blocks: 0,
                });
                out.len() - 1
            });
        match &s.finding {
            Finding::Error(e) => out[i].count += e.count,
            Finding::Leak(l) => {
                out[i].count += 1;
                out[i].leaked_bytes += l.bytes;
                out[i].leaked_blocks += l.blocks;
            }
        }
    }
    out
}

/// (occurrences, findings) suppressed, for "ERROR SUMMARY: … (suppressed: N from M)".
pub fn suppressed_counts(report: &Report) -> (u64, u64) {
    let occurrences = report
        .suppressed
        .iter()
        .map(|s| match &s.finding {
            Finding::Error(e) => e.count,
            Finding::Leak(_) => 1,
        })
        .sum();
    (occurrences, report.suppressed.len() as u64)
}

/// The text report's "used suppression" lines (empty when none was used).
pub fn render_used(report: &Report) -> String {
    let mut out = String::new();
    let used = used(report);
    if used.is_empty() {
        return out;
    }
    out.push('\n');
    for u in used {
        let _ = write!(
            out,
            "used suppression: {:>6} {} ({})",
            u.count, u.name, u.origin
        );
        if u.leaked_blocks > 0 {
            let _ = write!(
                out,
                " suppressed: {} {} in {} {}",
                crate::text::thousands(u.leaked_bytes),
                crate::analysis::plural(u.leaked_bytes, "byte", "bytes"),
                crate::text::thousands(u.leaked_blocks),
                crate::analysis::plural(u.leaked_blocks, "block", "blocks"),
            );
        }
        out.push('\n');
    }
    out
}

/// Whether a frame is in the user's code (used by generated suppressions' callers).
pub fn is_user_frame(f: &Frame) -> bool {
    !is_runtime_module(f.module.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, module: &str, file: &str, line: u32) -> Frame {
        Frame {
            address: 0x1000,
            module: Some(module.into()),
            function: Some(function.into()),
            file: Some(file.into()),
            line: Some(line),
            inlined: false,
        }
    }

    fn leak(kind: LeakKind, stack: Vec<Frame>) -> LossRecord {
        LossRecord {
            kind,
            bytes: 32,
            blocks: 1,
            pid: 1,
            allocated_by: Some("malloc".into()),
            stack,
            fingerprint: String::new(),
        }
    }

    fn list_leak() -> LossRecord {
        leak(
            LeakKind::Definite,
            vec![
                frame("new_node", "/t/leak_list", "/src/leak_list.c", 26),
                frame("build_and_drop", "/t/leak_list", "/src/leak_list.c", 37),
                frame("main", "/t/leak_list", "/src/leak_list.c", 47),
            ],
        )
    }

    fn one(text: &str) -> SuppressionSet {
        SuppressionSet::parse(text, "t.supp").expect("parses")
    }

    #[test]
    fn default_suppressions_parse() {
        SuppressionSet::parse(DEFAULT_SUPPRESSIONS, DEFAULT_ORIGIN).expect("default.supp parses");
    }

    #[test]
    fn glob() {
        assert!(glob_match("*", ""));
        assert!(glob_match("make_*", "make_node"));
        assert!(glob_match("m?ke_node", "make_node"));
        assert!(!glob_match("make_", "make_node"));
        assert!(glob_match("*lib*.so*", "/usr/lib/libz.so.1"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b*c", "aXbYbZ"));
        assert!(glob_match("f(char\\*)", "f(char*)"));
    }

    #[test]
    fn memcheck_block_with_malloc_on_top_matches() {
        let s = one(
            "# a comment\n{\n   list\n   Memcheck:Leak\n   match-leak-kinds: definite\n   fun:malloc\n   fun:new_node\n   ...\n   fun:main\n}\n",
        );
        let s = &s.suppressions[0];
        assert!(s.matches_leak(&list_leak()));
        let mut possible = list_leak();
        possible.kind = LeakKind::Possible;
        assert!(!s.matches_leak(&possible), "match-leak-kinds restricts");
        let mut calloc = list_leak();
        calloc.allocated_by = Some("calloc".into());
        assert!(!s.matches_leak(&calloc), "fun:malloc is not calloc");
    }

    #[test]
    fn block_written_against_fencepost_stacks_matches() {
        let s = one("{\n x\n Memcheck:Leak\n fun:new_node\n fun:build_*\n}\n");
        assert!(s.suppressions[0].matches_leak(&list_leak()));
        let s = one("{\n x\n Memcheck:Leak\n fun:build_and_drop\n}\n");
        assert!(
            !s.suppressions[0].matches_leak(&list_leak()),
            "anchored at the top"
        );
        let s = one("{\n x\n Memcheck:Leak\n obj:*vgpreload_memcheck*\n src:leak_list.c:26\n}\n");
        assert!(s.suppressions[0].matches_leak(&list_leak()));
        let s = one("{\n x\n Memcheck:Leak\n ...\n src:leak_list.c:99\n}\n");
        assert!(!s.suppressions[0].matches_leak(&list_leak()));
    }

    #[test]
    fn mangled_names_match_demangled_frames() {
        let mut l = list_leak();
        l.allocated_by = Some("operator new".into());
        l.stack[0].function = Some("Tree::insert(int)".into());
        let s = one("{\n x\n Memcheck:Leak\n fun:_Znwm\n fun:_ZN4Tree6insertEi\n}\n");
        assert!(s.suppressions[0].matches_leak(&l));
        let s = one("{\n x\n Memcheck:Leak\n fun:_Znwm\n fun:Tree::insert(int)\n}\n");
        assert!(s.suppressions[0].matches_leak(&l));
    }

    #[test]
    fn lsan_patterns() {
        let s = one("# lsan\nleak:new_node\nleak:^main$\n");
        assert_eq!(s.suppressions.len(), 2);
        assert!(s.suppressions[0].matches_leak(&list_leak()));
        assert!(s.suppressions[1].matches_leak(&list_leak()));
        let s = one("leak:leak_list.c\n");
        assert!(
            s.suppressions[0].matches_leak(&list_leak()),
            "file names match"
        );
        let s = one("leak:^ain\n");
        assert!(!s.suppressions[0].matches_leak(&list_leak()));
    }

    #[test]
    fn generated_block_round_trips() {
        let l = list_leak();
        let text = generate_for_leak(&l);
        assert!(text.starts_with("{\n   <insert_a_suppression_name_here>\n   Memcheck:Leak\n   match-leak-kinds: definite\n   fun:malloc\n   fun:new_node\n"), "{text}");
        let s = one(&text);
        assert!(s.suppressions[0].matches_leak(&l));
        let mut other = list_leak();
        other.stack[0].function = Some("new_tree".into());
        assert!(!s.suppressions[0].matches_leak(&other));
    }

    #[test]
    fn malformed_files_name_the_line() {
        let e = SuppressionSet::parse("{\n x\n Memcheck:Leak\n fun:a\n bogus\n}\n", "f.supp")
            .unwrap_err();
        assert_eq!(e.line, 5);
        assert!(e.to_string().contains("f.supp"), "{e}");
        let e = SuppressionSet::parse("{\n x\n Memcheck:Leak\n fun:a\n", "f.supp").unwrap_err();
        assert!(e.message.contains("ends inside"), "{e}");
        let e = SuppressionSet::parse("{\n x\n Memcheck:Nope\n fun:a\n}\n", "f.supp").unwrap_err();
        assert_eq!(e.line, 3);
        let e = SuppressionSet::parse("leak:a\nrace:b\nbad line\n", "l.txt").unwrap_err();
        assert_eq!(e.line, 3);
        let e = SuppressionSet::parse(
            "{\n x\n Memcheck:Leak\n match-leak-kinds: sometimes\n fun:a\n}\n",
            "f.supp",
        )
        .unwrap_err();
        assert_eq!(e.line, 4);
    }

    #[test]
    fn other_tools_and_unreported_kinds_never_match() {
        let s = one("{\n h\n Helgrind:Race\n fun:*\n}\n{\n c\n Memcheck:Cond\n fun:*\n}\n{\n p\n Memcheck:Param\n write(buf)\n fun:*\n}\n");
        assert_eq!(s.suppressions.len(), 3);
        assert!(s.suppressions.iter().all(|s| !s.matches_leak(&list_leak())));
    }
}
