//! Decoding (and encoding) of wire records into typed [`Event`]s.
//!
//! The bytes come from memory shared with a possibly buggy program, or from a file that may be
//! truncated or not a trace at all, so every read is bounds-checked and every failure is a
//! [`DecodeError`] naming the byte offset: a corrupt trace is one clear line, never a panic.
//! The encoder lives here too so that the layouts are written next to the code that reads
//! them; `fencepost record` and the tests use it through [`TraceWriter`].

use std::io::{self, Write};

use thiserror::Error;

use crate::wire::{self, kind};

/// The guard heap's records are plain data defined (with their writers) in [`wire`], shared
/// with the shim; the analyzer decodes into the same types.
pub use crate::wire::{CanaryRecord, FatalSignalRecord, FaultRecord, HeapStatsRecord};

/// Why a record or a trace could not be read. Offsets are byte offsets in the trace file
/// (or the ring position the caller passed in).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("not a fencepost trace (the file does not start with the trace magic)")]
    NotATrace,
    #[error("trace version {found}, this fencepost reads version {expected}")]
    Version { found: u32, expected: u32 },
    #[error("truncated record at offset {offset}")]
    Truncated { offset: u64 },
    #[error("corrupt trace at offset {offset}: {reason}")]
    Corrupt { offset: u64, reason: String },
}

impl DecodeError {
    fn corrupt(offset: u64, reason: impl Into<String>) -> Self {
        DecodeError::Corrupt {
            offset,
            reason: reason.into(),
        }
    }

    /// The byte offset the error is about, when it is about one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            DecodeError::Truncated { offset } | DecodeError::Corrupt { offset, .. } => {
                Some(*offset)
            }
            _ => None,
        }
    }
}

/// A process (image) began: the main process, a forked child, or a new image after exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessStart {
    pub pid: u32,
    pub ppid: u32,
    /// [`wire::start_flags`] bits.
    pub flags: u32,
    /// For a forked child, the token of the parent's [`ForkPrepare`].
    pub token: u64,
    pub time: u64,
    pub exe: String,
}

/// A process exited normally (`exit`, return from main, `_exit`); its leaks were classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessExit {
    pub pid: u32,
    /// [`wire::exit_how`].
    pub how: u32,
    pub code: i32,
    pub time: u64,
}

/// One `PT_LOAD` segment of a module: `vaddr` is the ELF address, add the bias for the
/// address in the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    /// `PF_X | PF_W | PF_R` bits.
    pub flags: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleLoad {
    pub pid: u32,
    pub bias: u64,
    pub segments: Vec<Segment>,
    pub build_id: Vec<u8>,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleUnload {
    pub pid: u32,
    pub bias: u64,
}

/// The image is about to be replaced by exec (`failed == false`), or the exec failed and
/// the image goes on (`failed == true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    pub pid: u32,
    pub failed: bool,
}

/// A deduplicated stack: later events refer to it by `id` (unique within one process image).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackDef {
    pub pid: u32,
    pub id: u32,
    /// Return addresses, innermost first.
    pub frames: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alloc {
    pub pid: u32,
    pub tid: u32,
    pub addr: u64,
    pub size: u64,
    pub stack: u32,
    /// [`wire::func`].
    pub func: u8,
    /// [`wire::family`].
    pub family: u8,
    pub flags: u16,
    pub time: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Free {
    pub pid: u32,
    pub tid: u32,
    pub addr: u64,
    pub stack: u32,
    pub func: u8,
    pub block_family: u8,
    /// [`wire::FREE_MISMATCHED`].
    pub flags: u16,
    pub time: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Realloc {
    pub pid: u32,
    pub tid: u32,
    /// 0 for `realloc(NULL, n)`.
    pub old: u64,
    /// 0 when the realloc failed or freed (`realloc(p, 0)`).
    pub new: u64,
    pub size: u64,
    pub stack: u32,
    pub func: u8,
    pub flags: u16,
    pub time: u64,
}

/// A release of a pointer the shim does not own; the shim did not pass it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFree {
    pub pid: u32,
    pub tid: u32,
    pub addr: u64,
    pub stack: u32,
    pub func: u8,
    pub time: u64,
}

/// One block still live at exit, with the class the shim's pointer scan gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeakEntry {
    pub addr: u64,
    pub size: u64,
    pub stack: u32,
    /// [`wire::leak`].
    pub class: u8,
    pub family: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakBlocks {
    pub pid: u32,
    pub entries: Vec<LeakEntry>,
}

/// Written by a process just before it forks; the child's `ProcessStart` names the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkPrepare {
    pub pid: u32,
    pub token: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub pid: u32,
    /// [`wire::notice`].
    pub code: u32,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadStart {
    pub pid: u32,
    pub tid: u32,
    pub time: u64,
}

/// How the main process ended, as the CLI saw it (`waitpid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainExit {
    pub pid: u32,
    /// 0: exited with `value`; 1: killed by signal `value`.
    pub how: u32,
    pub value: i32,
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    ProcessStart(ProcessStart),
    ProcessExit(ProcessExit),
    ModuleLoad(ModuleLoad),
    ModuleUnload(ModuleUnload),
    Exec(Exec),
    StackDef(StackDef),
    Alloc(Alloc),
    Free(Free),
    Realloc(Realloc),
    BadFree(BadFree),
    LeakBlocks(LeakBlocks),
    ForkPrepare(ForkPrepare),
    Notice(Notice),
    ThreadStart(ThreadStart),
    /// The traced command line (CLI).
    Command {
        argv: Vec<String>,
    },
    MainExit(MainExit),
    /// A bad access caught by a guard page.
    Fault(FaultRecord),
    /// A crash that is not a heap error.
    FatalSignal(FatalSignalRecord),
    /// Overwritten slack bytes around a block, found at free or exit.
    Canary(CanaryRecord),
    /// The guard heap's end-of-run statistics.
    HeapStats(HeapStatsRecord),
}

