//! The [`Report`]: everything a run found, symbolized and sorted, independent of how it is
//! shown. Its serde form is the JSON contract (`fencepost-report/1`, documented in
//! `docs/report-format.md`); the text renderer and later formats read the same value, and
//! `fencepost report` / baselines read it back, hence `Deserialize` too.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::analysis::plural;
use crate::text::thousands;

/// The schema name written in every report; bumped on an incompatible change.
pub const SCHEMA: &str = "fencepost-report/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    /// The traced command line, as the CLI ran it.
    pub command: Vec<String>,
    /// How the main process ended; `null` when unknown (e.g. a trace without the CLI's record).
    pub exit: Option<ExitStatus>,
    pub summary: Summary,
    pub processes: Vec<ProcessReport>,
    pub errors: Vec<ErrorReport>,
    /// Every loss record of every kind, biggest first.
    pub leaks: Vec<LossRecord>,
    /// Things the user should know that are not findings (shim warnings, inconsistencies).
    #[serde(default)]
    pub warnings: Vec<Warning>,
    /// Errors and loss records removed by a suppression (`--suppressions`, the built-in
    /// defaults), with the suppression's name: not in `errors`/`leaks`, not counted as errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<crate::suppress::SuppressedFinding>,
    /// With `--baseline`: the findings already in the baseline (not in `errors`/`leaks`, not
    /// counted as errors); omitted without a baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<crate::baseline::BaselineOutcome>,
    /// Heap bytes in use over time, one downsampled curve per process image that allocated
    /// (see [`crate::timeline`]); omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<crate::timeline::ProcessTimeline>,
}

/// `{"code": N}` or `{"signal": N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

/// The short name of a signal, `None` for one with no common name here.
pub fn signal_abbrev(sig: i32) -> Option<&'static str> {
    Some(match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        31 => "SIGSYS",
        _ => return None,
    })
}

/// Totals over the reported process images (an image replaced by exec is listed in
/// `processes` but not counted here: it is not leak-checked, as in memcheck).
///
/// Invariant: `allocations - frees` equals the sum of `blocks` over all loss records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Allocations, including blocks inherited by forked children.
    pub allocations: u64,
    pub frees: u64,
    pub bytes_allocated: u64,
    /// Blocks a forked child inherited live from its parent (counted in `allocations`, their
    /// bytes in `bytes_allocated`).
    pub inherited: u64,
    /// Process images in the report.
    pub processes: u64,
    /// Error occurrences (each error's `count`, summed), loss records excluded.
    pub errors: u64,
    /// Distinct errors (entries in `errors`).
    pub error_contexts: u64,
    /// Blocks live at the end, all kinds together.
    pub in_use_at_exit: LeakTotal,
    /// Per leak kind; every kind is always present.
    pub leaked: LeakTotals,
    /// The guard heap's statistics over all processes (counts summed, the byte figures the
    /// largest of any process); omitted when no process ran with the guard heap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<GuardStats>,
}

/// How the guard heap placed blocks (from the shim's end-of-run statistics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardStats {
    /// Blocks placed against a guard page.
    pub guarded: u64,
    /// Blocks packed with canary redzones only, because a guard budget was reached: their
    /// overruns are found at free or exit, not at the instruction.
    pub unguarded: u64,
    /// The most bytes the use-after-free quarantine held at once.
    pub quarantine_bytes_max: u64,
    /// The guarded-bytes budget (`--guard-budget-mb`).
    pub guard_budget_bytes: u64,
    /// Sampled mode's settings; omitted when every block was meant to be guarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<Sample>,
}

/// Which blocks sampled mode guards (`--mode=sampled`): the others are fast mode's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Blocks guarded at each call site (the allocation's first three frames) first.
    pub first: u32,
    /// Then one block in this many, on average.
    pub rate: u32,
}

impl GuardStats {
    /// What sampled mode left unguarded, said in a sentence for the summaries, given the
    /// allocations made (a forked child's own, not those it inherited: the shim counts
    /// guarded blocks the same way); None outside sampled mode.
    pub fn sample_note(&self, allocations: u64) -> Option<String> {
        let s = self.sample?;
        let first = if s.first == 0 {
            String::new()
        } else {
            format!(
                "each call site's first {}, then ",
                thousands(u64::from(s.first))
            )
        };
        Some(format!(
            "sampled mode: {} of {} {} guarded ({first}about 1 in {}); writes past the \
             others are found when they are freed, reads past them and their use after free \
             are not found",
            thousands(self.guarded),
            thousands(allocations),
            plural(allocations, "block was", "blocks were"),
            thousands(u64::from(s.rate)),
        ))
    }

