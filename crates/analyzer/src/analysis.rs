//! The analyzer's pure core: events in ring order in, a [`Report`] out.
//!
//! State is kept per *process image*: a pid that execs starts a new image (the old one is
//! dropped without a leak check, as memcheck does), a forked child starts as a copy of its
//! parent at the parent's `ForkPrepare`. Each image has a module map, a stack table, the live
//! heap and a bounded history of freed blocks (to tell a double free from an invalid one).
//!
//! Stack pcs are resolved to modules when the stack is *defined* (the module map of that
//! moment), so a library that is `dlclose`d later still names its frames; symbolization is
//! lazy, in [`Analyzer::finish`], cached per (module file, module-relative pc).

use rustc_hash::FxHashMap;
use std::collections::HashMap;

use crate::decode::{self, DecodeError, Event, LeakEntry};
use crate::report::{
    Access, BlockInfo, ErrorKind, ErrorReport, ExitStatus, FoundAt, Frame, GuardStats, LeakKind,
    LeakTotals, LossRecord, ProcessEnd, ProcessReport, ProcessStartKind, Report, Sample, Stack,
    Summary, Warning, SCHEMA,
};
use crate::symbolize::{ModuleRef, SymbolizedFrame, Symbolizer};
use crate::timeline::TimelineBuilder;
use crate::wire;

mod faults;
mod live;

use live::{Block, LiveBlocks};

/// How many freed blocks are remembered (over all processes) to explain bad frees.
const FREED_HISTORY: usize = 1 << 16;

/// Where symbols come from; [`Symbolizer`] in production, a fake in tests.
pub trait SymbolSource {
    /// Same contract as [`Symbolizer::symbolize`]: innermost inlined frame first, never empty.
    fn symbolize(
        &mut self,
        module: &ModuleRef,
        pc: u64,
        is_return_address: bool,
    ) -> Vec<SymbolizedFrame>;

    /// Same contract as [`Symbolizer::function_symbol`]: the function's name from the
    /// symbol tables alone. `None` when unknown, or when the source has no cheaper way than
    /// `symbolize`.
    fn function_symbol(
        &mut self,
        _module: &ModuleRef,
        _pc: u64,
        _is_return_address: bool,
    ) -> Option<String> {
        None
    }
}

impl SymbolSource for Symbolizer {
    fn symbolize(
        &mut self,
        module: &ModuleRef,
        pc: u64,
        is_return_address: bool,
    ) -> Vec<SymbolizedFrame> {
        Symbolizer::symbolize(self, module, pc, is_return_address)
    }

    fn function_symbol(
        &mut self,
        module: &ModuleRef,
        pc: u64,
        is_return_address: bool,
    ) -> Option<String> {
        Symbolizer::function_symbol(self, module, pc, is_return_address)
    }
}

#[derive(Debug, Clone)]
pub struct AnalyzerOptions {
    /// Stacks in the report keep at most this many frames, inlined frames included
    /// (`--num-callers`). 0 means no limit.
    pub num_callers: usize,
    /// Keep the frames below `main` (the C runtime's start-up code). memcheck hides them by
    /// default (`--show-below-main=no`): they are the same in every stack and say nothing.
    pub show_below_main: bool,
    /// The kinds of loss record whose stacks are symbolized; `None`: every kind. The stacks
    /// of the others keep their addresses and modules only. A report that shows no reachable
    /// block then never reads the debug information that only those blocks' stacks would
    /// need: on a machine with `libc6-dbg`, inflating libc's was most of a short run's time.
    pub symbolized_leak_kinds: Option<Vec<LeakKind>>,
}

impl Default for AnalyzerOptions {
    fn default() -> Self {
        AnalyzerOptions {
            num_callers: 24,
            show_below_main: false,
            symbolized_leak_kinds: None,
        }
    }
}

/// A loaded module, as announced by a `ModuleLoad`. Shared by every image that mapped it.
struct ModuleInfo {
    path: String,
    build_id: Vec<u8>,
    bias: u64,
    /// Absolute `[start, end)` ranges of its segments.
    ranges: Vec<(u64, u64)>,
    /// Same file (path and build-id) → same id, whatever the bias: the symbol cache key.
    file_id: u32,
}

/// A stack frame resolved against the module map of its definition time.
#[derive(Clone, Copy)]
struct ResolvedPc {
    pc: u64,
    module: Option<u32>,
}

#[derive(Clone, Copy)]
struct FreedBlock {
    size: u64,
    alloc_stack: u32,
    free_stack: u32,
    alloc_func: u8,
}

/// Recently freed blocks, to tell a double free from an invalid one and show both stacks.
/// Direct-mapped by (image, address): a later free of a colliding address evicts an older
/// one. Fixed size, no allocation per free: this is on the analyzer's hottest path, so a
/// slot is 32 bytes and an allocation does not touch the table at all (a block freed and
/// allocated again is told apart by being live; see [`Analyzer::freed_block`]).
struct FreedHistory {
    slots: Vec<FreedSlot>,
}

/// One remembered free; `addr` 0 marks an empty slot (no block is ever at 0).
#[derive(Clone, Copy)]
struct FreedSlot {
    addr: u64,
    size: u64,
    img: u32,
    alloc_stack: u32,
    free_stack: u32,
    alloc_func: u8,
}

impl FreedHistory {
    const EMPTY: FreedSlot = FreedSlot {
        addr: 0,
        size: 0,
        img: 0,
        alloc_stack: 0,
        free_stack: 0,
        alloc_func: 0,
    };

    fn new() -> Self {
        FreedHistory {
            slots: vec![Self::EMPTY; FREED_HISTORY],
        }
    }

    /// A block's slot, by the live map's hash (with the image in the region's bits): a run
    /// of frees in one part of the heap writes neighbouring slots.
    fn index(img: usize, addr: u64) -> usize {
        live::near_hash(addr ^ (img as u64).rotate_left(40)) as usize & (FREED_HISTORY - 1)
    }