/// A bounds-checked little-endian cursor over one record's payload.
struct Payload<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Offset of the record in the trace, for error messages.
    record_offset: u64,
    kind: u16,
}

impl<'a> Payload<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.too_short(n)),
        }
    }
    #[cold]
    #[inline(never)]
    fn too_short(&self, n: usize) -> DecodeError {
        DecodeError::corrupt(
            self.record_offset,
            format!(
                "record of kind {} is too short ({} payload bytes, field at {} needs {})",
                self.kind,
                self.bytes.len(),
                self.pos,
                n
            ),
        )
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    fn regs(&mut self) -> Result<[u64; 17], DecodeError> {
        let mut regs = [0u64; 17];
        for r in &mut regs {
            *r = self.u64()?;
        }
        Ok(regs)
    }
    /// Payload bytes not read yet.
    fn rest_len(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }
    fn rest(&mut self) -> &'a [u8] {
        let s = &self.bytes[self.pos.min(self.bytes.len())..];
        self.pos = self.bytes.len();
        s
    }
    /// `count` items of `item_len` bytes must fit in what is left.
    fn check_count(&self, count: usize, item_len: usize, what: &str) -> Result<(), DecodeError> {
        let left = self.bytes.len().saturating_sub(self.pos);
        match count.checked_mul(item_len) {
            Some(n) if n <= left => Ok(()),
            _ => Err(DecodeError::corrupt(
                self.record_offset,
                format!("{count} {what} do not fit in a record with {left} bytes left"),
            )),
        }
    }
}

/// Text fields run to the end of the payload, NUL padding trimmed; invalid UTF-8 is replaced
/// rather than rejected (a path is still worth showing).
fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Decodes the record at the start of `bytes`. `offset` is where those bytes sit in the
/// trace, only used in errors. Returns the event and the record's length.
///
/// `bytes` may extend past the record; if it ends before the record does, the result is
/// [`DecodeError::Truncated`].
pub fn decode_record(bytes: &[u8], offset: u64) -> Result<(Event, usize), DecodeError> {
    let (record_kind, record) = record_at(bytes, offset)?;
    let event = decode_payload(record_kind, &record[wire::RECORD_HEADER_LEN..], offset)?;
    Ok((event, record.len()))
}

