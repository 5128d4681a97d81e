//! What the guard heap reports: bad accesses caught by a guard page (FAULT), crashes that are
//! not heap errors (FATAL_SIGNAL) and overwritten canaries (CANARY), turned into errors.
//!
//! The shim only knows the faulting address, read or write, and the block its page belongs
//! to; the access size and, for a general-protection fault, the address itself come from
//! decoding the instruction bytes it sent ([`crate::insn`]).

use super::{plural, Analyzer, ErrorKey, PendingError};
use crate::decode::{CanaryRecord, FatalSignalRecord, FaultRecord};
use crate::insn;
use crate::report::{signal_abbrev, Access, AccessOp, BlockInfo, ErrorKind, FoundAt};
use crate::text::thousands;
use crate::wire::{self, fault};

const SIGILL: i32 = 4;
const SIGTRAP: i32 = 5;
const SIGABRT: i32 = 6;
const SIGBUS: i32 = 7;
const SIGFPE: i32 = 8;
const SIGSEGV: i32 = 11;
/// `si_code` of a SIGSEGV raised by the kernel itself (a general-protection fault).
const SI_KERNEL: i32 = 0x80;

/// The page every null-pointer dereference lands in.
const NULL_PAGE: u64 = 4096;

/// "read of 4 bytes", "write of 1 byte", "read of unknown size".
fn sized(op: AccessOp, size: Option<u64>) -> String {
    match size {
        Some(n) => format!(
            "{} of {} {}",
            op.as_str(),
            thousands(n),
            plural(n, "byte", "bytes")
        ),
        None => format!("{} of unknown size", op.as_str()),
    }
}

/// "a 13-byte block", "an 11-byte block".
fn a_block(size: u64) -> String {
    format!("{} {}-byte block", article(size), thousands(size))
}

/// The article before `n` read aloud: "an" for eight, eleven, eighteen, eighty-..., eight
/// hundred..., and the same in thousands and millions (the group before the first comma).
fn article(n: u64) -> &'static str {
    let mut lead = n;
    while lead >= 1000 {
        lead /= 1000;
    }
    match lead {
        8 | 11 | 18 | 80..=89 | 800..=899 => "an",
        _ => "a",
    }
}

fn bytes(n: u64) -> String {
    format!("{} {}", thousands(n), plural(n, "byte", "bytes"))
}

/// Where an access of `len` bytes at `offset` falls relative to a block of `size` bytes.
fn placement(offset: i64, len: Option<u64>, size: u64, freed: bool) -> String {
    let block = if freed {
        format!("{} freed earlier", a_block(size))
    } else {
        a_block(size)
    };
    if offset < 0 {
        return format!("{} before {block}", bytes(offset.unsigned_abs()));
    }
    let o = offset as u64;
    if o >= size {
        return format!("{} after {block}", bytes(o - size));
    }
    let end = o.saturating_add(len.unwrap_or(1));
    if end > size && !freed {
        format!(
            "at offset {o} of {block}, {} past its end",
            bytes(end - size)
        )
    } else {
        format!("at offset {o} of {block}")
    }
}

/// The natural alignment fencepost gives a block of `size` bytes (DESIGN.md, "Guard pages").
fn natural_alignment(size: u64) -> u64 {
    if size == 0 {
        16
    } else {
        1u64 << size.trailing_zeros().min(4)
    }
}