    fn remember(&mut self, img: usize, addr: u64, block: FreedBlock) {
        self.slots[Self::index(img, addr)] = FreedSlot {
            addr,
            size: block.size,
            img: img as u32,
            alloc_stack: block.alloc_stack,
            free_stack: block.free_stack,
            alloc_func: block.alloc_func,
        };
    }

    /// The last free of `addr` in `img` remembered, whether or not it was allocated again
    /// since.
    fn get(&self, img: usize, addr: u64) -> Option<FreedBlock> {
        let slot = &self.slots[Self::index(img, addr)];
        (addr != 0 && slot.addr == addr && slot.img as usize == img).then_some(FreedBlock {
            size: slot.size,
            alloc_stack: slot.alloc_stack,
            free_stack: slot.free_stack,
            alloc_func: slot.alloc_func,
        })
    }
}

/// Recent answers of [`Analyzer::module_at`], direct-mapped by (image, pc). Emptied
/// whenever a module is loaded or unloaded, so an answer is never stale.
struct ModuleCache {
    /// (image, pc, module + 1 or 0 for none); image `usize::MAX` marks an empty slot.
    slots: Vec<(usize, u64, u32)>,
}

impl ModuleCache {
    const SLOTS: usize = 1024;
    const EMPTY: (usize, u64, u32) = (usize::MAX, 0, 0);

    fn new() -> Self {
        ModuleCache {
            slots: vec![Self::EMPTY; Self::SLOTS],
        }
    }

    fn slot(img: usize, pc: u64) -> usize {
        let h = (pc ^ (img as u64).rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> 54) as usize & (Self::SLOTS - 1)
    }

    fn get(&self, slot: usize, img: usize, pc: u64) -> Option<Option<u32>> {
        let (i, p, m) = self.slots[slot];
        (i == img && p == pc).then(|| m.checked_sub(1))
    }

    fn put(&mut self, slot: usize, img: usize, pc: u64, module: Option<u32>) {
        self.slots[slot] = (img, pc, module.map_or(0, |m| m + 1));
    }

    fn clear(&mut self) {
        self.slots.fill(Self::EMPTY);
    }
}

/// The state of one process image.
struct Image {
    pid: u32,
    ppid: u32,
    exe: String,
    start: ProcessStartKind,
    end: Option<ProcessEnd>,
    exit: Option<ExitStatus>,
    /// For a forked child: the parent image, whose stacks it inherited.
    parent: Option<usize>,
    /// Modules mapped now, most recently loaded last.
    loaded: Vec<u32>,
    /// Stack id → its frames in `stack_frames`.
    stacks: FxHashMap<u32, std::ops::Range<usize>>,
    /// The frames of every stack defined in this image, end to end: one allocation for
    /// them all, not one per stack.
    stack_frames: Vec<ResolvedPc>,
    live: LiveBlocks,
    /// The shim's classification at exit (authoritative when present).
    leak_entries: Vec<LeakEntry>,
    threads: u64,
    allocations: u64,
    frees: u64,
    bytes_allocated: u64,
    inherited: u64,
    /// Frees and reallocs of addresses the analyzer did not know as live.
    unknown_frees: u64,
    /// The guard heap's statistics, when the shim sent them.
    guard: Option<GuardStats>,
    /// The image announced an exec that has not failed: if it ends without exiting, it was
    /// replaced, not killed.
    exec_pending: bool,
    /// Bytes in use over time, for the report's `timeline`.
    timeline: TimelineBuilder,
}

impl Image {
    fn new(pid: u32, ppid: u32, exe: String, start: ProcessStartKind) -> Self {
        Image {
            pid,
            ppid,
            exe,
            start,
            end: None,
            exit: None,
            parent: None,
            loaded: Vec::new(),
            stacks: FxHashMap::default(),
            stack_frames: Vec::new(),
            live: LiveBlocks::default(),
            leak_entries: Vec::new(),
            threads: 1,
            allocations: 0,
            frees: 0,
            bytes_allocated: 0,
            inherited: 0,
            unknown_frees: 0,
            guard: None,
            exec_pending: false,
            timeline: TimelineBuilder::starting_at(0),
        }
    }

    /// The block containing `addr`, if any: (start, block).
    fn live_containing(&self, addr: u64) -> Option<(u64, Block)> {
        let (start, block) = self.live_at_or_below(addr)?;
        (addr - start < block.size.max(1)).then_some((start, block))
    }

    /// The live block starting closest below or at `addr`. A linear scan: the live blocks
    /// are hashed for the hot path (every malloc and free), and this is only asked when
    /// explaining an error.
    fn live_at_or_below(&self, addr: u64) -> Option<(u64, Block)> {
        self.live
            .iter()
            .filter(|&(start, _)| start <= addr)
            .max_by_key(|&(start, _)| start)
            .map(|(start, &block)| (start, block))
    }
}

/// The parent's state at `ForkPrepare`, waiting for the child's `ProcessStart`.
struct ForkSnapshot {
    image: usize,
    loaded: Vec<u32>,
    live: LiveBlocks,
}

/// Identical errors are grouped: same image, kind, stack and calls.
#[derive(Hash, PartialEq, Eq, Default)]
struct ErrorKey {
    image: usize,
    kind: Option<ErrorKind>,
    stack: u32,
    call: u8,
    alloc_func: u8,
    /// Canaries found at exit have no stack of their own: they are told apart by this.
    alloc_stack: u32,
    /// Read or write, signal number, free or exit: what else makes two errors different.
    variant: i64,
}

struct PendingError {
    kind: ErrorKind,
    image: usize,
    tid: u32,
    count: u64,
    /// The release call, for free errors.
    call: Option<u8>,
    /// `None`: no stack (a canary found at exit).
    stack: Option<u32>,
    /// The stack's frame 0 is the faulting pc, not a return address.
    stack_starts_at_pc: bool,
    alloc_stack: Option<u32>,
    free_stack: Option<u32>,
    block: Option<BlockInfo>,
    access: Option<Access>,
    signal: Option<i32>,
    signal_code: Option<i32>,
    fault_address: Option<u64>,
    found_at: Option<FoundAt>,
    advice: Option<String>,
    message: String,
}