    /// Adds another process's figures: counts add up, byte figures keep the largest.
    pub fn merge(&mut self, other: &GuardStats) {
        self.guarded = self.guarded.saturating_add(other.guarded);
        self.unguarded = self.unguarded.saturating_add(other.unguarded);
        self.quarantine_bytes_max = self.quarantine_bytes_max.max(other.quarantine_bytes_max);
        self.guard_budget_bytes = self.guard_budget_bytes.max(other.guard_budget_bytes);
        self.sample = self.sample.or(other.sample);
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakTotal {
    pub bytes: u64,
    pub blocks: u64,
    /// Loss records of that kind.
    pub records: u64,
}

impl LeakTotal {
    pub fn add(&mut self, bytes: u64, blocks: u64, records: u64) {
        self.bytes += bytes;
        self.blocks += blocks;
        self.records += records;
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakTotals {
    pub definite: LeakTotal,
    pub indirect: LeakTotal,
    pub possible: LeakTotal,
    pub reachable: LeakTotal,
    pub unreleased: LeakTotal,
}

impl LeakTotals {
    pub fn get(&self, kind: LeakKind) -> &LeakTotal {
        match kind {
            LeakKind::Definite => &self.definite,
            LeakKind::Indirect => &self.indirect,
            LeakKind::Possible => &self.possible,
            LeakKind::Reachable => &self.reachable,
            LeakKind::Unreleased => &self.unreleased,
        }
    }
    pub fn get_mut(&mut self, kind: LeakKind) -> &mut LeakTotal {
        match kind {
            LeakKind::Definite => &mut self.definite,
            LeakKind::Indirect => &mut self.indirect,
            LeakKind::Possible => &mut self.possible,
            LeakKind::Reachable => &mut self.reachable,
            LeakKind::Unreleased => &mut self.unreleased,
        }
    }
}

/// One process image: a pid that execs gets a new entry for the new image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessReport {
    pub pid: u32,
    pub ppid: u32,
    pub exe: String,
    /// How the image began.
    pub start: ProcessStartKind,
    /// How it ended.
    pub end: ProcessEnd,
    /// Exit status when known (from the process's own exit, or the CLI for the main process).
    pub exit: Option<ExitStatus>,
    pub threads: u64,
    pub allocations: u64,
    pub frees: u64,
    pub bytes_allocated: u64,
    pub inherited: u64,
    /// The guard heap's statistics; omitted when the process did not run with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<GuardStats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessStartKind {
    /// The process the CLI spawned.
    Main,
    Fork,
    Exec,
    /// Seen without a start record (a trace that began late).
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessEnd {
    /// `exit()` or return from main: leaks classified.
    Exit,
    /// `_exit()`: leaks classified.
    #[serde(rename = "_exit")]
    UnderscoreExit,
    /// Replaced by another image (execve): not leak-checked.
    Exec,
    /// No exit record: killed or crashed; live blocks are `unreleased`.
    Died,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    DoubleFree,
    InvalidFree,
    MismatchedFree,
    HeapBufferOverflow,
    HeapBufferUnderflow,
    UseAfterFree,
    /// A guard page of the fencepost heap that belongs to no block (a wild pointer).
    InvalidAccess,
    /// A general-protection fault on an aligned access to a heap block.
    MisalignedAccess,
    FatalSignal,
}

impl ErrorKind {
    /// Every kind, in the order of the enum.
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::DoubleFree,
        ErrorKind::InvalidFree,
        ErrorKind::MismatchedFree,
        ErrorKind::HeapBufferOverflow,
        ErrorKind::HeapBufferUnderflow,
        ErrorKind::UseAfterFree,
        ErrorKind::InvalidAccess,
        ErrorKind::MisalignedAccess,
        ErrorKind::FatalSignal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::DoubleFree => "double-free",
            ErrorKind::InvalidFree => "invalid-free",
            ErrorKind::MismatchedFree => "mismatched-free",
            ErrorKind::HeapBufferOverflow => "heap-buffer-overflow",
            ErrorKind::HeapBufferUnderflow => "heap-buffer-underflow",
            ErrorKind::UseAfterFree => "use-after-free",
            ErrorKind::InvalidAccess => "invalid-access",
            ErrorKind::MisalignedAccess => "misaligned-access",
            ErrorKind::FatalSignal => "fatal-signal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One distinct error; identical ones (same kind, same stack) are counted, not repeated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorReport {
    pub kind: ErrorKind,
    pub pid: u32,
    /// Thread id of the first occurrence.
    pub thread: u32,
    pub count: u64,
    /// The entry point the program called (`free`, `operator delete[]`, `realloc`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<BlockInfo>,
    /// For `fatal-signal`: the signal number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// For `fatal-signal`: the signal's `si_code` (e.g. 1 `SEGV_MAPERR`, 2 `SEGV_ACCERR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_code: Option<i32>,
    /// The address the fault reported (`si_addr`), for faults that have one: guard-page
    /// faults, SIGSEGV and SIGBUS. May differ from `access.address` when an access
    /// straddles into a guard page (the fault names the first bad byte).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_address: Option<u64>,
    /// For overwritten canaries: when they were checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found_at: Option<FoundAt>,
    /// What to do about it, when fencepost knows (e.g. rerun with `--alignment=16`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
    /// Where the error happened.
    pub stack: Stack,
    pub alloc_stack: Option<Stack>,
    pub free_stack: Option<Stack>,
    /// One line saying what is wrong, e.g. "free() of an address that was never allocated".
    pub message: String,
    /// Stable identity across runs (kind and the top user frames' function and file name,
    /// never addresses or lines): see [`crate::fingerprint`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fingerprint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessOp {
    Read,
    Write,
}

impl AccessOp {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessOp::Read => "read",
            AccessOp::Write => "write",
        }
    }
}

/// The bad access itself: decoded from the faulting instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub op: AccessOp,
    /// Bytes accessed (the element size of a string instruction, the vector size of a vector
    /// one); `null` when the instruction could not be decoded.
    pub size: Option<u64>,
    /// The first byte accessed.
    pub address: u64,
}

/// When overwritten canary bytes were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FoundAt {
    /// When the block was freed (`stack` is the free's).
    Free,
    /// At exit, the block still live (no `stack`).
    Exit,
}

