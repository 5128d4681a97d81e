//! Leak classification at exit, in memcheck's terms.
//!
//! Roots are the process's writable memory (module data, every thread's stack, TLS, and
//! anonymous mappings), minus the heap regions themselves and the shim's own memory. From the
//! roots we mark blocks: a start pointer from a root or a reachable block makes a block
//! `reachable`; any other pointer makes it `possible`. Blocks never marked are lost; each lost
//! block not reached from another lost block leads a clique (`definite`) and the lost blocks
//! reachable from it are `indirect`. Memory is read with `process_vm_readv` on ourselves, so
//! a mapping that vanishes under us is an error code, not a crash.

use crate::inline;
use crate::table::{self, BlockMeta};
use crate::threads::StackUse;
use crate::wire::{self, kind, leak};
use crate::{arena, process, ring};
use core::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Copy)]
#[repr(C)]
struct Block {
    addr: u64,
    meta: BlockMeta,
}

const UNREACHED: u8 = 0;

/// glibc's non-main arenas are mmap'd heaps aligned to their maximum size (64 MiB). One bit
/// per 64 MiB of address space says "a block was allocated here", so that at exit an arena
/// whose blocks were all freed is still known to be heap (its free chunks hold stale
/// pointers that must not count as roots).
const ARENA_SHIFT: u32 = 26;
static HEAP_REGIONS: [AtomicU64; 1 << (47 - ARENA_SHIFT - 6)] =
    [const { AtomicU64::new(0) }; 1 << (47 - ARENA_SHIFT - 6)];

/// Called for every block handed out: remembers its 64 MiB region.
#[inline]
pub fn note_heap_address(addr: u64) {
    let region = (addr >> ARENA_SHIFT) as usize;
    let (word, bit) = (region / 64, 1u64 << (region % 64));
    if let Some(w) = HEAP_REGIONS.get(word) {
        if w.load(Ordering::Relaxed) & bit == 0 {
            w.fetch_or(bit, Ordering::Relaxed);
        }
    }
}

/// Whether the writable mapping `[lo, hi)` is one of glibc's arena heaps: it starts a
/// 64 MiB region where blocks were handed out, and it starts with glibc's `heap_info`
/// (arena pointer, previous heap, size in use, size made writable) describing exactly
/// this mapping. The program's own mappings can start on such a boundary too
/// (cc1's, one run in twenty): taken for heap, their pointers went unscanned and the
/// blocks they held were reported lost.
fn is_arena_start(lo: usize, hi: usize) -> bool {
    if lo & ((1 << ARENA_SHIFT) - 1) != 0 || hi <= lo {
        return false;
    }
    let region = lo >> ARENA_SHIFT;
    let noted = HEAP_REGIONS
        .get(region / 64)
        .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (region % 64)) != 0);
    if !noted || hi - lo < 4096 {
        return false;
    }
    // SAFETY: the mapping is writable (so readable) and at least a page long.
    let [arena, prev, size, writable] = unsafe { core::ptr::read(lo as *const [usize; 4]) };
    // (glibc 2.35 added a page size after these four; older ones have padding there.)
    arena != 0
        && arena % 8 == 0
        && prev % (1 << ARENA_SHIFT) == 0
        && writable == hi - lo
        && size != 0
        && size <= writable
        && size % 4096 == 0
}

struct Scan {
    blocks: *mut Block,
    n: usize,
    state: *mut u8,
    clique: *mut u32,
    stack: *mut u32,
    sp: usize,
    buf: *mut u8,
    /// `/proc/self/pagemap`, or -1: tells which pages of a big block were never touched.
    pagemap: i32,
}

const BUF_LEN: usize = 1 << 16;

impl Scan {
    fn blocks(&self) -> &[Block] {
        // SAFETY: `blocks` holds `n` initialized entries for the scan's life.
        unsafe { core::slice::from_raw_parts(self.blocks, self.n) }
    }
    fn state(&mut self) -> &mut [u8] {
        // SAFETY: `state` holds `n` bytes.
        unsafe { core::slice::from_raw_parts_mut(self.state, self.n) }
    }