impl PendingError {
    /// An error about a release call (double, invalid or mismatched free).
    fn release(kind: ErrorKind, image: usize, tid: u32, call: u8, stack: u32) -> Self {
        PendingError {
            kind,
            image,
            tid,
            count: 0,
            call: Some(call),
            stack: Some(stack),
            stack_starts_at_pc: false,
            alloc_stack: None,
            free_stack: None,
            block: None,
            access: None,
            signal: None,
            signal_code: None,
            fault_address: None,
            found_at: None,
            advice: None,
            message: String::new(),
        }
    }
}

/// Feeds on events, in ring order; [`Analyzer::finish`] makes the report.
pub struct Analyzer {
    options: AnalyzerOptions,
    command: Vec<String>,
    main_exit: Option<(u32, ExitStatus)>,
    images: Vec<Image>,
    /// pid → its current image.
    current: FxHashMap<u32, usize>,
    /// The last (pid, image) looked up: consecutive records are mostly from one process.
    last_image: Option<(u32, usize)>,
    modules: Vec<ModuleInfo>,
    module_cache: ModuleCache,
    module_index: HashMap<(String, Vec<u8>, u64), u32>,
    file_ids: HashMap<(String, Vec<u8>), u32>,
    snapshots: HashMap<(u32, u64), ForkSnapshot>,
    freed: FreedHistory,
    errors: Vec<PendingError>,
    error_index: HashMap<ErrorKey, usize>,
    warnings: Vec<Warning>,
    /// The first non-zero event time: the origin of every timeline.
    time_origin: Option<u64>,
}

impl Default for Analyzer {
    fn default() -> Self {
        Analyzer::new(AnalyzerOptions::default())
    }
}

impl Analyzer {
    pub fn new(options: AnalyzerOptions) -> Self {
        Analyzer {
            options,
            command: Vec::new(),
            main_exit: None,
            images: Vec::new(),
            current: FxHashMap::default(),
            last_image: None,
            modules: Vec::new(),
            module_cache: ModuleCache::new(),
            module_index: HashMap::new(),
            file_ids: HashMap::new(),
            snapshots: HashMap::new(),
            freed: FreedHistory::new(),
            errors: Vec::new(),
            error_index: HashMap::new(),
            warnings: Vec::new(),
            time_origin: None,
        }
    }

    /// Decodes and feeds the record at the start of `record`; `offset` is its position in
    /// the ring or file, for the error. Returns the record's length.
    ///
    /// The hot records (allocations, frees, reallocs: nearly all of a trace) are decoded
    /// straight into their handlers, without building an [`Event`].
    #[inline]
    pub fn feed_record(&mut self, record: &[u8], offset: u64) -> Result<usize, DecodeError> {
        let (record_kind, record) = decode::record_at(record, offset)?;
        let payload = &record[wire::RECORD_HEADER_LEN..];
        match record_kind {
            wire::kind::ALLOC => self.alloc(&decode::Alloc::decode(payload, offset)?),
            wire::kind::FREE => self.free(&decode::Free::decode(payload, offset)?),
            wire::kind::REALLOC => self.realloc(&decode::Realloc::decode(payload, offset)?),
            wire::kind::STACK_DEF => {
                let s = decode::StackDefRef::decode(payload, offset)?;
                self.define_stack(s.pid, s.id, s.frames());
            }
            _ => self.feed(&decode::decode_payload(record_kind, payload, offset)?),
        }
        Ok(record.len())
    }

    /// Feeds every record of a trace file (as written by [`decode::TraceWriter`]).
    pub fn feed_trace(&mut self, trace: &[u8]) -> Result<(), DecodeError> {
        let body = decode::trace_body(trace)?;
        self.feed_records(body, wire::TRACE_HEADER_LEN as u64)
    }

    /// Feeds whole records laid end to end; `offset` is where `records` starts in the trace.
    /// Stops at the first record that cannot be decoded (a cut one included).
    pub fn feed_records(&mut self, records: &[u8], offset: u64) -> Result<(), DecodeError> {
        let mut pos = 0;
        while pos < records.len() {
            pos += self.feed_record(&records[pos..], offset + pos as u64)?;
        }
        Ok(())
    }

    /// Feeds a trace file read from `input` as a stream, a buffer at a time: a trace of
    /// gigabytes is never held in memory (nor copied into it at once). The result is the
    /// same as [`Analyzer::feed_trace`] on the whole file.
    pub fn feed_trace_from(&mut self, mut input: impl std::io::Read) -> Result<(), TraceError> {
        // Big enough for many records per read, and for the largest record.
        const BUFFER: usize = 1 << 20;
        const _: () = assert!(BUFFER >= wire::MAX_RECORD_LEN);
        let mut buf = vec![0u8; BUFFER];
        // `buf[..filled]` holds unread bytes; `buf[..start]` of them are consumed.
        let mut filled = fill(&mut input, &mut buf[..wire::TRACE_HEADER_LEN])?;
        decode::trace_body(&buf[..filled])?;
        let mut start = wire::TRACE_HEADER_LEN;
        // Offset in the file of `buf[start]`.
        let mut offset = wire::TRACE_HEADER_LEN as u64;
        loop {
            let n = fill(&mut input, &mut buf[filled..])?;
            filled += n;
            let at_end = filled < buf.len();
            // Feed every whole record in the buffer; a record cut by the buffer's end waits
            // for the next read, unless the file ends there.
            while start < filled {
                // A truncated record is reported before anything of it is fed.
                match self.feed_record(&buf[start..filled], offset) {
                    Ok(len) => {
                        start += len;
                        offset += len as u64;
                    }
                    Err(DecodeError::Truncated { .. }) if !at_end => break,
                    Err(e) => return Err(e.into()),
                }
            }
            if at_end {
                return Ok(());
            }
            buf.copy_within(start..filled, 0);
            filled -= start;
            start = 0;
        }
    }

