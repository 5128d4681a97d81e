//! memcheck's vocabulary for fencepost's findings, shared by the memcheck-format text
//! ([`crate::memcheck_text`]) and the XML protocol 4 ([`crate::xml`]) renderers.
//!
//! Tools that parse valgrind's output (ctest's memcheck handler, CI log scrapers, XML
//! consumers) key on memcheck's exact wording: "Invalid read of size 4", "Address 0x… is 0
//! bytes after a block of size 13 alloc'd", "N bytes in M blocks are definitely lost in loss
//! record X of Y". This module says each [`ErrorReport`] and [`LossRecord`] in those words,
//! once, so the two renderers cannot drift apart.
//!
//! Where fencepost knows something memcheck has no words for, the mapping is:
//! - a fatal signal with a decoded access is memcheck's pair: an `InvalidRead`/`InvalidWrite`
//!   error ("Address 0x0 is not stack'd, malloc'd or (recently) free'd") followed by
//!   "Process terminating with default action of signal N"; without a decoded access (abort,
//!   SIGFPE, a misaligned access), only the termination, which memcheck does not count as an
//!   error.
//! - `unreleased` loss records (a process that died without exiting) have no memcheck kind:
//!   they count in "in use at exit", are printed in the text with their own wording when
//!   shown, and are left out of the XML.
//! - a definite loss record's bytes are its own blocks' only: fencepost's report does not
//!   say which indirect blocks hang off which definite block, so memcheck's
//!   "320 (32 direct, 288 indirect) bytes" is "32 bytes", and `<leakedbytes>` is 32.

use crate::report::{
    signal_abbrev, AccessOp, ErrorKind, ErrorReport, Frame, LeakKind, LossRecord, Report,
};

/// A finding as memcheck states it: the error part (if memcheck would report one) and the
/// fatal signal (if the process died of one).
pub struct MemcheckError<'a> {
    pub error: Option<ErrorPart<'a>>,
    pub fatal: Option<FatalPart<'a>>,
}

/// An `<error>`: kind, headline, own stack, then `auxwhat` lines each with an optional stack.
pub struct ErrorPart<'a> {
    /// memcheck's `<kind>`: `InvalidRead`, `InvalidWrite`, `InvalidFree`, `MismatchedFree`.
    pub kind: &'static str,
    /// The headline (`<what>`): "Invalid read of size 4".
    pub what: String,
    pub stack: &'a [Frame],
    pub aux: Vec<(String, Option<&'a [Frame]>)>,
}

/// "Process terminating with default action of signal N (NAME)".
pub struct FatalPart<'a> {
    pub signal: i32,
    pub signame: String,
    pub si_code: Option<i32>,
    /// " Access not within mapped region at address 0x0" (without the address).
    pub event: Option<&'static str>,
    pub address: Option<u64>,
    pub stack: &'a [Frame],
}

impl<'a> MemcheckError<'a> {
    pub fn of(e: &'a ErrorReport) -> MemcheckError<'a> {
        let error = error_part(e);
        let fatal = match e.kind {
            ErrorKind::FatalSignal | ErrorKind::MisalignedAccess => {
                let signal = e.signal.unwrap_or(11);
                Some(FatalPart {
                    signal,
                    signame: signal_abbrev(signal)
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("signal {signal}")),
                    si_code: e.signal_code,
                    event: signal_event(signal, e.signal_code),
                    address: e.fault_address,
                    stack: &e.stack,
                })
            }
            _ => None,
        };
        MemcheckError { error, fatal }
    }

    /// Occurrences memcheck would count in its ERROR SUMMARY.
    pub fn counted(&self, e: &ErrorReport) -> u64 {
        if self.error.is_some() {
            e.count
        } else {
            0
        }
    }
}