/// The record at the start of `bytes`, its header checked: its kind and its whole bytes
/// (header included). The payload is not looked at; see [`decode_payload`].
#[inline]
pub fn record_at(bytes: &[u8], offset: u64) -> Result<(u16, &[u8]), DecodeError> {
    let Some(header) = bytes.first_chunk::<{ wire::RECORD_HEADER_LEN }>() else {
        return Err(DecodeError::Truncated { offset });
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let record_kind = u16::from_le_bytes([header[4], header[5]]);
    if !len.is_multiple_of(8) || !(wire::RECORD_HEADER_LEN..=wire::MAX_RECORD_LEN).contains(&len) {
        return Err(bad_length(len, offset));
    }
    match bytes.get(..len) {
        Some(record) => Ok((record_kind, record)),
        None => Err(DecodeError::Truncated { offset }),
    }
}

#[cold]
#[inline(never)]
fn bad_length(len: usize, offset: u64) -> DecodeError {
    let reason = if !len.is_multiple_of(8) {
        format!("record length {len} is not a multiple of 8")
    } else if len < wire::RECORD_HEADER_LEN {
        format!("record length {len} is shorter than the record header")
    } else {
        format!(
            "record length {len} exceeds the maximum of {}",
            wire::MAX_RECORD_LEN
        )
    };
    DecodeError::corrupt(offset, reason)
}

/// The fixed-size payloads of the hot records (ALLOC, FREE, REALLOC: nearly every record of
/// a trace) are read with one bounds check, into plain values: no [`Payload`] cursor, no
/// `Result` per field. `N` is the layout's length in [`wire`].
#[inline(always)]
fn fixed<const N: usize>(
    payload: &[u8],
    record_kind: u16,
    offset: u64,
) -> Result<&[u8; N], DecodeError> {
    match payload.first_chunk::<N>() {
        Some(fields) => Ok(fields),
        None => Err(fixed_too_short(record_kind, payload.len(), N, offset)),
    }
}

#[cold]
#[inline(never)]
fn fixed_too_short(record_kind: u16, have: usize, need: usize, offset: u64) -> DecodeError {
    DecodeError::corrupt(
        offset,
        format!("record of kind {record_kind} is too short ({have} payload bytes, needs {need})"),
    )
}

/// Little-endian fields at constant offsets of a checked fixed-size payload (after
/// inlining, the slicing has no run-time check left).
#[inline(always)]
fn le_u64<const N: usize>(b: &[u8; N], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
#[inline(always)]
fn le_u32<const N: usize>(b: &[u8; N], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
#[inline(always)]
fn le_u16<const N: usize>(b: &[u8; N], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}

impl Alloc {
    /// Decodes an ALLOC payload ([`wire::ALLOC_LEN`] bytes; more are ignored). `offset` is
    /// the record's, for the error.
    #[inline]
    pub fn decode(payload: &[u8], offset: u64) -> Result<Alloc, DecodeError> {
        let b = fixed::<{ wire::ALLOC_LEN }>(payload, kind::ALLOC, offset)?;
        Ok(Alloc {
            pid: le_u32(b, 0),
            tid: le_u32(b, 4),
            addr: le_u64(b, 8),
            size: le_u64(b, 16),
            stack: le_u32(b, 24),
            func: b[28],
            family: b[29],
            flags: le_u16(b, 30),
            time: le_u64(b, 32),
        })
    }
}

impl Free {
    /// Decodes a FREE payload ([`wire::FREE_LEN`] bytes).
    #[inline]
    pub fn decode(payload: &[u8], offset: u64) -> Result<Free, DecodeError> {
        let b = fixed::<{ wire::FREE_LEN }>(payload, kind::FREE, offset)?;
        Ok(Free {
            pid: le_u32(b, 0),
            tid: le_u32(b, 4),
            addr: le_u64(b, 8),
            stack: le_u32(b, 16),
            func: b[20],
            block_family: b[21],
            flags: le_u16(b, 22),
            time: le_u64(b, 24),
        })
    }
}

impl Realloc {
    /// Decodes a REALLOC payload ([`wire::REALLOC_LEN`] bytes).
    #[inline]
    pub fn decode(payload: &[u8], offset: u64) -> Result<Realloc, DecodeError> {
        let b = fixed::<{ wire::REALLOC_LEN }>(payload, kind::REALLOC, offset)?;
        Ok(Realloc {
            pid: le_u32(b, 0),
            tid: le_u32(b, 4),
            old: le_u64(b, 8),
            new: le_u64(b, 16),
            size: le_u64(b, 24),
            stack: le_u32(b, 32),
            func: b[36],
            // b[37]: reserved
            flags: le_u16(b, 38),
            time: le_u64(b, 40),
        })
    }
}

/// A STACK_DEF record read in place: its frames stay in the record's bytes, so the analyzer
/// stores them without a `Vec` per stack (a recursive program defines millions of stacks).
pub struct StackDefRef<'a> {
    pub pid: u32,
    pub id: u32,
    /// `nframes` × pc u64, checked to fit.
    frames: &'a [u8],
}

impl<'a> StackDefRef<'a> {
    /// Decodes a STACK_DEF payload; `offset` is the record's, for the error.
    pub fn decode(payload: &'a [u8], offset: u64) -> Result<Self, DecodeError> {
        StackDefRef::read(&mut Payload {
            bytes: payload,
            pos: 0,
            record_offset: offset,
            kind: kind::STACK_DEF,
        })
    }

    fn read(p: &mut Payload<'a>) -> Result<Self, DecodeError> {
        let pid = p.u32()?;
        let id = p.u32()?;
        let nframes = p.u32()? as usize;
        let _reserved = p.u32()?;
        p.check_count(nframes, 8, "frames")?;
        Ok(StackDefRef {
            pid,
            id,
            frames: p.take(nframes * 8)?,
        })
    }

    /// Return addresses, innermost first.
    pub fn frames(&self) -> impl ExactSizeIterator<Item = u64> + 'a {
        self.frames
            .chunks_exact(8)
            .map(|pc| u64::from_le_bytes(pc.try_into().unwrap()))
    }
}

/// Decodes the payload of a record of kind `record_kind` whose header [`record_at`] checked.
/// `offset` is the record's, for errors.
pub fn decode_payload(record_kind: u16, payload: &[u8], offset: u64) -> Result<Event, DecodeError> {
    match record_kind {
        kind::ALLOC => return Alloc::decode(payload, offset).map(Event::Alloc),
        kind::FREE => return Free::decode(payload, offset).map(Event::Free),
        kind::REALLOC => return Realloc::decode(payload, offset).map(Event::Realloc),
        _ => {}
    }
    let mut p = Payload {
        bytes: payload,
        pos: 0,
        record_offset: offset,
        kind: record_kind,
    };
    decode_other(record_kind, &mut p)
}

/// Every record but the hot three, field by field.
fn decode_other(record_kind: u16, p: &mut Payload) -> Result<Event, DecodeError> {
    Ok(match record_kind {
        kind::PROCESS_START => {
            let pid = p.u32()?;
            let ppid = p.u32()?;
            let flags = p.u32()?;
            let _reserved = p.u32()?;
            let token = p.u64()?;
            let time = p.u64()?;
            Event::ProcessStart(ProcessStart {
                pid,
                ppid,
                flags,
                token,
                time,
                exe: text(p.rest()),
            })
        }
        kind::PROCESS_EXIT => {
            let pid = p.u32()?;
            let how = p.u32()?;
            let code = p.i32()?;
            let _reserved = p.u32()?;
            let time = p.u64()?;
            Event::ProcessExit(ProcessExit {
                pid,
                how,
                code,
                time,
            })
        }
        kind::MODULE_LOAD => {
            let pid = p.u32()?;
            let nsegs = p.u16()? as usize;
            let build_id_len = p.u16()? as usize;
            let bias = p.u64()?;
            p.check_count(nsegs, wire::MODULE_SEGMENT_LEN, "segments")?;
            let mut segments = Vec::with_capacity(nsegs);
            for _ in 0..nsegs {
                segments.push(Segment {
                    vaddr: p.u64()?,
                    memsz: p.u64()?,
                    flags: p.u64()?,
                });
            }
            let build_id = p.take(build_id_len)?.to_vec();
            Event::ModuleLoad(ModuleLoad {
                pid,
                bias,
                segments,
                build_id,
                path: text(p.rest()),
            })
        }
        kind::MODULE_UNLOAD => {
            let pid = p.u32()?;
            let _reserved = p.u32()?;
            let bias = p.u64()?;
            Event::ModuleUnload(ModuleUnload { pid, bias })
        }
        kind::EXEC => {
            let pid = p.u32()?;
            let flags = p.u32()?;
            Event::Exec(Exec {
                pid,
                failed: flags & 1 != 0,
            })
        }
        kind::STACK_DEF => {
            let s = StackDefRef::read(p)?;
            Event::StackDef(StackDef {
                pid: s.pid,
                id: s.id,
                frames: s.frames().collect(),
            })
        }
        kind::BAD_FREE => {
            let pid = p.u32()?;
            let tid = p.u32()?;
            let addr = p.u64()?;
            let stack = p.u32()?;
            let func = p.u8()?;
            let _reserved = (p.u8()?, p.u16()?);
            let time = p.u64()?;
            Event::BadFree(BadFree {
                pid,
                tid,
                addr,
                stack,
                func,
                time,
            })
        }
        kind::LEAK_BLOCKS => {
            let pid = p.u32()?;
            let count = p.u32()? as usize;
            p.check_count(count, wire::LEAK_ENTRY_LEN, "leak entries")?;
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                let addr = p.u64()?;
                let size = p.u64()?;
                let stack = p.u32()?;
                let class = p.u8()?;
                let family = p.u8()?;
                let _reserved = p.u16()?;
                entries.push(LeakEntry {
                    addr,
                    size,
                    stack,
                    class,
                    family,
                });
            }
            Event::LeakBlocks(LeakBlocks { pid, entries })
        }
        kind::FORK_PREPARE => {
            let pid = p.u32()?;
            let _reserved = p.u32()?;
            let token = p.u64()?;
            Event::ForkPrepare(ForkPrepare { pid, token })
        }
        kind::NOTICE => {
            let pid = p.u32()?;
            let code = p.u32()?;
            Event::Notice(Notice {
                pid,
                code,
                text: text(p.rest()),
            })
        }
        kind::THREAD_START => Event::ThreadStart(ThreadStart {
            pid: p.u32()?,
            tid: p.u32()?,
            time: p.u64()?,
        }),
        kind::COMMAND => {
            let all = p.rest();
            let end = all.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            let argv = if end == 0 {
                Vec::new()
            } else {
                all[..end]
                    .split(|&b| b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            };
            Event::Command { argv }
        }
        kind::MAIN_EXIT => {
            let pid = p.u32()?;
            let how = p.u32()?;
            let value = p.i32()?;
            let _reserved = p.u32()?;
            Event::MainExit(MainExit { pid, how, value })
        }
        kind::FAULT => {
            let pid = p.u32()?;
            let tid = p.u32()?;
            let addr = p.u64()?;
            let pc = p.u64()?;
            let block_addr = p.u64()?;
            let block_size = p.u64()?;
            let stack = p.u32()?;
            let alloc_stack = p.u32()?;
            let free_stack = p.u32()?;
            let flags = p.u32()?;
            let fault_kind = p.u8()?;
            let alloc_func = p.u8()?;
            let free_func = p.u8()?;
            let _reserved = (p.u8()?, p.u32()?);
            let time = p.u64()?;
            let insn = p.array()?;
            let regs = p.regs()?;
            Event::Fault(FaultRecord {
                pid,
                tid,
                addr,
                pc,
                block_addr,
                block_size,
                stack,
                alloc_stack,
                free_stack,
                flags,
                kind: fault_kind,
                alloc_func,
                free_func,
                time,
                insn,
                regs,
            })
        }
        kind::FATAL_SIGNAL => {
            let pid = p.u32()?;
            let tid = p.u32()?;
            let signo = p.i32()?;
            let code = p.i32()?;
            let addr = p.u64()?;
            let pc = p.u64()?;
            let stack = p.u32()?;
            let _reserved = p.u32()?;
            let time = p.u64()?;
            let insn = p.array()?;
            let regs = p.regs()?;
            Event::FatalSignal(FatalSignalRecord {
                pid,
                tid,
                signo,
                code,
                addr,
                pc,
                stack,
                time,
                insn,
                regs,
            })
        }
        kind::CANARY => {
            let pid = p.u32()?;
            let tid = p.u32()?;
            let block_addr = p.u64()?;
            let block_size = p.u64()?;
            let alloc_stack = p.u32()?;
            let stack = p.u32()?;
            let bad_offset = p.i64()?;
            let bad_len = p.u32()?;
            let alloc_func = p.u8()?;
            let _reserved = (p.u8()?, p.u16()?);
            let time = p.u64()?;
            Event::Canary(CanaryRecord {
                pid,
                tid,
                block_addr,
                block_size,
                alloc_stack,
                stack,
                bad_offset,
                bad_len,
                alloc_func,
                time,
            })
        }
        kind::HEAP_STATS => {
            let pid = p.u32()?;
            let _reserved = p.u32()?;
            let guarded = p.u64()?;
            let unguarded = p.u64()?;
            let quarantine_bytes_max = p.u64()?;
            let guard_budget_bytes = p.u64()?;
            // Sampled mode's settings, in records since it came.
            let (sample_first, sample_rate) = if p.rest_len() > 0 {
                (p.u32()?, p.u32()?)
            } else {
                (0, 0)
            };
            Event::HeapStats(HeapStatsRecord {
                pid,
                guarded,
                unguarded,
                quarantine_bytes_max,
                guard_budget_bytes,
                sample_first,
                sample_rate,
            })
        }
        other => {
            return Err(DecodeError::corrupt(
                p.record_offset,
                format!("unknown record kind {other}"),
            ))
        }
    })
}

/// Checks the trace file header and returns the records that follow it.
pub fn trace_body(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    if bytes.len() < wire::TRACE_MAGIC.len()
        || bytes[..wire::TRACE_MAGIC.len()] != wire::TRACE_MAGIC
    {
        return Err(DecodeError::NotATrace);
    }
    let Some(header) = bytes.get(..wire::TRACE_HEADER_LEN) else {
        return Err(DecodeError::Truncated { offset: 0 });
    };
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != wire::VERSION {
        return Err(DecodeError::Version {
            found: version,
            expected: wire::VERSION,
        });
    }
    Ok(&bytes[wire::TRACE_HEADER_LEN..])
}

/// Iterates over the records of a trace file, decoding one at a time so that a long trace
/// is never held as a `Vec<Event>`. Stops after the first error.
pub struct TraceRecords<'a> {
    body: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> TraceRecords<'a> {
    /// Checks the header (magic, version) of a whole trace file.
    pub fn new(trace: &'a [u8]) -> Result<Self, DecodeError> {
        Ok(TraceRecords {
            body: trace_body(trace)?,
            pos: 0,
            failed: false,
        })
    }
}