    pub fn feed(&mut self, event: &Event) {
        match event {
            Event::Command { argv } => self.command = argv.clone(),
            Event::MainExit(m) => {
                let status = if m.how == 1 {
                    ExitStatus::Signal(m.value)
                } else {
                    ExitStatus::Code(m.value)
                };
                self.main_exit = Some((m.pid, status));
            }
            Event::ProcessStart(s) => self.process_start(s),
            Event::ProcessExit(x) => {
                let img = self.image_for(x.pid);
                let image = &mut self.images[img];
                image.end = Some(if x.how == wire::exit_how::UNDERSCORE_EXIT {
                    ProcessEnd::UnderscoreExit
                } else {
                    ProcessEnd::Exit
                });
                image.exit = Some(ExitStatus::Code(x.code));
            }
            Event::ModuleLoad(m) => self.module_load(m),
            Event::Exec(x) => {
                let img = self.image_for(x.pid);
                self.images[img].exec_pending = !x.failed;
            }
            Event::ModuleUnload(m) => {
                let img = self.image_for(m.pid);
                self.module_cache.clear();
                let modules = &self.modules;
                let loaded = &mut self.images[img].loaded;
                if let Some(i) = loaded
                    .iter()
                    .rposition(|&id| modules[id as usize].bias == m.bias)
                {
                    loaded.remove(i);
                }
            }
            Event::StackDef(s) => self.define_stack(s.pid, s.id, s.frames.iter().copied()),
            Event::Alloc(a) => self.alloc(a),
            Event::Free(f) => self.free(f),
            Event::Realloc(r) => self.realloc(r),
            Event::BadFree(b) => self.bad_free(b),
            Event::LeakBlocks(l) => {
                let img = self.image_for(l.pid);
                let image = &mut self.images[img];
                image.leak_entries.extend(l.entries.iter().map(|&e| {
                    // Size and stack 0: the shim lost them with the block's overwritten
                    // inline header (reported as an underflow); the live map has them.
                    match image.live.get(e.addr) {
                        Some(b) if e.size == 0 && e.stack == 0 => LeakEntry {
                            size: b.size,
                            stack: b.stack,
                            ..e
                        },
                        _ => e,
                    }
                }));
            }
            Event::ForkPrepare(f) => {
                let img = self.image_for(f.pid);
                let image = &self.images[img];
                let snapshot = ForkSnapshot {
                    image: img,
                    loaded: image.loaded.clone(),
                    live: image.live.clone(),
                };
                self.snapshots.insert((f.pid, f.token), snapshot);
            }
            Event::Notice(n) => self.warnings.push(Warning {
                pid: Some(n.pid),
                message: n.text.clone(),
            }),
            Event::ThreadStart(t) => {
                let img = self.image_for(t.pid);
                self.images[img].threads += 1;
            }
            Event::Fault(f) => self.fault(f),
            Event::FatalSignal(s) => self.fatal_signal(s),
            Event::Canary(c) => self.canary(c),
            Event::HeapStats(h) => {
                let img = self.image_for(h.pid);
                let stats = GuardStats {
                    guarded: h.guarded,
                    unguarded: h.unguarded,
                    quarantine_bytes_max: h.quarantine_bytes_max,
                    guard_budget_bytes: h.guard_budget_bytes,
                    sample: (h.sample_rate != 0).then_some(Sample {
                        first: h.sample_first,
                        rate: h.sample_rate,
                    }),
                };
                self.images[img]
                    .guard
                    .get_or_insert_with(GuardStats::default)
                    .merge(&stats);
            }
        }
    }

    /// Samples `img`'s bytes in use after an event at `time` (the shim's clock, ns).
    fn sample_timeline(&mut self, img: usize, time: u64) {
        if time != 0 && self.time_origin.is_none() {
            self.time_origin = Some(time);
        }
        let t = time.saturating_sub(self.time_origin.unwrap_or(time));
        self.images[img].timeline.sample(t);
    }

    /// Every process still running (as far as its events say), with the frees it has
    /// recorded so far in its current image: what a live run watches to see how hard a
    /// process is freeing.
    pub fn running_processes(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.current
            .iter()
            .map(|(&pid, &img)| (pid, &self.images[img]))
            .filter(|(_, image)| image.end.is_none())
            .map(|(pid, image)| (pid, image.frees))
    }

    /// The current image of `pid`, created if the trace never announced it.
    fn image_for(&mut self, pid: u32) -> usize {
        if let Some((p, img)) = self.last_image {
            if p == pid {
                return img;
            }
        }
        if let Some(&img) = self.current.get(&pid) {
            self.last_image = Some((pid, img));
            return img;
        }
        self.images
            .push(Image::new(pid, 0, String::new(), ProcessStartKind::Unknown));
        let img = self.images.len() - 1;
        self.current.insert(pid, img);
        img
    }

    fn process_start(&mut self, s: &decode::ProcessStart) {
        let start = if s.flags & wire::start_flags::EXECED != 0 {
            ProcessStartKind::Exec
        } else if s.flags & wire::start_flags::FORKED != 0 {
            ProcessStartKind::Fork
        } else if s.flags & wire::start_flags::MAIN != 0 {
            ProcessStartKind::Main
        } else {
            ProcessStartKind::Unknown
        };
        let mut start = start;
        if let Some(&old) = self.current.get(&s.pid) {
            if self.images[old].exec_pending && start != ProcessStartKind::Fork {
                start = ProcessStartKind::Exec;
            }
            let old_image = &mut self.images[old];
            if old_image.end.is_none() {
                // After exec the old image is gone without a leak check; a reused pid
                // without exec means the old process died unseen.
                old_image.end = Some(if start == ProcessStartKind::Exec {
                    ProcessEnd::Exec
                } else {
                    ProcessEnd::Died
                });
            }
        }
        // A forked child names its parent in the fork token: getppid() at its start may
        // already be fencepost (the subreaper) if the parent exited first (double fork).
        let ppid = if start == ProcessStartKind::Fork && s.token >> 32 != 0 {
            (s.token >> 32) as u32
        } else {
            s.ppid
        };
        let mut image = Image::new(s.pid, ppid, s.exe.clone(), start);
        if start == ProcessStartKind::Fork {
            match self.take_snapshot(ppid, s.token) {
                Some(snap) => {
                    image.parent = Some(snap.image);
                    image.loaded = snap.loaded;
                    image.inherited = snap.live.len() as u64;
                    image.allocations = image.inherited;
                    image.bytes_allocated = snap
                        .live
                        .values()
                        .fold(0u64, |sum, b| sum.saturating_add(b.size));
                    image.live = snap.live;
                    image.timeline = TimelineBuilder::starting_at(image.bytes_allocated);
                }
                None => self.warnings.push(Warning {
                    pid: Some(s.pid),
                    message: format!(
                        "forked child {} has no matching fork record from its parent {}: \
                         inherited blocks and stacks are unknown",
                        s.pid, s.ppid
                    ),
                }),
            }
        }
        self.images.push(image);
        self.current.insert(s.pid, self.images.len() - 1);
        self.last_image = None;
    }