fn error_part(e: &ErrorReport) -> Option<ErrorPart<'_>> {
    let block = e.block.as_ref();
    let block_size = block.map(|b| b.size).unwrap_or(0);
    let block_addr = |b: &crate::report::BlockInfo| b.address.wrapping_add_signed(b.offset);
    let alloc = e.alloc_stack.as_deref();
    let free = e.free_stack.as_deref();
    match e.kind {
        ErrorKind::DoubleFree | ErrorKind::InvalidFree | ErrorKind::MismatchedFree => {
            let (kind, what) = if e.kind == ErrorKind::MismatchedFree {
                ("MismatchedFree", "Mismatched free() / delete / delete []")
            } else {
                (
                    "InvalidFree",
                    "Invalid free() / delete / delete[] / realloc()",
                )
            };
            let mut aux = Vec::new();
            match (block, e.kind) {
                (Some(b), ErrorKind::DoubleFree) => {
                    aux.push((
                        format!(
                            "Address {:#x} is {} bytes inside a block of size {} free'd",
                            block_addr(b),
                            b.offset.max(0),
                            thousands(b.size)
                        ),
                        free,
                    ));
                    aux.push(("Block was alloc'd at".to_string(), alloc));
                }
                (Some(b), _) => aux.push((
                    format!(
                        "Address {:#x} is {} bytes inside a block of size {} alloc'd",
                        block_addr(b),
                        b.offset.max(0),
                        thousands(b.size)
                    ),
                    alloc,
                )),
                (None, _) => aux.push((
                    format!(
                        "Address {} is not stack'd, malloc'd or (recently) free'd",
                        address_in(&e.message).unwrap_or("0x0")
                    ),
                    None,
                )),
            }
            Some(ErrorPart {
                kind,
                what: what.to_string(),
                stack: &e.stack,
                aux,
            })
        }
        ErrorKind::HeapBufferOverflow
        | ErrorKind::HeapBufferUnderflow
        | ErrorKind::UseAfterFree
        | ErrorKind::InvalidAccess
        | ErrorKind::FatalSignal => {
            let access = e.access.as_ref()?;
            let (kind, verb) = match access.op {
                AccessOp::Read => ("InvalidRead", "read"),
                AccessOp::Write => ("InvalidWrite", "write"),
            };
            // An undecoded instruction has no size; 0 keeps the headline parseable.
            let what = format!("Invalid {verb} of size {}", access.size.unwrap_or(0));
            let addr = access.address;
            let mut aux = Vec::new();
            match (e.kind, block) {
                (ErrorKind::UseAfterFree, Some(b)) => {
                    aux.push((
                        format!(
                            "Address {addr:#x} is {} bytes inside a block of size {} free'd",
                            b.offset.max(0),
                            thousands(b.size)
                        ),
                        free,
                    ));
                    aux.push(("Block was alloc'd at".to_string(), alloc));
                }
                (ErrorKind::FatalSignal, _) | (_, None) => aux.push((
                    format!("Address {addr:#x} is not stack'd, malloc'd or (recently) free'd"),
                    None,
                )),
                (_, Some(b)) => {
                    let place = if b.offset < 0 {
                        format!("{} bytes before", b.offset.unsigned_abs())
                    } else if b.offset as u64 >= b.size {
                        format!("{} bytes after", b.offset as u64 - b.size)
                    } else {
                        format!("{} bytes inside", b.offset)
                    };
                    aux.push((
                        format!(
                            "Address {addr:#x} is {place} a block of size {} alloc'd",
                            thousands(block_size)
                        ),
                        alloc,
                    ));
                }
            }
            // A canary found at free has the free's stack as its own; memcheck would have
            // caught the write itself, which fencepost did not see.
            Some(ErrorPart {
                kind,
                what,
                stack: &e.stack,
                aux,
            })
        }
        ErrorKind::MisalignedAccess => None,
    }
}

/// The first `0x…` number in a message ("free() of an address that was never allocated
/// (0x1234 is not in any heap block)").
fn address_in(message: &str) -> Option<&str> {
    let start = message.find("0x")?;
    let rest = &message[start..];
    let end = 2 + rest[2..]
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(rest.len() - 2);
    Some(&rest[..end])
}