impl Analyzer {
    pub(super) fn fault(&mut self, f: &FaultRecord) {
        let img = self.image_for(f.pid);
        let shim_op = if f.flags & wire::FAULT_WRITE != 0 {
            AccessOp::Write
        } else {
            AccessOp::Read
        };
        let misaligned = f.kind == fault::MISALIGNED;
        // A #GP has no address: the instruction and the registers say where it went.
        let fault_addr = (!misaligned).then_some(f.addr);
        let decoded = insn::memory_access(&f.insn, f.pc, Some(&f.regs), fault_addr, Some(shim_op));
        let size = decoded.and_then(|d| d.size);
        // The page fault's write bit is the hardware's word; a #GP has none.
        let op = match (misaligned, decoded) {
            (true, Some(d)) => d.op,
            _ => shim_op,
        };
        // An access that straddles into the guard faults at the guard's first byte; the
        // access itself starts at the decoded address.
        let address = match decoded.and_then(|d| d.address) {
            Some(a) if misaligned => a,
            Some(a) if f.addr.wrapping_sub(a) < size.unwrap_or(1).max(1) => a,
            _ => f.addr,
        };

        let kind = match f.kind {
            fault::OVERFLOW => ErrorKind::HeapBufferOverflow,
            fault::UNDERFLOW => ErrorKind::HeapBufferUnderflow,
            fault::USE_AFTER_FREE => ErrorKind::UseAfterFree,
            fault::MISALIGNED => ErrorKind::MisalignedAccess,
            _ => ErrorKind::InvalidAccess,
        };
        let freed = kind == ErrorKind::UseAfterFree;

        // The block, as the shim saw it; else as the analyzer's heap knows it.
        let image = &self.images[img];
        let mut block = None; // (start, size, alloc stack, alloc func)
        if f.block_addr != 0 || f.block_size != 0 {
            let known = image
                .live
                .get(f.block_addr)
                .map(|b| (b.stack, b.func))
                .or_else(|| {
                    self.freed
                        .get(img, f.block_addr)
                        .map(|b| (b.alloc_stack, b.alloc_func))
                });
            let alloc_stack = match (f.alloc_stack, known) {
                (0, Some((s, _))) => s,
                (s, _) => s,
            };
            let alloc_func = match (f.alloc_func, known) {
                (0, Some((_, func))) => func,
                (func, _) => func,
            };
            block = Some((f.block_addr, f.block_size, alloc_stack, alloc_func));
        } else if misaligned {
            block = image
                .live_containing(address)
                .map(|(s, b)| (s, b.size, b.stack, b.func));
        } else if let Some((start, b)) = image.live_at_or_below(address) {
            // A wild access in a guard page: name the block it lies just past, if any.
            let end = start.saturating_add(b.size);
            if address >= end && address - end < NULL_PAGE {
                block = Some((start, b.size, b.stack, b.func));
            }
        }

        let offset = block.map(|(start, ..)| address.wrapping_sub(start) as i64);
        let what = sized(op, size);
        let mut advice = None;
        let message = match (kind, block, offset) {
            (ErrorKind::MisalignedAccess, Some((_, bsize, ..)), Some(o)) => {
                let needs = size
                    .filter(|n| n.is_power_of_two() && *n >= 16)
                    .unwrap_or(16);
                advice = Some(format!(
                    "fencepost aligns {} to {} bytes, its natural alignment, where glibc \
                     aligns every block to 16: rerun with --alignment={needs}",
                    a_block(bsize),
                    natural_alignment(bsize)
                ));
                format!(
                    "{what} {}: address {address:#x} is not {needs}-byte aligned",
                    placement(o, size, bsize, false)
                )
            }
            (ErrorKind::MisalignedAccess, ..) => {
                advice = Some("rerun with --alignment=16".to_string());
                format!("{what} at a misaligned address, in the heap (general-protection fault)")
            }
            (ErrorKind::InvalidAccess, Some((_, bsize, ..)), Some(o)) => format!(
                "{what} at address {address:#x}, in no heap block: {}",
                placement(o, size, bsize, false)
            ),
            (ErrorKind::InvalidAccess, ..) => {
                format!("{what} at address {address:#x}, in no heap block (a fencepost guard page)")
            }
            (_, Some((_, bsize, ..)), Some(o)) => {
                let inside = o >= 0 && (o as u64) < bsize;
                let sep = if inside { " " } else { ", " };
                format!("{what}{sep}{}", placement(o, size, bsize, freed))
            }
            _ => format!("{what} at address {address:#x}"),
        };

        let free_stack = (freed && f.free_stack != 0).then_some(f.free_stack);
        let pending = PendingError {
            kind,
            image: img,
            tid: f.tid,
            count: 0,
            call: None,
            stack: Some(f.stack),
            stack_starts_at_pc: true,
            alloc_stack: block.map(|(_, _, s, _)| s),
            free_stack,
            block: block.map(|(start, bsize, _, func)| BlockInfo {
                address: start,
                size: bsize,
                offset: offset.unwrap_or(0),
                allocated_by: (func != 0).then(|| wire::func::name(func).to_string()),
                freed_by: (freed && f.free_func != 0)
                    .then(|| wire::func::name(f.free_func).to_string()),
            }),
            access: Some(Access { op, size, address }),
            signal: None,
            signal_code: None,
            fault_address: fault_addr,
            found_at: None,
            advice,
            message,
        };
        self.record_error(
            ErrorKey {
                image: img,
                kind: Some(kind),
                stack: f.stack,
                variant: op as i64,
                ..ErrorKey::default()
            },
            || pending,
        );
    }