    fn take_snapshot(&mut self, ppid: u32, token: u64) -> Option<ForkSnapshot> {
        if let Some(snap) = self.snapshots.remove(&(ppid, token)) {
            return Some(snap);
        }
        // The parent may be known under another pid (e.g. a pid namespace): match the token.
        let key = self.snapshots.keys().find(|k| k.1 == token).copied()?;
        self.snapshots.remove(&key)
    }

    fn module_load(&mut self, m: &decode::ModuleLoad) {
        let img = self.image_for(m.pid);
        let key = (m.path.clone(), m.build_id.clone(), m.bias);
        let id = match self.module_index.get(&key) {
            Some(&id) => id,
            None => {
                let next_file = self.file_ids.len() as u32;
                let file_id = *self
                    .file_ids
                    .entry((m.path.clone(), m.build_id.clone()))
                    .or_insert(next_file);
                let ranges = m
                    .segments
                    .iter()
                    .map(|s| {
                        let start = m.bias.wrapping_add(s.vaddr);
                        (start, start.saturating_add(s.memsz))
                    })
                    .collect();
                self.modules.push(ModuleInfo {
                    path: m.path.clone(),
                    build_id: m.build_id.clone(),
                    bias: m.bias,
                    ranges,
                    file_id,
                });
                let id = (self.modules.len() - 1) as u32;
                self.module_index.insert(key, id);
                id
            }
        };
        self.module_cache.clear();
        let loaded = &mut self.images[img].loaded;
        let modules = &self.modules;
        // A module announced again at the same bias replaces the old mapping.
        loaded.retain(|&l| modules[l as usize].bias != m.bias);
        loaded.push(id);
    }

    /// Stores stack `id` of `pid`'s image, its pcs resolved against the modules mapped now.
    fn define_stack(&mut self, pid: u32, id: u32, pcs: impl ExactSizeIterator<Item = u64>) {
        let img = self.image_for(pid);
        let start = self.images[img].stack_frames.len();
        self.images[img].stack_frames.reserve(pcs.len());
        for pc in pcs {
            let module = self.module_at_cached(img, pc);
            self.images[img]
                .stack_frames
                .push(ResolvedPc { pc, module });
        }
        let image = &mut self.images[img];
        let end = image.stack_frames.len();
        image.stacks.insert(id, start..end);
    }

    /// [`Analyzer::module_at`] through a small direct-mapped cache: a program's stacks share
    /// most of their pcs, and a stack definition resolves every one of them.
    fn module_at_cached(&mut self, img: usize, pc: u64) -> Option<u32> {
        let slot = ModuleCache::slot(img, pc);
        if let Some(module) = self.module_cache.get(slot, img, pc) {
            return module;
        }
        let module = self.module_at(img, pc);
        self.module_cache.put(slot, img, pc, module);
        module
    }

    /// The module mapped at return address `pc` in the image right now.
    fn module_at(&self, img: usize, pc: u64) -> Option<u32> {
        // A return address may sit just past its call's function: look up pc - 1. A faulting
        // pc (frame 0 of a fault's stack) is exact, and may be a module's first byte.
        let find = |probe: u64| {
            self.images[img].loaded.iter().rev().copied().find(|&id| {
                self.modules[id as usize]
                    .ranges
                    .iter()
                    .any(|&(start, end)| probe >= start && probe < end)
            })
        };
        find(pc.saturating_sub(1)).or_else(|| find(pc))
    }

    fn allocate(&mut self, img: usize, addr: u64, size: u64, stack: u32, func: u8) {
        if addr == 0 {
            return;
        }
        let image = &mut self.images[img];
        image.allocations += 1;
        image.bytes_allocated = image.bytes_allocated.saturating_add(size);
        image.timeline.add(size);
        if let Some(old) = image.live.insert(addr, Block { size, stack, func }) {
            image.timeline.sub(old.size);
            // The old block's free was never seen: count it freed to keep the balance.
            image.frees += 1;
            image.unknown_frees += 1;
        }
    }

    /// Removes a live block, remembering it in the freed history. Returns it if it was live.
    fn release(&mut self, img: usize, addr: u64, free_stack: u32) -> Option<Block> {
        let image = &mut self.images[img];
        let block = image.live.remove(addr)?;
        image.frees += 1;
        image.timeline.sub(block.size);
        self.freed.remember(
            img,
            addr,
            FreedBlock {
                size: block.size,
                alloc_stack: block.stack,
                free_stack,
                alloc_func: block.func,
            },
        );
        Some(block)
    }

    fn alloc(&mut self, a: &decode::Alloc) {
        let img = self.image_for(a.pid);
        self.allocate(img, a.addr, a.size, a.stack, a.func);
        self.sample_timeline(img, a.time);
    }

    fn realloc(&mut self, r: &decode::Realloc) {
        let img = self.image_for(r.pid);
        // realloc(p, 0) that returned NULL freed p; a NULL result with a size is
        // a failed realloc and p stays live.
        let freed_old = r.old != 0 && (r.new != 0 || r.size == 0);
        if freed_old && self.release(img, r.old, r.stack).is_none() {
            self.images[img].unknown_frees += 1;
        }
        if r.new != 0 {
            self.allocate(img, r.new, r.size, r.stack, r.func);
        }
        self.sample_timeline(img, r.time);
    }

