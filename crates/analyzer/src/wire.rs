//! The wire format between the shim and the analyzer, defined once.
//!
//! This file is compiled twice: as `fencepost_analyzer::wire` and, through a `#[path]`
//! include, inside the shim (which must not depend on the analyzer's crates). It therefore
//! uses nothing but `core`, allocates nothing and has no `unsafe`.
//!
//! # The ring
//!
//! One memfd created by the CLI: a [`RING_HEADER_SIZE`]-byte header page, then `capacity`
//! bytes of data (a power of two). Producers (every thread of every traced process) reserve
//! space by `fetch_add` on `reserve`, wait until the consumer's `tail` leaves room, write the
//! record's payload, then publish it by storing its 8-byte record header with release
//! ordering. The consumer reads the header at `tail` with acquire ordering; zero means "not
//! yet published". After consuming a record it zeroes its bytes, so a header is non-zero only
//! when a producer published it in the current lap.
//!
//! # Records
//!
//! Every record, in the ring and in a trace file alike, is an 8-byte header followed by a
//! payload, padded to a multiple of 8 bytes:
//!
//! ```text
//! u32 len (whole record, header included, multiple of 8) | u16 kind | u16 reserved
//! ```
//!
//! Payload fields are little-endian and laid out as the `*_LEN` constants and the encoders
//! below say. A trace file is [`TRACE_MAGIC`], a `u32` [`VERSION`], a `u32` reserved, then
//! records one after another.

/// First bytes of the ring header page.
pub const RING_MAGIC: u64 = 0x3154_534f_5045_4346; // "FCEPOST1" read as little-endian bytes
/// Version of the record layouts; bumped on any incompatible change.
pub const VERSION: u32 = 1;
/// First bytes of a trace file written by `fencepost record`.
pub const TRACE_MAGIC: [u8; 8] = *b"FPTRACE\0";
/// Size of the trace file header: magic, version, reserved.
pub const TRACE_HEADER_LEN: usize = 16;

/// Size of the ring's header page; data starts right after it.
pub const RING_HEADER_SIZE: usize = 4096;
/// Byte offsets of the ring header fields (each on its own cache line where it is contended).
pub mod ring_off {
    pub const MAGIC: usize = 0; // u64
    pub const VERSION: usize = 8; // u32
    pub const CAPACITY: usize = 16; // u64, power of two
    pub const RESERVE: usize = 64; // u64, producers' reservation position (monotonic)
    pub const TAIL: usize = 128; // u64, consumer position (monotonic)
    pub const CONSUMER_STATE: usize = 192; // u32: CONSUMER_ALIVE or CONSUMER_GONE
    pub const CONSUMER_PID: usize = 196; // u32
    pub const DROPPED: usize = 256; // u64, records a producer could not write (analyzer gone)
}
pub const CONSUMER_ALIVE: u32 = 1;
pub const CONSUMER_GONE: u32 = 2;

/// Size of the record header.
pub const RECORD_HEADER_LEN: usize = 8;
/// The largest record accepted, header included (a stack of 256 frames fits easily).
pub const MAX_RECORD_LEN: usize = 64 * 1024;

/// Packs a record header into the word that producers publish.
pub const fn record_header(len: u32, kind: u16) -> u64 {
    (len as u64) | ((kind as u64) << 32)
}

/// Splits a published header word into (len, kind).
pub const fn split_header(word: u64) -> (u32, u16) {
    (word as u32, (word >> 32) as u16)
}

/// Rounds a payload length up to a whole record length.
pub const fn record_len(payload: usize) -> usize {
    (RECORD_HEADER_LEN + payload + 7) & !7
}