    /// Index of the block containing `p`, if any.
    fn find(&self, p: u64) -> Option<usize> {
        let b = self.blocks();
        let i = b.partition_point(|x| x.addr <= p);
        if i == 0 {
            return None;
        }
        let blk = &b[i - 1];
        if p < blk.addr + blk.meta.size || p == blk.addr {
            Some(i - 1)
        } else {
            None
        }
    }
}

/// Classifies every live block and emits the LeakBlocks and ProcessExit records.
/// Called once, from the exit path, with `sp` the stack pointer at entry.
pub fn classify_and_report(sp: usize, how: u32, code: i32) {
    table::lock_all();
    let n = table::live_count() + inline::live_count() + crate::guard::live_count();
    let bytes = |per: usize| (n.max(1)) * per;
    let blocks = arena::alloc(bytes(core::mem::size_of::<Block>())) as *mut Block;
    let state = arena::alloc(bytes(1));
    let clique = arena::alloc(bytes(4)) as *mut u32;
    let stack = arena::alloc(bytes(8)) as *mut u32;
    let buf = arena::alloc(BUF_LEN);
    if blocks.is_null() || state.is_null() || clique.is_null() || stack.is_null() || buf.is_null() {
        table::unlock_all();
        emit_exit(how, code);
        return;
    }
    let mut i = 0;
    let mut add = |addr, meta| {
        if i < n {
            // SAFETY: i < n, the array has n slots.
            unsafe { *blocks.add(i) = Block { addr, meta } };
            i += 1;
        }
    };
    table::for_each(&mut add);
    inline::for_each(&mut add);
    crate::guard::for_each_live(&mut add);
    table::unlock_all();
    // SAFETY: opening a proc file read-only; closed below.
    let pagemap = unsafe {
        libc::open(
            c"/proc/self/pagemap".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    let mut scan = Scan {
        blocks,
        n: i,
        state,
        clique,
        stack,
        sp,
        buf,
        pagemap,
    };
    // SAFETY: the first `i` entries were written above.
    unsafe { core::slice::from_raw_parts_mut(blocks, scan.n) }.sort_unstable_by_key(|b| b.addr);

    check_canaries(&scan);
    mark_from_roots(&mut scan);
    mark_cliques(&mut scan);
    emit_classes(&scan);
    if pagemap >= 0 {
        // SAFETY: our own fd, opened above.
        unsafe { libc::close(pagemap) };
    }
    emit_heap_stats();
    emit_exit(how, code);
}

/// Blocks at least this big are scanned around their untouched pages.
const SPARSE_FROM: usize = 1 << 16;

/// Which `BUF_LEN` chunks of the block `[lo, hi)` (chunk i starts at `lo + i * BUF_LEN`)
/// hold a page that was ever touched: present or swapped out in `/proc/self/pagemap`.
/// The others are anonymous memory never written or read (every heap block is anonymous:
/// glibc's heap, its mmap'd chunks, the guard heap), which reads as zeros and holds no
/// pointer. Read for the whole block before any of it is scanned: reading a page through
/// the kernel maps the zero page for its whole 2 MiB neighbourhood, which would then look
/// touched. Returns the bitmap (arena memory, `bits` bits) or None when it cannot tell.
fn touched_chunks(scan: &Scan, lo: usize, hi: usize) -> Option<(*mut u64, usize)> {
    const PRESENT: u64 = 1 << 63;
    const SWAPPED: u64 = 1 << 62;
    const BATCH: usize = 512;
    if scan.pagemap < 0 || hi <= lo {
        return None;
    }
    let bits = (hi - lo).div_ceil(BUF_LEN);
    let words = bits.div_ceil(64);
    let map = arena::alloc(words * 8) as *mut u64;
    if map.is_null() {
        return None;
    }
    let (first, last) = (lo / 4096, (hi - 1) / 4096);
    let mut entries = [0u64; BATCH];
    let mut page = first;
    while page <= last {
        let count = (last + 1 - page).min(BATCH);
        // SAFETY: reads `count` 8-byte entries into our own array.
        let got = unsafe {
            libc::pread(
                scan.pagemap,
                entries.as_mut_ptr() as *mut libc::c_void,
                count * 8,
                (page * 8) as libc::off_t,
            )
        };
        if got != (count * 8) as isize {
            arena::free(map as *mut u8, words * 8);
            return None;
        }
        for (k, e) in entries[..count].iter().enumerate() {
            if e & (PRESENT | SWAPPED) == 0 {
                continue;
            }
            // The chunks this page overlaps.
            let p_lo = ((page + k) * 4096).max(lo);
            let p_hi = ((page + k + 1) * 4096).min(hi);
            for chunk in (p_lo - lo) / BUF_LEN..=(p_hi - 1 - lo) / BUF_LEN {
                // SAFETY: chunk < bits, so chunk / 64 < words.
                unsafe { *map.add(chunk / 64) |= 1 << (chunk % 64) };
            }
        }
        page += count;
    }
    Some((map, bits))
}

/// Overruns into the canaries of blocks that were never freed are found here.
fn check_canaries(scan: &Scan) {
    for b in scan.blocks() {
        if let Some((offset, len)) = crate::interpose::check_block(b.addr, &b.meta) {
            crate::interpose::emit_canary(b.addr, &b.meta, 0, offset, len);
        }
    }
}

fn emit_heap_stats() {
    use crate::guard;
    let record = wire::HeapStatsRecord {
        pid: process::pid(),
        guarded: guard::GUARDED_BLOCKS.load(Ordering::Relaxed),
        unguarded: guard::UNGUARDED_BLOCKS.load(Ordering::Relaxed),
        quarantine_bytes_max: guard::quarantine_max_seen(),
        guard_budget_bytes: guard::GUARD_BUDGET.load(Ordering::Relaxed),
        sample_first: crate::sample::FIRST.load(Ordering::Relaxed),
        sample_rate: crate::sample::RATE.load(Ordering::Relaxed),
    };
    let mut p = [0u8; wire::HEAP_STATS_LEN];
    record.write(&mut wire::PayloadWriter::new(&mut p));
    ring::emit(kind::HEAP_STATS, &[&p]);
}

fn emit_exit(how: u32, code: i32) {
    let mut p = [0u8; wire::PROCESS_EXIT_LEN];
    let mut w = wire::PayloadWriter::new(&mut p);
    w.u32(process::pid());
    w.u32(how);
    w.i32(code);
    w.u32(0);
    w.u64(crate::sys::now_ns());
    ring::emit(kind::PROCESS_EXIT, &[&p]);
}

/// Copies `[at, at+out.len()*8)` of our own memory into `out` through the kernel, so a
/// mapping that vanished under us is an error code, not a crash. Returns the bytes read.
fn read_self(at: usize, out: &mut [u64]) -> usize {
    let local = libc::iovec {
        iov_base: out.as_mut_ptr() as *mut libc::c_void,
        iov_len: out.len() * 8,
    };
    let remote = libc::iovec {
        iov_base: at as *mut libc::c_void,
        iov_len: out.len() * 8,
    };
    // SAFETY: the kernel checks the remote range and writes at most `out`'s length.
    let got = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if got <= 0 {
        0
    } else {
        got as usize & !7
    }
}

/// Calls `f(scan, word)` for every aligned 8-byte word of `[lo, hi)`.
///
/// `from_start`: `[lo, hi)` is a heap block. Step in 8s from `lo` itself, not from the
/// next 8-aligned address: a heap block may start at any address (natural alignment), and
/// the pointers in it sit at 8-byte offsets from its start (`struct { char *name; ...;
/// char tail[]; }` in a 19-byte block); memory of the program's own (data, stacks) is
/// scanned 8-aligned. A big block's untouched pages are skipped (see `touched_chunks`).
fn scan_words(
    scan: &mut Scan,
    lo: usize,
    hi: usize,
    from_start: bool,
    mut f: impl FnMut(&mut Scan, u64),
) {
    let mut at = if from_start { lo } else { (lo + 7) & !7 };
    let touched = if from_start && hi - lo >= SPARSE_FROM {
        touched_chunks(scan, lo, hi)
    } else {
        None
    };
    while at + 8 <= hi {
        let want = ((hi - at) & !7).min(BUF_LEN);
        if let Some((map, _)) = touched {
            // Skip the stretch when every chunk it overlaps is untouched (it is one chunk
            // unless an unreadable page shifted the walk off the chunk grid).
            let chunks = (at - lo) / BUF_LEN..=(at + want - 1 - lo) / BUF_LEN;
            // SAFETY: every chunk index is below `bits`: at + want <= hi.
            let bit = |c: usize| unsafe { *map.add(c / 64) } & (1 << (c % 64)) != 0;
            if !chunks.into_iter().any(bit) {
                at += want;
                continue;
            }
        }
        // SAFETY: `buf` is BUF_LEN bytes of arena memory that only this function uses.
        let words = unsafe { core::slice::from_raw_parts_mut(scan.buf as *mut u64, want / 8) };
        let got = read_self(at, words);
        if got == 0 {
            // Unreadable page: skip it, keeping the stride.
            let next = (at + 4096) & !4095;
            at += (next - at).div_ceil(8) * 8;
            continue;
        }
        for k in 0..got / 8 {
            // SAFETY: as above; `f` never touches `buf`.
            let w = unsafe { *(scan.buf as *const u64).add(k) };
            f(scan, w);
        }
        at += got;
    }
    if let Some((map, bits)) = touched {
        arena::free(map as *mut u8, bits.div_ceil(64) * 8);
    }
}

/// memcheck's "this interior pointer is really a start pointer" heuristics, which it
/// enables by default (`--leak-check-heuristics=all`): a C++ `new[]` cookie, a
/// length-prefixed buffer, an old-ABI std::string.
fn heuristic_start(b: &Block, p: u64) -> bool {
    let off = p - b.addr;
    if off != 8 && off != 24 {
        return false;
    }
    let mut words = [0u64; 3];
    let need = (off / 8) as usize;
    if b.meta.size < off || read_self(b.addr as usize, &mut words[..need]) != need * 8 {
        return false;
    }
    let size = b.meta.size;
    match off {
        8 => (words[0] != 0 && (size - 8).is_multiple_of(words[0])) || words[0] == size - 8,
        _ => words[0] <= words[1] && words[1] + 1 + 24 <= size,
    }
}

const REACHABLE: u8 = leak::REACHABLE;
const POSSIBLE: u8 = leak::POSSIBLE;

/// Upgrades the block `p` points into (unreached → possible → reachable) and queues it for
/// scanning when its state changed.
fn push(scan: &mut Scan, top: &mut usize, p: u64, prior_definite: bool) {
    let Some(i) = scan.find(p) else { return };
    let b = scan.blocks()[i];
    let st = scan.state()[i];
    if st == REACHABLE {
        return;
    }
    let start = p == b.addr || (prior_definite && heuristic_start(&b, p));
    let new = if start && prior_definite {
        REACHABLE
    } else if st == UNREACHED {
        POSSIBLE
    } else {
        return;
    };
    scan.state()[i] = new;
    // A block is queued at most twice; the queue holds 2n entries.
    if *top < 2 * scan.n {
        // SAFETY: top < 2n, the queue's length.
        unsafe { *scan.stack.add(*top) = i as u32 };
        *top += 1;
    }
}

fn drain(scan: &mut Scan, top: &mut usize) {
    while *top > 0 {
        *top -= 1;
        // SAFETY: top < 2n.
        let i = unsafe { *scan.stack.add(*top) } as usize;
        let b = scan.blocks()[i];
        let definite = scan.state()[i] == REACHABLE;
        let mut local_top = *top;
        scan_words(
            scan,
            b.addr as usize,
            (b.addr + b.meta.size) as usize,
            true,
            |scan, w| push(scan, &mut local_top, w, definite),
        );
        *top = local_top;
    }
}

fn mark_from_roots(scan: &mut Scan) {
    let mut top = 0usize;
    let mut skip = [
        arena::range(),
        ring::range(),
        process::own_data_range(),
        crate::guard::region(),
    ];
    skip.sort_unstable();
    let sp = scan.sp;
    const MAX_ROOTS: usize = 1 << 16;
    let roots_mem = arena::alloc(MAX_ROOTS * 16) as *mut (usize, usize);
    if roots_mem.is_null() {
        return;
    }
    // SAFETY: the arena chunk holds MAX_ROOTS zeroed pairs.
    let roots = unsafe { core::slice::from_raw_parts_mut(roots_mem, MAX_ROOTS) };
    let mut nroots = 0;
    let live_stacks = crate::threads::LiveStacks::read();
    // The argument registers of threads blocked in system calls (a buffer being read into,
    // a futex in a heap block): roots, as memcheck takes every thread's registers.
    for w in live_stacks.syscall_args() {
        push(scan, &mut top, w, true);
    }
    process::for_each_writable_mapping(|lo, hi, heap| {
        if heap || is_arena_start(lo, hi) {
            return; // glibc's heap: its blocks are reached through the marking
        }
        let stack_use = live_stacks.stack_use(lo, hi);
        if stack_use != StackUse::Live {
            crate::threads::for_each_dead_descriptor(lo, hi, |tp| mark_dtv(scan, &mut top, tp));
        }
        if stack_use == StackUse::Dead {
            return; // an exited thread's stack, kept by glibc for reuse: stale
        }
        // The shim's own memory is left out, and only it: the kernel merges neighbouring
        // anonymous mappings, so a page of the program's can share a mapping with the
        // shim's .bss (it did, now and then, in cc1, and the blocks it held were lost).
        without(lo, hi, &skip, |lo, hi| {
            if nroots < MAX_ROOTS {
                roots[nroots] = (lo, hi);
                nroots += 1;
            }
        });
    });
    for &(lo, hi) in &roots[..nroots] {
        // The current thread's stack: only the live part, above the shim's own frames, and
        // above `main` once it has returned.
        // Another thread's: above its stack pointer, when it is blocked in the kernel.
        let lo = if lo <= sp && sp < hi {
            let main_sp = process::main_returned_sp();
            if main_sp > sp && main_sp < hi {
                main_sp
            } else {
                sp
            }
        } else {
            live_stacks.live_from(lo, hi)
        };
        // Blocks inside the mapping (glibc's own mmap'd big blocks; the kernel may merge
        // their mapping with a neighbour such as another allocator's arena) are not roots:
        // they are reached through the marking. Scan the gaps between them.
        let mut at = lo;
        loop {
            let blocks = scan.blocks();
            let j = blocks.partition_point(|x| (x.addr as usize) < at);
            let (gap_end, next) = match blocks.get(j) {
                Some(b) if (b.addr as usize) < hi => {
                    (b.addr as usize, (b.addr + b.meta.size.max(1)) as usize)
                }
                _ => (hi, hi),
            };
            if gap_end > at {
                scan_words(scan, at, gap_end, false, |scan, w| {
                    push(scan, &mut top, w, true);
                });
            }
            if next >= hi {
                break;
            }
            at = next;
        }
        drain(scan, &mut top);
    }
    drain(scan, &mut top);
}

/// An exited thread's descriptor stays with its stack in glibc's cache, and holds the
/// thread's DTV: a block of ours (the dynamic linker callocs it), which the descriptor's
/// `dtv` field points one 16-byte entry into. Under memcheck `__libc_freeres` frees the
/// cache; here it runs only when no other thread is left, so with threads still running at
/// exit the DTV is reachable: from glibc's cache, through the descriptor. Only that field is
/// read. The rest of the descriptor and stack (the thread's return value, its last frames)
/// is stale, and not scanned, as memcheck does not scan it.
fn mark_dtv(scan: &mut Scan, top: &mut usize, tp: u64) {
    // tcbhead_t: the TCB's own address, the DTV, the descriptor's own address.
    let mut head = [0u64; 3];
    if read_self(tp as usize, &mut head) == 24 && head[0] == tp && head[2] == tp {
        let dtv = head[1].wrapping_sub(16);
        if scan.find(dtv).is_some_and(|i| scan.blocks()[i].addr == dtv) {
            push(scan, top, dtv, true);
        }
    }
}

/// Calls `f` with each part of `[lo, hi)` that no range of `skip` (sorted, empty ones
/// allowed) covers.
fn without(lo: usize, hi: usize, skip: &[(usize, usize)], mut f: impl FnMut(usize, usize)) {
    let mut at = lo;
    for &(a, b) in skip {
        if a >= b || b <= at || a >= hi {
            continue;
        }
        if a > at {
            f(at, a);
        }
        at = b;
        if at >= hi {
            return;
        }
    }
    if at < hi {
        f(at, hi);
    }
}

fn mark_cliques(scan: &mut Scan) {
    const NONE: u32 = u32::MAX;
    for i in 0..scan.n {
        // SAFETY: i < n.
        unsafe { *scan.clique.add(i) = NONE };
    }
    for leader in 0..scan.n {
        // SAFETY: leader < n.
        if scan.state()[leader] != UNREACHED || unsafe { *scan.clique.add(leader) } != NONE {
            continue; // reached from a root, or already indirect in an earlier clique
        }
        // SAFETY: leader < n; the queue has 2n slots.
        unsafe {
            *scan.clique.add(leader) = leader as u32;
            *scan.stack.add(0) = leader as u32;
        }
        let mut top = 1usize;
        while top > 0 {
            top -= 1;
            // SAFETY: top < 2n.
            let i = unsafe { *scan.stack.add(top) } as usize;
            let b = scan.blocks()[i];
            scan_words(
                scan,
                b.addr as usize,
                (b.addr + b.meta.size) as usize,
                true,
                |scan, w| {
                    let Some(j) = scan.find(w) else { return };
                    if j == leader || scan.state()[j] != UNREACHED {
                        return;
                    }
                    // SAFETY: j < n.
                    let c = unsafe { &mut *scan.clique.add(j) };
                    if *c == NONE {
                        *c = leader as u32;
                        if top < 2 * scan.n {
                            // SAFETY: top < 2n.
                            unsafe { *scan.stack.add(top) = j as u32 };
                            top += 1;
                        }
                    } else if *c == j as u32 {
                        // The leader of an earlier clique: it and its clique are indirect now.
                        *c = leader as u32;
                    }
                },
            );
        }
    }
}

fn emit_classes(scan: &Scan) {
    const PER: usize = 1000;
    let mut rec = [0u8; wire::LEAK_BLOCKS_FIXED + PER * wire::LEAK_ENTRY_LEN];
    let blocks = scan.blocks();
    let mut i = 0;
    while i < blocks.len() {
        let n = (blocks.len() - i).min(PER);
        let mut w = wire::PayloadWriter::new(&mut rec);
        w.u32(process::pid());
        w.u32(n as u32);
        for (k, b) in blocks.iter().enumerate().skip(i).take(n) {
            // SAFETY: k < n.
            let st = unsafe { *scan.state.add(k) };
            let class = match st {
                REACHABLE => leak::REACHABLE,
                POSSIBLE => leak::POSSIBLE,
                // SAFETY: k < n.
                _ if unsafe { *scan.clique.add(k) } == k as u32 => leak::DEFINITE,
                _ => leak::INDIRECT,
            };
            w.u64(b.addr);
            w.u64(b.meta.size);
            w.u32(b.meta.stack);
            w.u8(class);
            w.u8(b.meta.family);
            w.u16(0);
        }
        let len = w.len();
        ring::emit(kind::LEAK_BLOCKS, &[&rec[..len]]);
        i += n;
    }
}