    fn free(&mut self, f: &decode::Free) {
        let img = self.image_for(f.pid);
        let block = self.release(img, f.addr, f.stack);
        if block.is_none() {
            self.images[img].unknown_frees += 1;
        }
        self.sample_timeline(img, f.time);
        if f.flags & wire::FREE_MISMATCHED == 0 {
            return;
        }
        let alloc_name = match block {
            Some(b) => wire::func::name(b.func),
            None => family_name(f.block_family),
        };
        let alloc_func = block.map_or(0, |b| b.func);
        self.record_error(
            ErrorKey {
                image: img,
                kind: Some(ErrorKind::MismatchedFree),
                stack: f.stack,
                call: f.func,
                alloc_func,
                ..ErrorKey::default()
            },
            || PendingError {
                alloc_stack: block.map(|b| b.stack),
                block: Some(BlockInfo {
                    address: f.addr,
                    size: block.map_or(0, |b| b.size),
                    offset: 0,
                    allocated_by: Some(alloc_name.to_string()),
                    freed_by: None,
                }),
                message: format!(
                    "{} of a block allocated with {}",
                    call_name(f.func),
                    alloc_name
                ),
                ..PendingError::release(ErrorKind::MismatchedFree, img, f.tid, f.func, f.stack)
            },
        );
    }

    fn bad_free(&mut self, b: &decode::BadFree) {
        let img = self.image_for(b.pid);
        let image = &self.images[img];
        let call = call_name(b.func);
        let (kind, alloc_func, pending) = if let Some(freed) = self.freed_block(img, b.addr) {
            (
                ErrorKind::DoubleFree,
                freed.alloc_func,
                PendingError {
                    alloc_stack: Some(freed.alloc_stack),
                    free_stack: Some(freed.free_stack),
                    block: Some(BlockInfo {
                        address: b.addr,
                        size: freed.size,
                        offset: 0,
                        allocated_by: Some(wire::func::name(freed.alloc_func).to_string()),
                        freed_by: None,
                    }),
                    message: format!("{call} of a block that was already freed"),
                    ..PendingError::release(ErrorKind::DoubleFree, img, b.tid, b.func, b.stack)
                },
            )
        } else if let Some((start, block)) = image.live_containing(b.addr) {
            let offset = b.addr - start;
            (
                ErrorKind::InvalidFree,
                block.func,
                PendingError {
                    alloc_stack: Some(block.stack),
                    block: Some(BlockInfo {
                        address: start,
                        size: block.size,
                        offset: offset as i64,
                        allocated_by: Some(wire::func::name(block.func).to_string()),
                        freed_by: None,
                    }),
                    message: format!(
                        "{call} of an address {offset} {} inside a block of {} {}",
                        plural(offset, "byte", "bytes"),
                        block.size,
                        plural(block.size, "byte", "bytes"),
                    ),
                    ..PendingError::release(ErrorKind::InvalidFree, img, b.tid, b.func, b.stack)
                },
            )
        } else {
            let place = match self.module_data_at(img, b.addr) {
                Some(path) => format!("{:#x} is in the memory of {path}", b.addr),
                None => format!("{:#x} is not in any heap block", b.addr),
            };
            (
                ErrorKind::InvalidFree,
                0,
                PendingError {
                    message: format!("{call} of an address that was never allocated ({place})"),
                    ..PendingError::release(ErrorKind::InvalidFree, img, b.tid, b.func, b.stack)
                },
            )
        };
        self.record_error(
            ErrorKey {
                image: img,
                kind: Some(kind),
                stack: b.stack,
                call: b.func,
                alloc_func,
                ..ErrorKey::default()
            },
            || pending,
        );
    }

    /// The block freed last at `addr` in `img`, if remembered and not allocated again since.
    fn freed_block(&self, img: usize, addr: u64) -> Option<FreedBlock> {
        if self.images[img].live.contains_key(addr) {
            return None;
        }
        self.freed.get(img, addr)
    }

    /// The path of the module whose segments contain `addr` (a global variable).
    fn module_data_at(&self, img: usize, addr: u64) -> Option<&str> {
        self.images[img]
            .loaded
            .iter()
            .map(|&id| &self.modules[id as usize])
            .find(|m| m.ranges.iter().any(|&(s, e)| addr >= s && addr < e))
            .map(|m| m.path.as_str())
    }

    fn record_error(&mut self, key: ErrorKey, make: impl FnOnce() -> PendingError) {
        let index = match self.error_index.get(&key) {
            Some(&i) => i,
            None => {
                self.errors.push(make());
                let i = self.errors.len() - 1;
                self.error_index.insert(key, i);
                i
            }
        };
        self.errors[index].count += 1;
    }