    pub(super) fn fatal_signal(&mut self, s: &FatalSignalRecord) {
        let img = self.image_for(s.pid);
        let memory = matches!(s.signo, SIGSEGV | SIGBUS);
        // A jump to a bad address faults on the fetch: the pc is the address, there is no
        // instruction to decode.
        let jumped = memory && s.addr == s.pc && s.code != SI_KERNEL;
        let decoded = if memory && !jumped {
            let fault_addr = (s.code != SI_KERNEL).then_some(s.addr);
            insn::memory_access(&s.insn, s.pc, Some(&s.regs), fault_addr, None)
        } else {
            None
        };
        // A #GP (SI_KERNEL) reports address 0: the registers say where it went.
        let address = match (s.code, decoded.and_then(|d| d.address)) {
            (SI_KERNEL, Some(a)) => a,
            (_, Some(a))
                if s.addr.wrapping_sub(a) < decoded.and_then(|d| d.size).unwrap_or(1).max(1) =>
            {
                a
            }
            _ => s.addr,
        };
        let access = decoded.map(|d| Access {
            op: d.op,
            size: d.size,
            address,
        });
        let name = match signal_abbrev(s.signo) {
            Some(n) => format!("{n} (signal {})", s.signo),
            None => format!("signal {}", s.signo),
        };
        let invalid = match &access {
            Some(a) => format!("invalid {} at address {:#x}", sized(a.op, a.size), s.addr),
            None => format!("invalid memory access at address {:#x}", s.addr),
        };
        // A #GP on an aligned vector access to a heap block: the program relies on glibc's
        // 16-byte alignment. Fatal all the same, but say why and what to do.
        let misaligned_block = match (&access, s.code) {
            (Some(a), SI_KERNEL) if s.signo == SIGSEGV => {
                let needs = a.size.filter(|n| n.is_power_of_two() && *n >= 16);
                needs.filter(|n| a.address % n != 0).and_then(|n| {
                    let image = &self.images[img];
                    image
                        .live_containing(a.address)
                        .map(|(start, b)| (n, start, b))
                })
            }
            _ => None,
        };
        let mut advice = None;
        let mut block = None;
        let mut alloc_stack = None;
        if let Some((needs, start, b)) = misaligned_block {
            advice = Some(format!(
                "fencepost aligns {} to {} bytes, its natural alignment, where glibc aligns \
                 every block to 16: rerun with --alignment={needs}",
                a_block(b.size),
                natural_alignment(b.size)
            ));
            block = Some(BlockInfo {
                address: start,
                size: b.size,
                offset: address.wrapping_sub(start) as i64,
                allocated_by: Some(wire::func::name(b.func).to_string()),
                freed_by: None,
            });
            alloc_stack = Some(b.stack);
        }
        let detail = if let Some((needs, start, b)) = misaligned_block {
            let a = access.as_ref();
            format!(
                "{} {}: address {address:#x} is not {needs}-byte aligned (general-protection fault)",
                sized(a.map_or(AccessOp::Read, |a| a.op), a.and_then(|a| a.size)),
                placement(address.wrapping_sub(start) as i64, a.and_then(|a| a.size), b.size, false)
            )
        } else {
            self.signal_detail(s, jumped, access.as_ref(), &invalid)
        };
        // A #GP on a heap block that fencepost aligned less than glibc would is the tool's
        // doing as much as the program's: its own kind, so that it is not mistaken for a crash
        // of the program's making.
        let kind = if misaligned_block.is_some() {
            ErrorKind::MisalignedAccess
        } else {
            ErrorKind::FatalSignal
        };
        let pending = PendingError {
            kind,
            image: img,
            tid: s.tid,
            count: 0,
            call: None,
            stack: Some(s.stack),
            stack_starts_at_pc: true,
            alloc_stack,
            free_stack: None,
            block,
            access,
            signal: Some(s.signo),
            signal_code: Some(s.code),
            // A #GP reports no address.
            fault_address: (memory && s.code != SI_KERNEL).then_some(s.addr),
            found_at: None,
            advice,
            message: format!("{name}: {detail}"),
        };
        self.record_error(
            ErrorKey {
                image: img,
                kind: Some(kind),
                stack: s.stack,
                variant: i64::from(s.signo),
                ..ErrorKey::default()
            },
            || pending,
        );
    }