/// memcheck's explanation of a fault, by signal and `si_code`.
fn signal_event(signal: i32, code: Option<i32>) -> Option<&'static str> {
    match (signal, code) {
        (11, Some(1)) => Some("Access not within mapped region"),
        (11, Some(2)) => Some("Bad permissions for mapped region"),
        (11, Some(128)) => Some("General Protection Fault"),
        (7, Some(1)) => Some("Invalid address alignment"),
        (7, Some(2)) => Some("Non-existent physical address"),
        (7, Some(3)) => Some("Object specific hardware error"),
        (8, Some(1)) => Some("Integer divide by zero"),
        (4, Some(1)) => Some("Illegal opcode"),
        _ => None,
    }
}

/// memcheck's `<kind>` of a loss record; `None` for `unreleased`, which memcheck has not.
pub fn leak_xml_kind(kind: LeakKind) -> Option<&'static str> {
    Some(match kind {
        LeakKind::Definite => "Leak_DefinitelyLost",
        LeakKind::Indirect => "Leak_IndirectlyLost",
        LeakKind::Possible => "Leak_PossiblyLost",
        LeakKind::Reachable => "Leak_StillReachable",
        LeakKind::Unreleased => return None,
    })
}

/// "are definitely lost", as in "32 bytes in 1 blocks are definitely lost in loss record …".
pub fn leak_phrase(kind: LeakKind) -> &'static str {
    match kind {
        LeakKind::Definite => "are definitely lost",
        LeakKind::Indirect => "are indirectly lost",
        LeakKind::Possible => "are possibly lost",
        LeakKind::Reachable => "are still reachable",
        LeakKind::Unreleased => "were never released (the process died before the leak check)",
    }
}

/// "32 bytes in 1 blocks are definitely lost in loss record 2 of 2" (memcheck writes
/// "blocks" and "bytes" whatever the number).
pub fn loss_record_text(r: &LossRecord, index: usize, total: usize) -> String {
    format!(
        "{} bytes in {} blocks {} in loss record {} of {}",
        thousands(r.bytes),
        thousands(r.blocks),
        leak_phrase(r.kind),
        thousands(index as u64),
        thousands(total as u64)
    )
}

/// One process's loss records in memcheck's order: smallest first (memcheck prints the
/// biggest last, next to the summary); ties keep the report's order.
pub fn loss_records_of(report: &Report, pid: u32) -> Vec<&LossRecord> {
    let mut records: Vec<&LossRecord> = report.leaks.iter().filter(|l| l.pid == pid).collect();
    records.sort_by_key(|r| (r.bytes, r.blocks));
    records
}

/// Findings carry a pid, not an image: a pid that exec'd has several images, and its
/// findings belong to its last one.
pub fn owns_findings(report: &Report, index: usize) -> bool {
    let pid = report.processes[index].pid;
    report.processes.iter().rposition(|p| p.pid == pid) == Some(index)
}

/// `1234567` → `1,234,567`, as memcheck prints counts.
pub fn thousands(n: u64) -> String {
    crate::text::thousands(n)
}

/// memcheck's `<tid>`/thread number: 1 for the main thread; other threads are shown by
/// their Linux tid (fencepost does not number threads).
pub fn thread_number(e: &ErrorReport) -> u32 {
    if e.thread == 0 || e.thread == e.pid {
        1
    } else {
        e.thread
    }
}

/// A frame as memcheck's text prints it after "at"/"by": `0x1091B7: main (file.c:30)`,
/// `0x48417B4: malloc (in /usr/lib/…so)`, `0x4012AB: ???`.
pub fn frame_text(f: &Frame) -> String {
    let func = f.function.as_deref().unwrap_or("???");
    let place = match (&f.file, f.line, &f.module) {
        (Some(file), Some(line), _) => format!(" ({}:{line})", basename(file)),
        (Some(file), None, _) => format!(" ({})", basename(file)),
        (None, _, Some(module)) => format!(" (in {module})"),
        (None, _, None) => String::new(),
    };
    format!("{:#X}: {func}{place}", f.address).replacen("0X", "0x", 1)
}

pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The directory part of a source path, for `<dir>`; `None` for a bare name.
pub fn dirname(path: &str) -> Option<&str> {
    path.rsplit_once('/')
        .map(|(d, _)| if d.is_empty() { "/" } else { d })
}