    /// Ends the analysis: classifies what is left, groups, symbolizes and sorts.
    pub fn finish(mut self, symbols: &mut impl SymbolSource) -> Report {
        for image in self.images.iter_mut() {
            if image.end.is_none() && image.exec_pending {
                // Replaced by a program that is not followed (--trace-children=no).
                image.end = Some(ProcessEnd::Exec);
            }
        }
        if let Some((pid, _)) = self.main_exit {
            // The CLI started this pid: its first image is the main process.
            if let Some(first) = self.images.iter_mut().find(|i| i.pid == pid) {
                if first.start == ProcessStartKind::Unknown {
                    first.start = ProcessStartKind::Main;
                }
            }
        }
        if let Some((pid, status)) = self.main_exit {
            if let Some(&img) = self.current.get(&pid) {
                let image = &mut self.images[img];
                if image.exit.is_none() || matches!(status, ExitStatus::Signal(_)) {
                    image.exit = Some(status);
                }
            }
        }
        let mut stacks = StackResolver {
            analyzer: &self,
            symbols,
            cache: HashMap::new(),
        };

        let mut summary = Summary::default();
        let mut processes = Vec::new();
        let mut leaks: Vec<LossRecord> = Vec::new();
        let mut warnings = Vec::new();
        for (img, image) in self.images.iter().enumerate() {
            let end = image.end.unwrap_or(ProcessEnd::Died);
            processes.push(ProcessReport {
                pid: image.pid,
                ppid: image.ppid,
                exe: image.exe.clone(),
                start: image.start,
                end,
                exit: image.exit,
                threads: image.threads,
                allocations: image.allocations,
                frees: image.frees,
                bytes_allocated: image.bytes_allocated,
                inherited: image.inherited,
                guard: image.guard,
            });
            if end == ProcessEnd::Exec {
                continue;
            }
            if let Some(g) = &image.guard {
                summary
                    .guard
                    .get_or_insert_with(GuardStats::default)
                    .merge(g);
            }
            summary.allocations += image.allocations;
            summary.frees += image.frees;
            summary.bytes_allocated = summary
                .bytes_allocated
                .saturating_add(image.bytes_allocated);
            summary.inherited += image.inherited;

            // Blocks grouped by (kind, stack) in first-seen order, so equal sizes sort stably.
            // The entry point (`func`) is the first block's: one call site calls one function.
            let mut groups: Vec<(LeakKind, u32, u64, u64, Option<u8>)> = Vec::new();
            let mut group_index: HashMap<(LeakKind, u32), usize> = HashMap::new();
            let mut add = |kind: LeakKind, stack: u32, size: u64, func: Option<u8>| {
                let i = *group_index.entry((kind, stack)).or_insert_with(|| {
                    groups.push((kind, stack, 0, 0, func));
                    groups.len() - 1
                });
                groups[i].2 = groups[i].2.saturating_add(size);
                groups[i].3 += 1;
            };
            let classified = matches!(end, ProcessEnd::Exit | ProcessEnd::UnderscoreExit)
                || !image.leak_entries.is_empty();
            if classified {
                let mut unknown_class = 0u64;
                for e in &image.leak_entries {
                    let kind = match e.class {
                        wire::leak::DEFINITE => LeakKind::Definite,
                        wire::leak::INDIRECT => LeakKind::Indirect,
                        wire::leak::POSSIBLE => LeakKind::Possible,
                        wire::leak::REACHABLE => LeakKind::Reachable,
                        _ => {
                            unknown_class += 1;
                            LeakKind::Definite
                        }
                    };
                    add(
                        kind,
                        e.stack,
                        e.size,
                        image.live.get(e.addr).map(|b| b.func),
                    );
                }
                if unknown_class > 0 {
                    warnings.push(Warning {
                        pid: Some(image.pid),
                        message: format!(
                            "{unknown_class} leaked blocks had an unknown class; reported as definite"
                        ),
                    });
                }
                let tracked = image.live.len() as u64;
                if tracked != image.leak_entries.len() as u64 {
                    warnings.push(Warning {
                        pid: Some(image.pid),
                        message: format!(
                            "the shim classified {} blocks at exit but the analyzer tracked {} \
                             live blocks; the leak records follow the shim",
                            image.leak_entries.len(),
                            tracked
                        ),
                    });
                }
            } else {
                for block in image.live.values() {
                    add(
                        LeakKind::Unreleased,
                        block.stack,
                        block.size,
                        Some(block.func),
                    );
                }
            }
            for (kind, stack, bytes, blocks, func) in groups {
                let symbolized = match &self.options.symbolized_leak_kinds {
                    Some(kinds) => kinds.contains(&kind),
                    None => true,
                };
                leaks.push(LossRecord {
                    kind,
                    bytes,
                    blocks,
                    pid: image.pid,
                    allocated_by: func.map(|f| wire::func::name(f).to_string()),
                    stack: if symbolized {
                        stacks.stack(img, stack)
                    } else {
                        stacks.unsymbolized(img, stack)
                    },
                    fingerprint: String::new(),
                });
            }
            if image.unknown_frees > 0 {
                warnings.push(Warning {
                    pid: Some(image.pid),
                    message: format!(
                        "{} releases of blocks the analyzer did not see allocated",
                        image.unknown_frees
                    ),
                });
            }
        }
        // Biggest first; the sort is stable, so ties keep process and first-seen order.
        leaks.sort_by_key(|l| std::cmp::Reverse(l.bytes));

        let errors: Vec<ErrorReport> = self
            .errors
            .iter()
            .map(|e| ErrorReport {
                kind: e.kind,
                pid: self.images[e.image].pid,
                thread: e.tid,
                count: e.count,
                call: e.call.map(|c| wire::func::name(c).to_string()),
                access: e.access.clone(),
                block: e.block.clone(),
                signal: e.signal,
                signal_code: e.signal_code,
                fault_address: e.fault_address,
                found_at: e.found_at,
                advice: e.advice.clone(),
                stack: e
                    .stack
                    .map(|s| stacks.stack_from(e.image, s, e.stack_starts_at_pc))
                    .unwrap_or_default(),
                alloc_stack: e.alloc_stack.map(|s| stacks.stack(e.image, s)),
                free_stack: e.free_stack.map(|s| stacks.stack(e.image, s)),
                message: e.message.clone(),
                fingerprint: String::new(),
            })
            .collect();

        let mut leaked = LeakTotals::default();
        for l in &leaks {
            leaked.get_mut(l.kind).add(l.bytes, l.blocks, 1);
            summary.in_use_at_exit.add(l.bytes, l.blocks, 1);
        }
        summary.leaked = leaked;
        summary.processes = processes.len() as u64;
        summary.errors = errors.iter().map(|e| e.count).sum();
        summary.error_contexts = errors.len() as u64;

        let mut all_warnings = self.warnings.clone();
        all_warnings.extend(warnings);
        let mut report = Report {
            schema: SCHEMA.to_string(),
            command: self.command.clone(),
            // The CLI's wait status; a trace without it falls back on the main image's own exit.
            exit: self.main_exit.map(|(_, s)| s).or_else(|| {
                let main = self
                    .images
                    .iter()
                    .find(|i| i.start == ProcessStartKind::Main)?;
                let &img = self.current.get(&main.pid)?;
                self.images[img].exit
            }),
            summary,
            processes,
            errors,
            leaks,
            warnings: all_warnings,
            suppressed: Vec::new(),
            baseline: None,
            timeline: self
                .images
                .iter()
                .enumerate()
                .filter_map(|(i, image)| image.timeline.finish(i, image.pid))
                .collect(),
        };
        crate::fingerprint::assign(&mut report);
        report
    }
}