    /// What a fatal signal means, in words, from its number and `si_code`.
    fn signal_detail(
        &self,
        s: &FatalSignalRecord,
        jumped: bool,
        access: Option<&Access>,
        invalid: &str,
    ) -> String {
        let invalid = invalid.to_string();
        let rsp = s.regs[4];
        match s.signo {
            SIGSEGV if s.code == SI_KERNEL => match &access {
                Some(a) => format!(
                    "invalid {} at address {:#x}, a non-canonical address (a corrupted pointer?)",
                    sized(a.op, a.size),
                    a.address
                ),
                None => "general-protection fault (a corrupted pointer, or a privileged instruction)"
                    .to_string(),
            },
            SIGSEGV if jumped => format!(
                "jump to address {:#x}{}, where there is no code",
                s.addr,
                if s.addr < NULL_PAGE { " (a null function pointer)" } else { "" }
            ),
            SIGSEGV if s.addr == 0 => format!("{invalid} (a null pointer)"),
            SIGSEGV if s.addr < NULL_PAGE => {
                format!("{invalid} ({} past a null pointer)", bytes(s.addr))
            }
            SIGSEGV if s.code == 1 && s.addr < rsp && rsp - s.addr < 1 << 16 => {
                format!("{invalid}, just below the stack pointer: a stack overflow")
            }
            SIGSEGV if s.code == 1 => format!("{invalid}, which is not mapped"),
            SIGSEGV if s.code == 2 => {
                let may = access.as_ref().map_or("access", |a| a.op.as_str());
                format!("{invalid}, which the program may not {may}")
            }
            SIGSEGV => invalid,
            SIGBUS => match s.code {
                1 => format!("{invalid}: the address is misaligned"),
                2 => format!(
                    "{invalid}: no memory backs it (past the end of a mapped file?)"
                ),
                3 => format!("{invalid}: hardware error"),
                _ => invalid,
            },
            SIGFPE => match s.code {
                1 => "integer divide by zero",
                2 => "integer overflow",
                3 => "floating-point divide by zero",
                4 => "floating-point overflow",
                5 => "floating-point underflow",
                6 => "floating-point inexact result",
                7 => "invalid floating-point operation",
                8 => "subscript out of range",
                _ => "arithmetic error",
            }
            .to_string(),
            SIGILL if s.insn.starts_with(&[0x0f, 0x0b]) => {
                "illegal instruction: ud2, a trap the compiler placed (__builtin_trap, unreachable code, a Rust panic with panic=abort)".to_string()
            }
            SIGILL => match s.code {
                5 | 6 => "privileged instruction".to_string(),
                _ => "illegal instruction".to_string(),
            },
            SIGABRT => "the program called abort()".to_string(),
            SIGTRAP => "breakpoint or trace trap".to_string(),
            _ => "the process was killed by this signal".to_string(),
        }
    }