impl Iterator for TraceRecords<'_> {
    type Item = Result<Event, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.body.len() {
            return None;
        }
        let offset = (wire::TRACE_HEADER_LEN + self.pos) as u64;
        match decode_record(&self.body[self.pos..], offset) {
            Ok((event, len)) => {
                self.pos += len;
                Some(Ok(event))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Decodes a whole trace file (header and records).
pub fn read_trace(trace: &[u8]) -> Result<Vec<Event>, DecodeError> {
    TraceRecords::new(trace)?.collect()
}

/// Little-endian payload builder for [`Event::encode`].
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    /// Appends what a [`wire::PayloadWriter`] writes into a `len`-byte buffer.
    fn wire(&mut self, len: usize, write: impl FnOnce(&mut wire::PayloadWriter<'_>)) {
        let mut buf = vec![0u8; len];
        let mut w = wire::PayloadWriter::new(&mut buf);
        write(&mut w);
        let n = w.len();
        self.bytes(&buf[..n]);
    }
}

impl Event {
    /// The wire kind of this event.
    pub fn kind(&self) -> u16 {
        match self {
            Event::ProcessStart(_) => kind::PROCESS_START,
            Event::ProcessExit(_) => kind::PROCESS_EXIT,
            Event::ModuleLoad(_) => kind::MODULE_LOAD,
            Event::ModuleUnload(_) => kind::MODULE_UNLOAD,
            Event::Exec(_) => kind::EXEC,
            Event::StackDef(_) => kind::STACK_DEF,
            Event::Alloc(_) => kind::ALLOC,
            Event::Free(_) => kind::FREE,
            Event::Realloc(_) => kind::REALLOC,
            Event::BadFree(_) => kind::BAD_FREE,
            Event::LeakBlocks(_) => kind::LEAK_BLOCKS,
            Event::ForkPrepare(_) => kind::FORK_PREPARE,
            Event::Notice(_) => kind::NOTICE,
            Event::ThreadStart(_) => kind::THREAD_START,
            Event::Command { .. } => kind::COMMAND,
            Event::MainExit(_) => kind::MAIN_EXIT,
            Event::Fault(_) => kind::FAULT,
            Event::FatalSignal(_) => kind::FATAL_SIGNAL,
            Event::Canary(_) => kind::CANARY,
            Event::HeapStats(_) => kind::HEAP_STATS,
        }
    }

    /// Encodes the event as one whole record (header, payload, padding), exactly as the shim
    /// and the CLI write it. Used by `fencepost record` for CLI-side records and by tests.
    /// Counts that do not fit their wire field are truncated to what fits.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        match self {
            Event::ProcessStart(s) => {
                e.u32(s.pid);
                e.u32(s.ppid);
                e.u32(s.flags);
                e.u32(0);
                e.u64(s.token);
                e.u64(s.time);
                e.bytes(s.exe.as_bytes());
            }
            Event::ProcessExit(x) => {
                e.u32(x.pid);
                e.u32(x.how);
                e.i32(x.code);
                e.u32(0);
                e.u64(x.time);
            }
            Event::ModuleLoad(m) => {
                let nsegs = m.segments.len().min(u16::MAX as usize);
                let id_len = m.build_id.len().min(u16::MAX as usize);
                e.u32(m.pid);
                e.u16(nsegs as u16);
                e.u16(id_len as u16);
                e.u64(m.bias);
                for s in &m.segments[..nsegs] {
                    e.u64(s.vaddr);
                    e.u64(s.memsz);
                    e.u64(s.flags);
                }
                e.bytes(&m.build_id[..id_len]);
                e.bytes(m.path.as_bytes());
            }
            Event::ModuleUnload(m) => {
                e.u32(m.pid);
                e.u32(0);
                e.u64(m.bias);
            }
            Event::Exec(x) => {
                e.u32(x.pid);
                e.u32(x.failed as u32);
            }
            Event::StackDef(s) => {
                e.u32(s.pid);
                e.u32(s.id);
                e.u32(s.frames.len() as u32);
                e.u32(0);
                for &pc in &s.frames {
                    e.u64(pc);
                }
            }
            Event::Alloc(a) => {
                e.u32(a.pid);
                e.u32(a.tid);
                e.u64(a.addr);
                e.u64(a.size);
                e.u32(a.stack);
                e.u8(a.func);
                e.u8(a.family);
                e.u16(a.flags);
                e.u64(a.time);
            }
            Event::Free(f) => {
                e.u32(f.pid);
                e.u32(f.tid);
                e.u64(f.addr);
                e.u32(f.stack);
                e.u8(f.func);
                e.u8(f.block_family);
                e.u16(f.flags);
                e.u64(f.time);
            }
            Event::Realloc(r) => {
                e.u32(r.pid);
                e.u32(r.tid);
                e.u64(r.old);
                e.u64(r.new);
                e.u64(r.size);
                e.u32(r.stack);
                e.u8(r.func);
                e.u8(0);
                e.u16(r.flags);
                e.u64(r.time);
            }
            Event::BadFree(b) => {
                e.u32(b.pid);
                e.u32(b.tid);
                e.u64(b.addr);
                e.u32(b.stack);
                e.u8(b.func);
                e.u8(0);
                e.u16(0);
                e.u64(b.time);
            }
            Event::LeakBlocks(l) => {
                e.u32(l.pid);
                e.u32(l.entries.len() as u32);
                for x in &l.entries {
                    e.u64(x.addr);
                    e.u64(x.size);
                    e.u32(x.stack);
                    e.u8(x.class);
                    e.u8(x.family);
                    e.u16(0);
                }
            }
            Event::ForkPrepare(f) => {
                e.u32(f.pid);
                e.u32(0);
                e.u64(f.token);
            }
            Event::Notice(n) => {
                e.u32(n.pid);
                e.u32(n.code);
                e.bytes(n.text.as_bytes());
            }
            Event::ThreadStart(t) => {
                e.u32(t.pid);
                e.u32(t.tid);
                e.u64(t.time);
            }
            Event::Command { argv } => {
                for (i, a) in argv.iter().enumerate() {
                    if i > 0 {
                        e.u8(0);
                    }
                    e.bytes(a.as_bytes());
                }
            }
            Event::MainExit(m) => {
                e.u32(m.pid);
                e.u32(m.how);
                e.i32(m.value);
                e.u32(0);
            }
            // The guard heap's records are written by the same functions the shim uses.
            Event::Fault(f) => e.wire(wire::FAULT_LEN, |w| f.write(w)),
            Event::FatalSignal(f) => e.wire(wire::FATAL_SIGNAL_LEN, |w| f.write(w)),
            Event::Canary(c) => e.wire(wire::CANARY_LEN, |w| c.write(w)),
            Event::HeapStats(h) => e.wire(wire::HEAP_STATS_LEN, |w| h.write(w)),
        }
        encode_record(self.kind(), &e.0)
    }
}