/// The heap block an error is about, and where in it the address falls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockInfo {
    pub address: u64,
    pub size: u64,
    /// The error's address minus the block's (negative below the block).
    pub offset: i64,
    /// The entry point that allocated the block (`malloc`, `operator new[]`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_by: Option<String>,
    /// For a freed block: the entry point that freed it (`free`, `operator delete`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freed_by: Option<String>,
}

pub type Stack = Vec<Frame>;

/// One source-level frame; inlined functions get their own frame before their caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The pc as recorded (a return address for all frames of allocation stacks).
    pub address: u64,
    /// Path of the module the pc belongs to, `null` when it is in none known.
    pub module: Option<String>,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub inlined: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeakKind {
    Definite,
    Indirect,
    Possible,
    Reachable,
    Unreleased,
}

impl LeakKind {
    pub const ALL: [LeakKind; 5] = [
        LeakKind::Definite,
        LeakKind::Indirect,
        LeakKind::Possible,
        LeakKind::Reachable,
        LeakKind::Unreleased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LeakKind::Definite => "definite",
            LeakKind::Indirect => "indirect",
            LeakKind::Possible => "possible",
            LeakKind::Reachable => "reachable",
            LeakKind::Unreleased => "unreleased",
        }
    }

    /// Parses memcheck's `--show-leak-kinds` / `--errors-for-leak-kinds` syntax: a comma
    /// list of kinds, or `all`, or `none`. `all` includes `unreleased`.
    pub fn parse_set(s: &str) -> Result<Vec<LeakKind>, String> {
        match s.trim() {
            "all" => return Ok(LeakKind::ALL.to_vec()),
            "none" | "" => return Ok(Vec::new()),
            _ => {}
        }
        let mut kinds = Vec::new();
        for part in s.split(',') {
            let k: LeakKind = part.trim().parse()?;
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
        Ok(kinds)
    }
}

impl FromStr for LeakKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        LeakKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown leak kind '{s}' (expected definite, indirect, possible, reachable, unreleased, all or none)"
                )
            })
    }
}

impl fmt::Display for LeakKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Leaked blocks of one kind, one process, one allocation stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossRecord {
    pub kind: LeakKind,
    /// Bytes of this record's own blocks (not counting blocks they point to).
    pub bytes: u64,
    pub blocks: u64,
    pub pid: u32,
    /// The entry point that allocated the blocks (`malloc`, `operator new`, ...), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_by: Option<String>,
    /// Allocation stack.
    pub stack: Stack,
    /// Stable identity across runs: see [`crate::fingerprint`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// The process it is about, when it is about one.
    pub pid: Option<u32>,
    pub message: String,
}

impl Report {
    /// Errors in memcheck's sense, for `--error-exitcode` and the ERROR SUMMARY: every error
    /// occurrence, plus one per loss record of the given kinds.
    pub fn error_count(&self, errors_for_leak_kinds: &[LeakKind]) -> usize {
        let errors: u64 = self.errors.iter().map(|e| e.count).sum();
        let leaks = self
            .leaks
            .iter()
            .filter(|l| errors_for_leak_kinds.contains(&l.kind))
            .count();
        errors as usize + leaks
    }

    /// Contexts for the ERROR SUMMARY: distinct errors plus counted loss records.
    pub fn error_contexts(&self, errors_for_leak_kinds: &[LeakKind]) -> usize {
        self.errors.len()
            + self
                .leaks
                .iter()
                .filter(|l| errors_for_leak_kinds.contains(&l.kind))
                .count()
    }

    /// Reads a report back from its JSON form, checking the schema name.
    pub fn from_json(json: &str) -> Result<Report, String> {
        let report: Report =
            serde_json::from_str(json).map_err(|e| format!("not a fencepost report: {e}"))?;
        if report.schema != SCHEMA {
            return Err(format!(
                "report schema is '{}', this fencepost reads '{SCHEMA}'",
                report.schema
            ));
        }
        Ok(report)
    }

    /// The JSON form, pretty-printed.
    pub fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