    pub(super) fn canary(&mut self, c: &CanaryRecord) {
        let img = self.image_for(c.pid);
        let mut c = *c;
        if c.block_size == 0 && c.alloc_stack == 0 {
            // The shim's copy of the block's size and stack was in the overwritten bytes.
            if let Some(b) = self.images[img].live.get(c.block_addr) {
                c.block_size = b.size;
                c.alloc_stack = b.stack;
                c.alloc_func = b.func;
            }
        }
        let (kind, side) = if c.bad_offset < 0 {
            (ErrorKind::HeapBufferUnderflow, "before")
        } else {
            (ErrorKind::HeapBufferOverflow, "after")
        };
        let found_at = if c.stack == 0 {
            FoundAt::Exit
        } else {
            FoundAt::Free
        };
        let len = u64::from(c.bad_len);
        // How far the overwritten bytes start from the block's edge on their side.
        let gap = if c.bad_offset < 0 {
            c.bad_offset.unsigned_abs().saturating_sub(len)
        } else {
            (c.bad_offset as u64).saturating_sub(c.block_size)
        };
        let were = if len == 1 { "was" } else { "were" };
        let which = if gap == 0 {
            format!("the {} {side}", bytes(len))
        } else {
            format!("{}, {} {side}", bytes(len), bytes(gap))
        };
        let when = match found_at {
            FoundAt::Free => "found when the block was freed",
            FoundAt::Exit => "found at exit",
        };
        let message = format!(
            "{which} {} {were} overwritten ({when})",
            a_block(c.block_size)
        );
        let pending = PendingError {
            kind,
            image: img,
            tid: c.tid,
            count: 0,
            call: None,
            stack: (c.stack != 0).then_some(c.stack),
            stack_starts_at_pc: false,
            alloc_stack: Some(c.alloc_stack),
            // Found at free: where it was found is where the block was freed.
            free_stack: (c.stack != 0).then_some(c.stack),
            block: Some(BlockInfo {
                address: c.block_addr,
                size: c.block_size,
                offset: c.bad_offset,
                allocated_by: (c.alloc_func != 0)
                    .then(|| wire::func::name(c.alloc_func).to_string()),
                freed_by: None,
            }),
            access: Some(Access {
                op: AccessOp::Write,
                size: Some(len),
                address: c.block_addr.wrapping_add(c.bad_offset as u64),
            }),
            signal: None,
            signal_code: None,
            fault_address: None,
            found_at: Some(found_at),
            advice: None,
            message,
        };
        self.record_error(
            ErrorKey {
                image: img,
                kind: Some(kind),
                stack: c.stack,
                alloc_stack: c.alloc_stack,
                variant: found_at as i64,
                ..ErrorKey::default()
            },
            || pending,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::a_block;

    #[test]
    fn the_article_follows_how_the_size_is_read() {
        for (size, phrase) in [
            (13, "a 13-byte block"),
            (8, "an 8-byte block"),
            (11, "an 11-byte block"),
            (18, "an 18-byte block"),
            (83, "an 83-byte block"),
            (110, "a 110-byte block"),
            (800, "an 800-byte block"),
            (1_100, "a 1,100-byte block"),
            (8_192, "an 8,192-byte block"),
            (11_000, "an 11,000-byte block"),
            (180_000, "a 180,000-byte block"),
            (18_000_000, "an 18,000,000-byte block"),
        ] {
            assert_eq!(a_block(size), phrase);
        }
    }
}