/// Record kinds. Values 1..=99 come from the shim; 100.. are written by the CLI.
pub mod kind {
    pub const PROCESS_START: u16 = 1;
    pub const PROCESS_EXIT: u16 = 2;
    pub const MODULE_LOAD: u16 = 3;
    pub const MODULE_UNLOAD: u16 = 4;
    pub const STACK_DEF: u16 = 5;
    pub const ALLOC: u16 = 6;
    pub const FREE: u16 = 7;
    pub const REALLOC: u16 = 8;
    pub const BAD_FREE: u16 = 9;
    pub const LEAK_BLOCKS: u16 = 10;
    pub const FORK_PREPARE: u16 = 11;
    pub const NOTICE: u16 = 12;
    pub const THREAD_START: u16 = 13;
    /// A bad access caught by a guard page (overflow, underflow, use after free).
    pub const FAULT: u16 = 14;
    /// A fatal signal that was not a heap error (null pointer, wild pointer, SIGBUS,
    /// SIGFPE, abort): the process is about to die of it.
    pub const FATAL_SIGNAL: u16 = 15;
    /// A block's canary bytes (slack around it) were found overwritten, at free or exit.
    pub const CANARY: u16 = 16;
    /// End-of-run statistics of the guard heap.
    pub const HEAP_STATS: u16 = 17;
    /// The image is about to be replaced by execve (flags 0), or the exec failed (flags 1).
    pub const EXEC: u16 = 18;
    /// CLI: the command line, NUL-separated arguments.
    pub const COMMAND: u16 = 100;
    /// CLI: how the main process ended.
    pub const MAIN_EXIT: u16 = 101;
}

/// Which allocator family a block came from, or which family a release call belongs to.
/// A release whose family differs from its block's is a mismatched free.
pub mod family {
    pub const MALLOC: u8 = 1;
    pub const NEW: u8 = 2;
    pub const NEW_ARRAY: u8 = 3;
}

/// The entry point a program called, for messages ("by malloc", "Mismatched delete[]").
pub mod func {
    pub const MALLOC: u8 = 1;
    pub const CALLOC: u8 = 2;
    pub const REALLOC: u8 = 3;
    pub const REALLOCARRAY: u8 = 4;
    pub const POSIX_MEMALIGN: u8 = 5;
    pub const ALIGNED_ALLOC: u8 = 6;
    pub const MEMALIGN: u8 = 7;
    pub const VALLOC: u8 = 8;
    pub const PVALLOC: u8 = 9;
    pub const NEW: u8 = 10;
    pub const NEW_ARRAY: u8 = 11;
    pub const FREE: u8 = 12;
    pub const DELETE: u8 = 13;
    pub const DELETE_ARRAY: u8 = 14;

    /// The C or C++ spelling of an entry point.
    pub const fn name(f: u8) -> &'static str {
        match f {
            MALLOC => "malloc",
            CALLOC => "calloc",
            REALLOC => "realloc",
            REALLOCARRAY => "reallocarray",
            POSIX_MEMALIGN => "posix_memalign",
            ALIGNED_ALLOC => "aligned_alloc",
            MEMALIGN => "memalign",
            VALLOC => "valloc",
            PVALLOC => "pvalloc",
            NEW => "operator new",
            NEW_ARRAY => "operator new[]",
            FREE => "free",
            DELETE => "operator delete",
            DELETE_ARRAY => "operator delete[]",
            _ => "?",
        }
    }
}

/// Leak classes assigned by the shim's pointer scan at exit, in memcheck's terms.
pub mod leak {
    pub const DEFINITE: u8 = 1;
    pub const INDIRECT: u8 = 2;
    pub const POSSIBLE: u8 = 3;
    pub const REACHABLE: u8 = 4;
}

/// `ProcessStart.flags`.
pub mod start_flags {
    /// The first traced process (the one the CLI spawned).
    pub const MAIN: u32 = 1;
    /// Created by fork/vfork; `token` names the parent's `ForkPrepare`.
    pub const FORKED: u32 = 2;
    /// A new image after execve in a traced process.
    pub const EXECED: u32 = 4;
}

/// `ProcessExit.how`.
pub mod exit_how {
    /// `exit()` or return from main: leaks were classified.
    pub const EXIT: u32 = 1;
    /// `_exit()`/`_Exit()` called by the program: leaks were classified.
    pub const UNDERSCORE_EXIT: u32 = 2;
}