/// Why a trace read as a stream ([`Analyzer::feed_trace_from`]) could not be fed.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn fill(input: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Turns (image, stack id) into report frames, symbolizing each pc once.
struct StackResolver<'a, S: SymbolSource> {
    analyzer: &'a Analyzer,
    symbols: &'a mut S,
    /// (module file id, module-relative pc, is a return address) → frames.
    cache: HashMap<(u32, u64, bool), Vec<SymbolizedFrame>>,
}

impl<'a, S: SymbolSource> StackResolver<'a, S> {
    /// The image's definition of `id`, or an ancestor's for stacks a forked child inherited.
    fn lookup(&self, mut img: usize, id: u32) -> Option<&'a [ResolvedPc]> {
        let images = &self.analyzer.images;
        loop {
            let image = &images[img];
            if let Some(range) = image.stacks.get(&id) {
                return Some(&image.stack_frames[range.clone()]);
            }
            img = image.parent?;
        }
    }

    /// A stack whose frames are all return addresses (allocations, frees, leaks).
    fn stack(&mut self, img: usize, id: u32) -> Stack {
        self.stack_from(img, id, false)
    }

    /// The stack's return addresses and their modules, not symbolized, `--num-callers` of them.
    fn unsymbolized(&self, img: usize, id: u32) -> Stack {
        let Some(pcs) = self.lookup(img, id) else {
            return Vec::new();
        };
        let limit = match self.analyzer.options.num_callers {
            0 => usize::MAX,
            n => n,
        };
        pcs.iter()
            .take(limit)
            .map(|rpc| Frame {
                address: rpc.pc,
                module: rpc
                    .module
                    .map(|m| self.analyzer.modules[m as usize].path.clone()),
                function: None,
                file: None,
                line: None,
                inlined: false,
            })
            .collect()
    }

    /// With `starts_at_pc`, frame 0 is a faulting pc, symbolized as is rather than as the
    /// call instruction before a return address.
    fn stack_from(&mut self, img: usize, id: u32, starts_at_pc: bool) -> Stack {
        let Some(pcs) = self.lookup(img, id) else {
            return Vec::new();
        };
        let limit = match self.analyzer.options.num_callers {
            0 => usize::MAX,
            n => n,
        };
        let mut out = Vec::new();
        for (index, rpc) in pcs.iter().enumerate() {
            let is_return_address = !(starts_at_pc && index == 0);
            if out.len() >= limit {
                break;
            }
            let Some(module_id) = rpc.module else {
                out.push(Frame {
                    address: rpc.pc,
                    module: None,
                    function: None,
                    file: None,
                    line: None,
                    inlined: false,
                });
                continue;
            };
            let module = &self.analyzer.modules[module_id as usize];
            let key = (
                module.file_id,
                rpc.pc.wrapping_sub(module.bias),
                is_return_address,
            );
            let hide_below_main = !self.analyzer.options.show_below_main;
            let symbols = &mut *self.symbols;
            let frames = self.cache.entry(key).or_insert_with(|| {
                let module_ref = ModuleRef {
                    path: &module.path,
                    build_id: &module.build_id,
                    bias: module.bias,
                };
                // A frame below main is cut, never shown: its name from the symbol tables
                // is enough, and spares reading its module's DWARF (libc's is 15 MB once
                // inflated) for a stack that never reached a `main` by name (a stripped
                // program's).
                if hide_below_main {
                    let name = symbols.function_symbol(&module_ref, rpc.pc, is_return_address);
                    if is_below_main(name.as_deref()) {
                        return vec![SymbolizedFrame {
                            function: name,
                            ..SymbolizedFrame::default()
                        }];
                    }
                }
                symbols.symbolize(&module_ref, rpc.pc, is_return_address)
            });
            if frames.is_empty() {
                frames.push(SymbolizedFrame {
                    function: None,
                    file: None,
                    line: None,
                    column: None,
                    inlined: false,
                });
            }
            let mut reached_main = false;
            if hide_below_main && frames.iter().any(|f| is_below_main(f.function.as_deref())) {
                // A program without a `main` symbol (stripped): stop at the C runtime.
                break;
            }
            for f in frames.iter() {
                if out.len() >= limit {
                    break;
                }
                reached_main |= f.function.as_deref() == Some("main");
                out.push(Frame {
                    address: rpc.pc,
                    module: Some(module.path.clone()),
                    function: f.function.clone(),
                    file: f.file.clone(),
                    line: f.line,
                    inlined: f.inlined,
                });
            }
            if reached_main && !self.analyzer.options.show_below_main {
                break;
            }
        }
        out
    }
}

/// The C runtime's start-up functions, which call `main`.
fn is_below_main(function: Option<&str>) -> bool {
    matches!(
        function,
        Some(
            "__libc_start_call_main"
                | "__libc_start_main"
                | "__libc_start_main_impl"
                | "_start"
                // The shim's own caller of `main` (it interposes `__libc_start_main`), seen
                // when the program has no `main` symbol (stripped).
                | "fencepost_shim::process::main_trampoline"
        )
    )
}

/// How a release call is named in messages: `free()` but `operator delete`.
pub(crate) fn call_name(func: u8) -> String {
    let name = wire::func::name(func);
    if name.starts_with("operator") || name == "?" {
        name.to_string()
    } else {
        format!("{name}()")
    }
}

fn family_name(family: u8) -> &'static str {
    match family {
        wire::family::MALLOC => "malloc",
        wire::family::NEW => "operator new",
        wire::family::NEW_ARRAY => "operator new[]",
        _ => "an unknown allocator",
    }
}

pub(crate) fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}