/// Frames a payload as one record: header, payload, zero padding to a multiple of 8.
pub fn encode_record(record_kind: u16, payload: &[u8]) -> Vec<u8> {
    let len = wire::record_len(payload.len());
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&record_kind.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(payload);
    out.resize(len, 0);
    out
}

/// Writes a trace file: the header, then records, either copied verbatim from the ring
/// ([`TraceWriter::write_record`]) or encoded from events ([`TraceWriter::write_event`]).
pub struct TraceWriter<W: Write> {
    out: W,
}

impl<W: Write> TraceWriter<W> {
    /// Writes the trace header (magic, version, reserved).
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut header = [0u8; wire::TRACE_HEADER_LEN];
        header[..8].copy_from_slice(&wire::TRACE_MAGIC);
        header[8..12].copy_from_slice(&wire::VERSION.to_le_bytes());
        out.write_all(&header)?;
        Ok(TraceWriter { out })
    }

    /// Appends one whole record (header included) as read from the ring.
    pub fn write_record(&mut self, record: &[u8]) -> io::Result<()> {
        self.out.write_all(record)
    }

    pub fn write_event(&mut self, event: &Event) -> io::Result<()> {
        self.out.write_all(&event.encode())
    }

    /// Flushes and returns the underlying writer (a `Vec<u8>` in tests).
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_events() -> Vec<Event> {
        vec![
            Event::Command {
                argv: vec!["./leak".into(), "a b".into(), "".into(), "x".into()],
            },
            Event::ProcessStart(ProcessStart {
                pid: 10,
                ppid: 1,
                flags: wire::start_flags::MAIN,
                token: 0,
                time: 5,
                exe: "/tmp/leak".into(),
            }),
            Event::ModuleLoad(ModuleLoad {
                pid: 10,
                bias: 0x5555_0000_0000,
                segments: vec![Segment {
                    vaddr: 0x1000,
                    memsz: 0x2000,
                    flags: 5,
                }],
                build_id: vec![1, 2, 3],
                path: "/tmp/leak".into(),
            }),
            Event::StackDef(StackDef {
                pid: 10,
                id: 1,
                frames: vec![0x5555_0000_1100, 0x5555_0000_1200],
            }),
            Event::Alloc(Alloc {
                pid: 10,
                tid: 10,
                addr: 0x1000,
                size: 40,
                stack: 1,
                func: wire::func::MALLOC,
                family: wire::family::MALLOC,
                flags: 0,
                time: 6,
            }),
            Event::Free(Free {
                pid: 10,
                tid: 11,
                addr: 0x1000,
                stack: 1,
                func: wire::func::DELETE,
                block_family: wire::family::MALLOC,
                flags: wire::FREE_MISMATCHED,
                time: 7,
            }),
            Event::Realloc(Realloc {
                pid: 10,
                tid: 10,
                old: 0,
                new: 0x2000,
                size: 7,
                stack: 1,
                func: wire::func::REALLOC,
                flags: 0,
                time: 8,
            }),
            Event::BadFree(BadFree {
                pid: 10,
                tid: 10,
                addr: 0x7ffd_0000,
                stack: 1,
                func: wire::func::FREE,
                time: 9,
            }),
            Event::LeakBlocks(LeakBlocks {
                pid: 10,
                entries: vec![LeakEntry {
                    addr: 0x2000,
                    size: 7,
                    stack: 1,
                    class: wire::leak::DEFINITE,
                    family: wire::family::MALLOC,
                }],
            }),
            Event::ForkPrepare(ForkPrepare { pid: 10, token: 99 }),
            Event::Notice(Notice {
                pid: 10,
                code: wire::notice::WARNING,
                text: "hello".into(),
            }),
            Event::ThreadStart(ThreadStart {
                pid: 10,
                tid: 11,
                time: 3,
            }),
            Event::ModuleUnload(ModuleUnload {
                pid: 10,
                bias: 0x5555_0000_0000,
            }),
            Event::Exec(Exec {
                pid: 10,
                failed: true,
            }),
            Event::ProcessExit(ProcessExit {
                pid: 10,
                how: wire::exit_how::EXIT,
                code: -3,
                time: 10,
            }),
            Event::MainExit(MainExit {
                pid: 10,
                how: 1,
                value: 9,
            }),
            Event::Fault(FaultRecord {
                pid: 10,
                tid: 11,
                addr: 0x7000_100d,
                pc: 0x5555_0000_1234,
                block_addr: 0x7000_1000,
                block_size: 13,
                stack: 4,
                alloc_stack: 1,
                free_stack: 0,
                flags: wire::FAULT_WRITE,
                kind: wire::fault::OVERFLOW,
                alloc_func: wire::func::MALLOC,
                free_func: 0,
                time: 11,
                insn: [
                    0x0f, 0xb6, 0x00, 0x90, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0xff,
                ],
                regs: core::array::from_fn(|i| 0x1000 * i as u64 + 1),
            }),
            Event::FatalSignal(FatalSignalRecord {
                pid: 10,
                tid: 10,
                signo: 11,
                code: 1,
                addr: 0,
                pc: 0x5555_0000_1300,
                stack: 5,
                time: 12,
                insn: [0x8b, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42],
                regs: core::array::from_fn(|i| u64::MAX - i as u64),
            }),
            Event::Canary(CanaryRecord {
                pid: 10,
                tid: 10,
                block_addr: 0x7000_2000,
                block_size: 16,
                alloc_stack: 1,
                stack: 2,
                bad_offset: -4,
                bad_len: 4,
                alloc_func: wire::func::CALLOC,
                time: 13,
            }),
            Event::HeapStats(HeapStatsRecord {
                pid: 10,
                guarded: 1_000_000,
                unguarded: 3,
                quarantine_bytes_max: 1 << 28,
                guard_budget_bytes: 1 << 33,
                sample_first: 4,
                sample_rate: 1000,
            }),
        ]
    }

    fn trace_of(events: &[Event]) -> Vec<u8> {
        let mut w = TraceWriter::new(Vec::new()).unwrap();
        for e in events {
            w.write_event(e).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn every_event_round_trips_through_a_trace_file() {
        let events = sample_events();
        let bytes = trace_of(&events);
        assert_eq!(read_trace(&bytes).unwrap(), events);
        for e in &events {
            assert_eq!(e.encode().len() % 8, 0);
        }
    }

    #[test]
    fn bad_magic_and_version_are_named() {
        assert_eq!(
            read_trace(b"hello world, not a trace"),
            Err(DecodeError::NotATrace)
        );
        assert_eq!(read_trace(b""), Err(DecodeError::NotATrace));
        let mut bytes = trace_of(&[]);
        bytes[8] = 7;
        let err = read_trace(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "trace version 7, this fencepost reads version 1"
        );
    }

    #[test]
    fn length_not_multiple_of_8_names_offset() {
        let mut bytes = trace_of(&sample_events()[..2]);
        let second = wire::TRACE_HEADER_LEN + sample_events()[0].encode().len();
        bytes[second..second + 4].copy_from_slice(&3u32.to_le_bytes());
        let err = read_trace(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("corrupt trace at offset {second}: record length 3 is not a multiple of 8")
        );
    }

    #[test]
    fn truncated_record_names_offset() {
        let bytes = trace_of(&sample_events()[..2]);
        let second = wire::TRACE_HEADER_LEN + sample_events()[0].encode().len();
        let cut = &bytes[..bytes.len() - 4];
        let err = read_trace(cut).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Truncated {
                offset: second as u64
            }
        );
        assert_eq!(
            err.to_string(),
            format!("truncated record at offset {second}")
        );
    }

    #[test]
    fn heap_stats_from_before_sampled_mode_decode_as_every_block_guarded() {
        // 40 payload bytes: the record ended after guard_budget_bytes.
        let mut payload = vec![0u8; 40];
        payload[0..4].copy_from_slice(&10u32.to_le_bytes());
        payload[8..16].copy_from_slice(&7u64.to_le_bytes());
        let rec = encode_record(kind::HEAP_STATS, &payload);
        let Ok((Event::HeapStats(h), _)) = decode_record(&rec, 0) else {
            panic!("a 40-byte HeapStats record decodes");
        };
        assert_eq!((h.pid, h.guarded), (10, 7));
        assert_eq!((h.sample_first, h.sample_rate), (0, 0));
    }

    #[test]
    fn unknown_kind_and_short_payload_are_corrupt() {
        let rec = encode_record(77, &[0; 8]);
        let err = decode_record(&rec, 4096).unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt trace at offset 4096: unknown record kind 77"
        );
        let rec = encode_record(kind::ALLOC, &[0; 16]);
        assert!(matches!(
            decode_record(&rec, 8),
            Err(DecodeError::Corrupt { offset: 8, .. })
        ));
        // A stack claiming more frames than the record holds.
        let mut payload = vec![0u8; 16];
        payload[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        let rec = encode_record(kind::STACK_DEF, &payload);
        assert!(matches!(
            decode_record(&rec, 0),
            Err(DecodeError::Corrupt { .. })
        ));
    }

    /// A tiny xorshift generator: deterministic, no dependency.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn random_and_mutated_input_never_panics() {
        let good = trace_of(&sample_events());
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..5000 {
            let mut bytes = good.clone();
            // Mutate a few bytes, then cut at a random point.
            for _ in 0..(rng(&mut seed) % 8) {
                let i = (rng(&mut seed) as usize) % bytes.len();
                bytes[i] = rng(&mut seed) as u8;
            }
            let cut = (rng(&mut seed) as usize) % (bytes.len() + 1);
            let _ = read_trace(&bytes[..cut]);
            // And raw garbage decoded as records.
            let n = (rng(&mut seed) % 200) as usize;
            let garbage: Vec<u8> = (0..n).map(|_| rng(&mut seed) as u8).collect();
            let _ = decode_record(&garbage, 0);
        }
        for cut in 0..good.len() {
            // Only cuts at record boundaries decode cleanly, and then to fewer events.
            match read_trace(&good[..cut]) {
                Ok(events) => assert!(events.len() < sample_events().len()),
                Err(e) if cut >= wire::TRACE_HEADER_LEN => {
                    assert!(matches!(e, DecodeError::Truncated { .. }), "{e}")
                }
                Err(_) => {}
            }
        }
    }
}