/// `Fault.kind`: what a guard-page fault means for the block it hit.
pub mod fault {
    /// Past the end of a live block (the guard page after it).
    pub const OVERFLOW: u8 = 1;
    /// Before the start of a live block (the guard page below it, `--protect-below`).
    pub const UNDERFLOW: u8 = 2;
    /// Inside a freed block waiting in quarantine.
    pub const USE_AFTER_FREE: u8 = 3;
    /// A guard page of the fencepost heap that belongs to no block now.
    pub const WILD: u8 = 4;
    /// A general-protection fault (no address) on an instruction whose memory operand
    /// lies in a heap block: typically an aligned SSE load on a block with less alignment.
    pub const MISALIGNED: u8 = 5;
}

/// Registers sent with faults, in this order (iced-x86 / DWARF-independent).
pub const REG_NAMES: [&str; 17] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "rip",
];
pub const REGS_LEN: usize = 17 * 8;
/// Instruction bytes copied from the faulting pc (x86-64 instructions are at most 15).
pub const INSN_LEN: usize = 16;

/// `Notice.code`.
pub mod notice {
    /// Free-form warning text from the shim.
    pub const WARNING: u32 = 1;
}

// ---- payload layouts (byte offsets within the payload) ----

/// ProcessStart: pid u32, ppid u32, flags u32, reserved u32, token u64, time u64, then the
/// executable path (UTF-8 or not, to the end of the payload, NUL padding trimmed).
pub const PROCESS_START_FIXED: usize = 32;
/// ProcessExit: pid u32, how u32, code i32, reserved u32, time u64.
pub const PROCESS_EXIT_LEN: usize = 24;
/// ModuleLoad: pid u32, nsegs u16, build_id_len u16, bias u64, then nsegs × (vaddr u64,
/// memsz u64, flags u64 (PF_*)), then build_id bytes, then path bytes.
pub const MODULE_LOAD_FIXED: usize = 16;
pub const MODULE_SEGMENT_LEN: usize = 24;
/// ModuleUnload: pid u32, reserved u32, bias u64.
pub const MODULE_UNLOAD_LEN: usize = 16;
/// StackDef: pid u32, id u32, nframes u32, reserved u32, then nframes × pc u64.
/// Frame 0 is the return address into the caller of the allocation function.
pub const STACK_DEF_FIXED: usize = 16;
/// Alloc: pid u32, tid u32, addr u64, size u64, stack u32, func u8, family u8, flags u16,
/// time u64.
pub const ALLOC_LEN: usize = 40;
/// Free: pid u32, tid u32, addr u64, stack u32, func u8, block_family u8, flags u16, time u64.
/// `flags & FREE_MISMATCHED`: the call's family differs from `block_family`.
pub const FREE_LEN: usize = 32;
pub const FREE_MISMATCHED: u16 = 1;
/// Realloc: pid u32, tid u32, old u64, new u64, size u64, stack u32, func u8, reserved u8,
/// flags u16, time u64. Either address may be 0 (realloc(NULL, n) or a failed realloc).
pub const REALLOC_LEN: usize = 48;
/// BadFree: pid u32, tid u32, addr u64, stack u32, func u8, reserved u8 u16, time u64.
/// A release of a pointer the shim does not own; it was not passed to the allocator.
pub const BAD_FREE_LEN: usize = 32;
/// LeakBlocks: pid u32, count u32, then count × (addr u64, size u64, stack u32, class u8,
/// family u8, reserved u16).
pub const LEAK_BLOCKS_FIXED: usize = 8;
pub const LEAK_ENTRY_LEN: usize = 24;
/// ForkPrepare: pid u32, reserved u32, token u64.
pub const FORK_PREPARE_LEN: usize = 16;
/// Notice: pid u32, code u32, then text.
pub const NOTICE_FIXED: usize = 8;
/// ThreadStart: pid u32, tid u32, time u64.
pub const THREAD_START_LEN: usize = 16;
/// Fault: pid u32, tid u32, addr u64, pc u64, block_addr u64, block_size u64, stack u32
/// (of the access), alloc_stack u32, free_stack u32, flags u32 (bit 0: write),
/// kind u8 (`fault::*`), alloc_func u8, free_func u8, reserved u8, reserved u32, time u64,
/// insn [INSN_LEN], regs [REGS_LEN]. For WILD faults the block fields are 0.
pub const FAULT_LEN: usize = 72 + INSN_LEN + REGS_LEN;
pub const FAULT_WRITE: u32 = 1;
/// FatalSignal: pid u32, tid u32, signo i32, code i32, addr u64, pc u64, stack u32,
/// reserved u32, time u64, insn [INSN_LEN], regs [REGS_LEN].
pub const FATAL_SIGNAL_LEN: usize = 48 + INSN_LEN + REGS_LEN;
/// Canary: pid u32, tid u32, block_addr u64, block_size u64, alloc_stack u32, stack u32
/// (where it was found: the free; 0 at exit), bad_offset i64 (from the block start; negative
/// below it), bad_len u32, alloc_func u8, reserved u8 u16, time u64. block_size and
/// alloc_stack both 0: the shim lost them (they were in the overwritten bytes, a fast-mode
/// block header); the block is still live, and the analyzer's own record of it says.
pub const CANARY_LEN: usize = 56;
/// HeapStats: pid u32, reserved u32, guarded u64, unguarded u64 (blocks that got canaries
/// only, past a budget), quarantine_bytes_max u64, guard_budget_bytes u64, sample_first
/// u32, sample_rate u32 (sampled mode's settings; 0 for every block guarded). Traces from
/// before sampled mode end the record after guard_budget_bytes.
pub const HEAP_STATS_LEN: usize = 48;

/// Exec: pid u32, flags u32 (0: about to exec, 1: the exec failed and the image goes on).
pub const EXEC_LEN: usize = 8;

/// MainExit (CLI): pid u32, how u32 (0 exited, 1 signalled), value i32, reserved u32.
pub const MAIN_EXIT_LEN: usize = 16;

/// A FAULT record's fields, in wire order. The shim fills one in its fault handler (plain
/// data, no allocation) and writes it with [`FaultRecord::write`]; the analyzer's encoder
/// uses the same function, so the field order is written once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultRecord {
    pub pid: u32,
    pub tid: u32,
    /// The faulting address (`si_addr`); 0 for MISALIGNED (a #GP reports none).
    pub addr: u64,
    pub pc: u64,
    /// The block the guard page belongs to; 0 for WILD (and MISALIGNED if unknown).
    pub block_addr: u64,
    pub block_size: u64,
    /// Stack of the access: frame 0 is `pc` itself, the rest are return addresses.
    pub stack: u32,
    pub alloc_stack: u32,
    pub free_stack: u32,
    /// [`FAULT_WRITE`].
    pub flags: u32,
    /// [`fault`].
    pub kind: u8,
    /// [`func`] that allocated / freed the block.
    pub alloc_func: u8,
    pub free_func: u8,
    pub time: u64,
    pub insn: [u8; INSN_LEN],
    /// In [`REG_NAMES`] order.
    pub regs: [u64; 17],
}

impl FaultRecord {
    /// Writes the payload ([`FAULT_LEN`] bytes).
    pub fn write(&self, w: &mut PayloadWriter<'_>) {
        w.u32(self.pid);
        w.u32(self.tid);
        w.u64(self.addr);
        w.u64(self.pc);
        w.u64(self.block_addr);
        w.u64(self.block_size);
        w.u32(self.stack);
        w.u32(self.alloc_stack);
        w.u32(self.free_stack);
        w.u32(self.flags);
        w.u8(self.kind);
        w.u8(self.alloc_func);
        w.u8(self.free_func);
        w.u8(0);
        w.u32(0);
        w.u64(self.time);
        w.insn_and_regs(&self.insn, &self.regs);
    }
}

/// A FATAL_SIGNAL record's fields, in wire order ([`FATAL_SIGNAL_LEN`] bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FatalSignalRecord {
    pub pid: u32,
    pub tid: u32,
    pub signo: i32,
    /// `si_code`.
    pub code: i32,
    /// `si_addr`: the bad address for SIGSEGV/SIGBUS, the instruction for SIGFPE/SIGILL.
    pub addr: u64,
    pub pc: u64,
    /// Frame 0 is `pc` itself, the rest are return addresses.
    pub stack: u32,
    pub time: u64,
    pub insn: [u8; INSN_LEN],
    pub regs: [u64; 17],
}

impl FatalSignalRecord {
    pub fn write(&self, w: &mut PayloadWriter<'_>) {
        w.u32(self.pid);
        w.u32(self.tid);
        w.i32(self.signo);
        w.i32(self.code);
        w.u64(self.addr);
        w.u64(self.pc);
        w.u32(self.stack);
        w.u32(0);
        w.u64(self.time);
        w.insn_and_regs(&self.insn, &self.regs);
    }
}

/// A CANARY record's fields, in wire order ([`CANARY_LEN`] bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanaryRecord {
    pub pid: u32,
    pub tid: u32,
    pub block_addr: u64,
    pub block_size: u64,
    pub alloc_stack: u32,
    /// The free that found it; 0 when found at exit.
    pub stack: u32,
    /// First overwritten byte, from the block start (negative: before the block).
    pub bad_offset: i64,
    pub bad_len: u32,
    pub alloc_func: u8,
    pub time: u64,
}

impl CanaryRecord {
    pub fn write(&self, w: &mut PayloadWriter<'_>) {
        w.u32(self.pid);
        w.u32(self.tid);
        w.u64(self.block_addr);
        w.u64(self.block_size);
        w.u32(self.alloc_stack);
        w.u32(self.stack);
        w.u64(self.bad_offset as u64);
        w.u32(self.bad_len);
        w.u8(self.alloc_func);
        w.u8(0);
        w.u16(0);
        w.u64(self.time);
    }
}

/// A HEAP_STATS record's fields, in wire order ([`HEAP_STATS_LEN`] bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapStatsRecord {
    pub pid: u32,
    pub guarded: u64,
    /// Blocks that got canaries only (a budget was reached).
    pub unguarded: u64,
    pub quarantine_bytes_max: u64,
    pub guard_budget_bytes: u64,
    /// Sampled mode: blocks guarded at each call site before the rate applies.
    pub sample_first: u32,
    /// Sampled mode: one block in this many guarded after that; 0 outside sampled mode.
    pub sample_rate: u32,
}

impl HeapStatsRecord {
    pub fn write(&self, w: &mut PayloadWriter<'_>) {
        w.u32(self.pid);
        w.u32(0);
        w.u64(self.guarded);
        w.u64(self.unguarded);
        w.u64(self.quarantine_bytes_max);
        w.u64(self.guard_budget_bytes);
        w.u32(self.sample_first);
        w.u32(self.sample_rate);
    }
}

/// A little-endian writer over a fixed buffer, used by the shim to build payloads on the
/// stack. Writing past the end is ignored (the caller sized the buffer).
pub struct PayloadWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> PayloadWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        PayloadWriter { buf, pos: 0 }
    }
    pub fn len(&self) -> usize {
        self.pos
    }
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }
    pub fn bytes(&mut self, b: &[u8]) {
        let end = (self.pos + b.len()).min(self.buf.len());
        let n = end - self.pos;
        self.buf[self.pos..end].copy_from_slice(&b[..n]);
        self.pos = end;
    }
    pub fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }
    pub fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    pub fn i32(&mut self, v: i32) {
        self.bytes(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    /// The tail of FAULT and FATAL_SIGNAL records: the instruction's bytes, then the
    /// 17 general registers of the signal context.
    pub fn insn_and_regs(&mut self, insn: &[u8; INSN_LEN], regs: &[u64; 17]) {
        self.bytes(insn);
        for &r in regs {
            self.u64(r);
        }
    }
}
