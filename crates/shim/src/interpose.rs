//! The interposed allocation surface: C and every C++ operator new/delete variant.
//!
//! Each entry point places the block (in the guard-page heap by default, in glibc's heap in
//! fast mode) and records the change. A call made while the shim is already at work on this
//! thread (the unwinder, libc internals) goes straight to glibc unrecorded. Every block remembers its family, so a
//! `delete` of a `new[]` block is a mismatched free; a pointer the shim never handed out is
//! reported and *not* passed to glibc, so the program runs on.

use crate::guard;
use crate::inline;
use crate::sys::{
    self, __libc_calloc, __libc_free, __libc_malloc, __libc_memalign, __libc_realloc,
};
use crate::table::{self, BlockMeta};
use crate::unwind::Caller;
use crate::wire::{self, family, func, kind};
use crate::{process, ring, sample, stacks};
use core::cell::Cell;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    static IN_SHIM: Cell<bool> = const { Cell::new(false) };
    static TID: Cell<u32> = const { Cell::new(0) };
}

/// Marks this thread as busy inside the shim until dropped.
pub struct Busy(());

impl Drop for Busy {
    fn drop(&mut self) {
        IN_SHIM.with(|b| b.set(false));
    }
}

/// Enters the shim, or None when this thread already is in it (or recording is over).
#[inline]
fn enter() -> Option<Busy> {
    if process::finished() {
        return None;
    }
    IN_SHIM.with(|b| {
        if b.replace(true) {
            None
        } else {
            Some(Busy(()))
        }
    })
}

/// Enters the shim unconditionally (init and exit paths): nested allocations go raw.
pub fn enter_raw() -> Busy {
    IN_SHIM.with(|b| b.set(true));
    Busy(())
}

/// In the child after fork: this thread's id changed.
pub fn reset_thread_after_fork() {
    TID.with(|t| t.set(0));
}

/// This thread's kernel id, cached. The first call on a thread also gives it an alternate
/// signal stack, so that a stack overflow can still be reported.
pub fn tid() -> u32 {
    let v = TID.with(|t| t.get());
    if v != 0 {
        return v;
    }
    let v = sys::gettid();
    TID.with(|t| t.set(v));
    crate::threads::on_first_entry();
    v
}

/// Zeroes a record buffer that held a block's address. The shim's frames run on the
/// program's stack; what they leave behind lands in the uninitialised slots of later frames,
/// and at exit a stale copy of a block's address on a live frame would make a lost block
/// look reachable (memcheck's allocator runs on its own stack and leaves nothing behind).
#[inline(always)]
fn scrub<const N: usize>(rec: &mut [u8; N]) {
    rec.fill(0);
    core::hint::black_box(rec);
}

/// One allocation as the program asked for it.
#[derive(Clone, Copy)]
struct Request {
    size: usize,
    /// Alignment asked for (0: none beyond the natural one).
    align: usize,
    func: u8,
    family: u8,
    zeroed: bool,
    /// Where the program called the entry point.
    caller: Caller,
}

const _: () = assert!(inline::TAIL <= PAD);

/// A malloc-family block, not zeroed, asked for through entry point `f` (malloc, realloc,
/// the aligned allocators).
#[inline]
fn malloc_request(size: usize, align: usize, f: u8, caller: Caller) -> Request {
    Request {
        size,
        align,
        func: f,
        family: family::MALLOC,
        zeroed: false,
        caller,
    }
}

/// Extra bytes asked of glibc for every glibc block. glibc keeps pointers to chunk headers
/// (in its bins, `top`, and free chunks); a header sits at most 8 bytes past the end of the
/// previous chunk's requested size, so without the padding such a pointer lands inside a
/// live block and turns a definite leak into a "possible" one at the exit scan.
const PAD: usize = 8;

/// Capture a stack at every release (`--keep-stacktraces=alloc-and-free`, the default in
/// guard mode), or only at releases that are errors (`alloc`, fast mode's default).
pub static FREE_STACKS: AtomicBool = AtomicBool::new(true);

/// Guard mode (the default) or fast mode (`--mode=fast`: glibc blocks, recording only).
pub static GUARD_MODE: AtomicBool = AtomicBool::new(true);

/// A glibc block for `req`, without recording it.
fn glibc_alloc(req: Request) -> *mut c_void {
    let size = req.size.saturating_add(PAD);
    // SAFETY: plain glibc allocations.
    unsafe {
        if req.align > 16 {
            let p = __libc_memalign(req.align, size);
            if req.zeroed && !p.is_null() {
                core::ptr::write_bytes(p as *mut u8, 0, req.size);
            }
            p
        } else if req.zeroed {
            __libc_calloc(1, size)
        } else {
            __libc_malloc(size)
        }
    }
}

/// A glibc block with room for an inline header in front (fast mode, see `inline`): the
/// pointer to give the program, HDR bytes into the chunk. The header is written when the
/// block is recorded.
fn inline_alloc(req: Request) -> *mut c_void {
    let total = req.size.saturating_add(inline::HDR + PAD);
    // SAFETY: plain glibc allocations; the pointer moved stays inside the chunk.
    unsafe {
        let base = if req.zeroed {
            __libc_calloc(1, total)
        } else {
            __libc_malloc(total)
        };
        if base.is_null() {
            return base;
        }
        (base as *mut u8).add(inline::HDR) as *mut c_void
    }
}

/// The chunk glibc handed out for the inline block at `p`.
fn inline_base(p: *mut c_void) -> *mut c_void {
    (p as usize - inline::HDR) as *mut c_void
}

/// A glibc block between two canary red zones: what a block gets when the guard heap is
/// out of budget. Overruns are found when it is freed and at exit.
fn packed_alloc(req: Request) -> *mut c_void {
    let total = req.size.saturating_add(2 * guard::REDZONE + PAD);
    // SAFETY: a plain glibc allocation, then writes inside it.
    unsafe {
        let base = if req.zeroed {
            __libc_calloc(1, total)
        } else {
            __libc_malloc(total)
        } as *mut u8;
        if base.is_null() {
            return core::ptr::null_mut();
        }
        core::ptr::write_bytes(base, guard::CANARY, guard::REDZONE);
        core::ptr::write_bytes(
            base.add(guard::REDZONE + req.size),
            guard::CANARY,
            guard::REDZONE,
        );
        base.add(guard::REDZONE) as *mut c_void
    }
}

/// The first overwritten canary byte around a packed block, as (offset, length).
fn packed_canaries(p: *mut c_void, size: usize) -> Option<(i64, u32)> {
    let p = p as *const u8;
    // SAFETY: the red zones were allocated with the block.
    let (below, above) = unsafe {
        (
            core::slice::from_raw_parts(p.sub(guard::REDZONE), guard::REDZONE),
            core::slice::from_raw_parts(p.add(size), guard::REDZONE),
        )
    };
    if let Some(i) = below.iter().position(|&b| b != guard::CANARY) {
        let run = below[i..]
            .iter()
            .take_while(|&&b| b != guard::CANARY)
            .count();
        return Some((i as i64 - guard::REDZONE as i64, run as u32));
    }
    let i = above.iter().position(|&b| b != guard::CANARY)?;
    let run = above[i..]
        .iter()
        .take_while(|&&b| b != guard::CANARY)
        .count();
    Some(((size + i) as i64, run as u32))
}

/// Where a new block goes: when `guarded`, the guard heap, or (past its budget) a packed
/// glibc block; otherwise fast mode's place, an inline block, or glibc's own for larger
/// alignments.
fn place_block(req: Request, stack: u32, guarded: bool) -> (*mut c_void, u8) {
    if guarded {
        let align = guard::natural_alignment(req.size, req.align);
        if let Some(p) = guard::alloc(req.size, align, req.func, req.family, stack) {
            return (p as *mut c_void, table::PLACE_GUARDED);
        }
        if req.align <= 16 {
            let p = packed_alloc(req);
            if !p.is_null() {
                guard::UNGUARDED_BLOCKS.fetch_add(1, Ordering::Relaxed);
            }
            return (p, table::PLACE_PACKED);
        }
        return (glibc_alloc(req), table::PLACE_GLIBC);
    }
    if req.align <= 16 {
        (inline_alloc(req), table::PLACE_INLINE)
    } else {
        (glibc_alloc(req), table::PLACE_GLIBC)
    }
}

/// The call site of `stack`, just captured on this thread (0: none, no stack).
fn site_of(stack: u32) -> u64 {
    if stack == 0 {
        0
    } else {
        stacks::last_site()
    }
}

fn allocate(req: Request) -> *mut c_void {
    let Some(_busy) = enter() else {
        return glibc_alloc(req);
    };
    if !GUARD_MODE.load(Ordering::Relaxed) {
        // Fast mode: inline blocks, or glibc's own for larger alignments (in the table).
        let (p, place) = place_block(req, 0, false);
        if p.is_null() {
            sys::set_errno(libc::ENOMEM);
            return p;
        }
        let stack = stacks::current_at(req.caller);
        record_alloc(p, req.size, req.func, req.family, stack, place);
        return p;
    }
    let stack = stacks::current_at(req.caller);
    let (p, place) = place_block(req, stack, sample::guards(site_of(stack)));
    if p.is_null() {
        sys::set_errno(libc::ENOMEM);
        return p;
    }
    record_alloc(p, req.size, req.func, req.family, stack, place);
    p
}

fn record_alloc(p: *mut c_void, size: usize, f: u8, fam: u8, stack: u32, place: u8) {
    let meta = BlockMeta {
        size: size as u64,
        stack,
        family: fam,
        func: f,
        place,
    };
    let addr = p as u64;
    if place != table::PLACE_GUARDED {
        crate::leaks::note_heap_address(addr);
    }
    let mut shard = table::lock(addr);
    if place == table::PLACE_GUARDED {
        // Its slot is its record (see guard.rs).
        guard::publish(addr as usize);
    } else if place != table::PLACE_INLINE || !inline::mark(addr, &meta) {
        shard.insert(addr, meta);
    }
    let mut rec = [0u8; wire::ALLOC_LEN];
    let mut w = wire::PayloadWriter::new(&mut rec);
    w.u32(process::pid());
    w.u32(tid());
    w.u64(addr);
    w.u64(size as u64);
    w.u32(stack);
    w.u8(f);
    w.u8(fam);
    w.u16(0);
    w.u64(sys::coarse_ns());
    ring::emit(kind::ALLOC, &[&rec]);
    scrub(&mut rec);
}

/// Removes a block being released by `f` (of family `fam`) from the table and records it.
/// Returns the block and the release's stack; None when the pointer was not ours
/// (reported, and not to be passed to any allocator).
fn record_release(p: *mut c_void, f: u8, fam: u8, caller: Caller) -> Option<(BlockMeta, u32)> {
    let addr = p as u64;
    // The stack of a release is kept for use-after-free and double-free reports; without
    // it (fast mode's default) only a release that is itself an error needs one.
    // Sampled mode keeps one for every guarded block, whatever the option says.
    let keep = FREE_STACKS.load(Ordering::Relaxed)
        || (sample::active() && guard::slot_at(p as usize).is_some());
    let stack = if keep { stacks::current_at(caller) } else { 0 };
    let mut shard = table::lock(addr);
    let found = match inline::take(addr) {
        Some((meta, inline::Damage::None)) => Some(meta),
        Some((meta, damage)) => Some(damaged_header(addr, meta, damage, stack, caller)),
        None => guard::claim(addr as usize).or_else(|| shard.remove(addr)),
    };
    if let Some(mut meta) = found {
        if meta.place == PLACE_DAMAGED {
            // The header's family was overwritten with the rest: claim no mismatch.
            meta.family = fam;
        }
        let mut rec = [0u8; wire::FREE_LEN];
        let mut w = wire::PayloadWriter::new(&mut rec);
        w.u32(process::pid());
        w.u32(tid());
        w.u64(addr);
        w.u32(stack);
        w.u8(f);
        w.u8(meta.family);
        w.u16(if meta.family != fam {
            wire::FREE_MISMATCHED
        } else {
            0
        });
        w.u64(sys::coarse_ns());
        ring::emit(kind::FREE, &[&rec]);
        scrub(&mut rec);
        return Some((meta, stack));
    }
    drop(shard);
    // Not ours: report it, with the stack of the call (unwound outside the lock).
    let stack = if keep {
        stack
    } else {
        stacks::current_at(caller)
    };
    let mut rec = [0u8; wire::BAD_FREE_LEN];
    let mut w = wire::PayloadWriter::new(&mut rec);
    w.u32(process::pid());
    w.u32(tid());
    w.u64(addr);
    w.u32(stack);
    w.u8(f);
    w.u8(fam);
    w.u16(0);
    w.u64(sys::coarse_ns());
    let _shard = table::lock(addr); // ordered with allocations of the same address
    ring::emit(kind::BAD_FREE, &[&rec]);
    scrub(&mut rec);
    None
}

/// An inline block whose header the program wrote over (an underrun of this block, or an
/// overrun of the one before), reported like overwritten canaries before the block's
/// release, so that the analyzer still has it live. When only the header's canary bytes
/// changed, the rest of it is trusted and the block goes back to glibc as usual. When the
/// metadata itself changed, the record says 0 for the size and the stack (the analyzer has
/// both), and the block is never given back to glibc, whose own chunk header just in front
/// was likely hit too.
#[cold]
fn damaged_header(
    addr: u64,
    meta: BlockMeta,
    damage: inline::Damage,
    stack: u32,
    caller: Caller,
) -> BlockMeta {
    let found_at = stack_or_capture(stack, caller);
    let Some((offset, len)) = damage.overwritten() else {
        return meta;
    };
    if damage != inline::Damage::Header {
        emit_canary(addr, &meta, found_at, offset, len);
        return meta;
    }
    let unknown = BlockMeta {
        size: 0,
        stack: 0,
        ..meta
    };
    emit_canary(addr, &unknown, found_at, offset, len);
    BlockMeta {
        place: PLACE_DAMAGED,
        ..meta
    }
}

/// The stack a finding made at a release is reported with: the release's own, or, when
/// none was kept (fast mode keeps none by default), one captured now. A canary record
/// without a stack reads as found at exit.
fn stack_or_capture(stack: u32, caller: Caller) -> u32 {
    if stack == 0 {
        stacks::current_at(caller)
    } else {
        stack
    }
}

/// A released block that must stay where it is (`damaged_header`).
const PLACE_DAMAGED: u8 = 0xff;

/// Reports overwritten canary bytes around a block (at its free, or at exit: stack 0).
pub fn emit_canary(addr: u64, meta: &BlockMeta, stack: u32, offset: i64, len: u32) {
    let record = wire::CanaryRecord {
        pid: process::pid(),
        tid: tid(),
        block_addr: addr,
        block_size: meta.size,
        alloc_stack: meta.stack,
        stack,
        bad_offset: offset,
        bad_len: len,
        alloc_func: meta.func,
        time: sys::coarse_ns(),
    };
    let mut rec = [0u8; wire::CANARY_LEN];
    record.write(&mut wire::PayloadWriter::new(&mut rec));
    ring::emit(kind::CANARY, &[&rec]);
}

/// The canaries of a live block, checked (at free and at exit).
pub fn check_block(addr: u64, meta: &BlockMeta) -> Option<(i64, u32)> {
    match meta.place {
        table::PLACE_GUARDED => guard::held_slot_of(addr as usize).and_then(guard::check_canaries),
        table::PLACE_PACKED => packed_canaries(addr as *mut c_void, meta.size as usize),
        // The header of a block being released was checked by the release (its bit is
        // clear now, and `damage` says None); at exit it is checked here.
        table::PLACE_INLINE => match inline::damage(addr) {
            inline::Damage::None => inline::tail_damage(addr, meta.size),
            damage => damage.overwritten(),
        },
        _ => None,
    }
}

/// Gives a block whose release was recorded back to where it came from.
fn release_block(p: *mut c_void, meta: &BlockMeta, f: u8, stack: u32, caller: Caller) {
    if let Some((offset, len)) = check_block(p as u64, meta) {
        emit_canary(p as u64, meta, stack_or_capture(stack, caller), offset, len);
    }
    match meta.place {
        table::PLACE_GUARDED => {
            if let Some(id) = guard::releasing_slot_of(p as usize) {
                guard::free(id, f, stack);
            }
        }
        // SAFETY: the packed block started a red zone before `p`.
        table::PLACE_PACKED => unsafe {
            __libc_free((p as *mut u8).sub(guard::REDZONE) as *mut c_void)
        },
        table::PLACE_INLINE => fast_quarantine::push(inline_base(p), meta.size.max(1)),
        PLACE_DAMAGED => {}
        _ => fast_quarantine::push(p, meta.size.max(1)),
    }
}

#[inline]
fn release(p: *mut c_void, f: u8, fam: u8, caller: Caller) {
    if p.is_null() {
        return;
    }
    if process::finished() {
        return; // the exit report is made; the memory goes away with the process
    }
    let Some(_busy) = enter() else {
        // An inline block is left alone: freeing it here, unrecorded, would leave it live
        // for the analyzer (this path is for the shim's own nested allocations).
        if guard::slot_at(p as usize).is_none() && !inline::is_live(p as u64) {
            // SAFETY: a block allocated raw on this thread's nested path.
            unsafe { __libc_free(p) };
        }
        return;
    };
    if let Some((meta, stack)) = record_release(p, f, fam, caller) {
        release_block(p, &meta, f, stack, caller);
    }
}

/// An exported entry point as a trampoline: it passes the stack pointer at its first
/// instruction (which points at the return address) and rbp, the caller's, as two more
/// arguments after the entry's `n` own, and jumps to the implementation `at`, which returns
/// straight to the program. Stacks are walked from there ([`Caller`]): the shim's own
/// frames (three to five of them, most of a walk in allocation-heavy code) are never
/// stepped through. A trampoline has no frame of its own, so nothing unwinds through it.
macro_rules! trampoline {
    ($name:ident => $at:path, 1) => {
        trampoline!(@ $name, $at, "rsi", "rdx");
    };
    ($name:ident => $at:path, 2) => {
        trampoline!(@ $name, $at, "rdx", "rcx");
    };
    ($name:ident => $at:path, 3) => {
        trampoline!(@ $name, $at, "rcx", "r8");
    };
    (@ $name:ident, $at:path, $sp:literal, $fp:literal) => {
        #[unsafe(naked)]
        #[no_mangle]
        pub unsafe extern "C" fn $name() {
            core::arch::naked_asm!(
                concat!("mov ", $sp, ", rsp"),
                concat!("mov ", $fp, ", rbp"),
                "jmp {at}",
                at = sym $at,
            )
        }
    };
}

// ---- C ----

trampoline!(malloc => malloc_at, 1);
extern "C" fn malloc_at(size: usize, sp: u64, fp: u64) -> *mut c_void {
    allocate(malloc_request(
        size,
        0,
        func::MALLOC,
        Caller { entry_sp: sp, fp },
    ))
}

trampoline!(calloc => calloc_at, 2);
extern "C" fn calloc_at(n: usize, size: usize, sp: u64, fp: u64) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        sys::set_errno(libc::ENOMEM);
        return core::ptr::null_mut();
    };
    allocate(Request {
        size: total,
        align: 0,
        func: func::CALLOC,
        family: family::MALLOC,
        zeroed: true,
        caller: Caller { entry_sp: sp, fp },
    })
}

trampoline!(free => free_at, 1);
extern "C" fn free_at(p: *mut c_void, sp: u64, fp: u64) {
    release(p, func::FREE, family::MALLOC, Caller { entry_sp: sp, fp });
}

/// realloc outside recording (nested call, or after the exit report): blocks of the guard
/// heap are moved to glibc, glibc's are glibc's business.
fn unrecorded_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    match guard::slot_at(p as usize) {
        Some((_, s)) => {
            let old = s.size.load(Ordering::Relaxed) as usize;
            // SAFETY: a fresh glibc block and the live guarded block, `min` bytes each.
            unsafe {
                let q = __libc_malloc(size.max(1));
                if !q.is_null() {
                    core::ptr::copy_nonoverlapping(p as *const u8, q as *mut u8, old.min(size));
                }
                q
            }
        }
        // An inline block is copied to a plain glibc block and left as it is: its bit and
        // header change only under its shard's lock, which this path (after the exit
        // report, or nested in the shim) must not wait for.
        None if inline::is_live(p as u64) => {
            // Read without the lock: the header's size, or 0 if it was overwritten.
            let old = inline::get(p as u64).map_or(0, |m| m.size);
            // SAFETY: a fresh glibc block and the live inline block, `min` bytes each.
            unsafe {
                let q = __libc_malloc(size.max(1));
                if !q.is_null() {
                    core::ptr::copy_nonoverlapping(
                        p as *const u8,
                        q as *mut u8,
                        (old as usize).min(size),
                    );
                }
                q
            }
        }
        // SAFETY: a glibc block (or null).
        None => unsafe { __libc_realloc(p, size) },
    }
}

fn realloc_impl(p: *mut c_void, size: usize, f: u8, caller: Caller) -> *mut c_void {
    if p.is_null() {
        return allocate(malloc_request(size, 0, f, caller));
    }
    if process::finished() {
        return unrecorded_realloc(p, size);
    }
    let Some(busy) = enter() else {
        return unrecorded_realloc(p, size);
    };
    if size == 0 {
        // glibc frees and returns NULL.
        if let Some((meta, stack)) = record_release(p, f, family::MALLOC, caller) {
            release_block(p, &meta, f, stack, caller);
        }
        return core::ptr::null_mut();
    }
    // Where the block goes if it moves: the guard heap in guard mode, glibc's in fast mode;
    // in sampled mode, as a new block from here would. A block that stays in glibc's heap
    // is resized there, as in fast mode.
    let stack = stacks::current_at(caller);
    let guarded = GUARD_MODE.load(Ordering::Relaxed) && sample::guards(site_of(stack));
    if !guarded {
        if let Some(q) = inline_realloc(p, size, f, stack) {
            return q;
        }
    }
    let old = lookup(p as u64);
    let in_place = !guarded
        && old.is_some_and(|m| m.place == table::PLACE_GLIBC || m.place == table::PLACE_INLINE);
    if !in_place {
        // Every realloc moves the block, as under memcheck: a stale pointer to the old one
        // then faults in quarantine.
        let Some(old) = old else {
            record_release(p, f, family::MALLOC, caller); // reports the invalid realloc
            return core::ptr::null_mut();
        };
        // A block that was big enough for glibc's alignment keeps it when it shrinks:
        // programs that relied on it still do (see guard::natural_alignment).
        let align = if old.size as usize >= guard::GLIBC_ALIGN_FROM {
            16
        } else {
            0
        };
        let req = malloc_request(size, align, f, caller);
        let (q, place) = place_block(req, stack, guarded);
        if q.is_null() {
            sys::set_errno(libc::ENOMEM);
            return q;
        }
        // SAFETY: both blocks are live and at least `min` bytes long.
        unsafe {
            core::ptr::copy_nonoverlapping(
                p as *const u8,
                q as *mut u8,
                (old.size as usize).min(size),
            )
        };
        if let Some((meta, stack)) = record_release(p, f, family::MALLOC, caller) {
            release_block(p, &meta, f, stack, caller);
        }
        record_alloc(q, size, f, family::MALLOC, stack, place);
        return q;
    }
    // A glibc block that stays there (fast mode, or unguarded in sampled mode), but not an
    // intact inline block: glibc's realloc, recorded as a free and an allocation.
    // The release is recorded before glibc may hand the old address to another thread.
    let Some((old, _)) = record_release(p, f, family::MALLOC, caller) else {
        return core::ptr::null_mut();
    };
    if old.place == PLACE_DAMAGED {
        // Its header (and maybe glibc's in front) was overwritten, which is reported: it
        // stays where it is, and its bytes go to a new block, as far as glibc's header
        // still vouches for them.
        drop(busy);
        let q = allocate(malloc_request(size, 0, f, caller));
        if !q.is_null() {
            let n = (inline::chunk_bound(p as u64) as usize).min(size);
            // SAFETY: a fresh block of `size` bytes, and `n` bytes of the old chunk.
            unsafe { core::ptr::copy_nonoverlapping(p as *const u8, q as *mut u8, n) };
        }
        return q;
    }
    if let Some((offset, len)) = check_block(p as u64, &old) {
        // Overwritten canaries after the block: found by this realloc, which releases it.
        emit_canary(p as u64, &old, stack_or_capture(0, caller), offset, len);
    }
    let q = if old.place == table::PLACE_INLINE {
        // SAFETY: the chunk of an inline block that was live; the header moves with it and
        // is rewritten when the new block is recorded.
        let q = unsafe { __libc_realloc(inline_base(p), size.saturating_add(inline::HDR + PAD)) };
        if q.is_null() {
            q
        } else {
            (q as usize + inline::HDR) as *mut c_void
        }
    } else {
        // SAFETY: `p` was live in glibc's heap.
        unsafe { __libc_realloc(p, size.saturating_add(PAD)) }
    };
    drop(busy);
    let _busy = enter();
    if q.is_null() {
        // The old block is still live: put it back.
        record_alloc(
            p,
            old.size as usize,
            old.func,
            old.family,
            old.stack,
            old.place,
        );
        return q;
    }
    record_alloc(q, size, f, family::MALLOC, stack, old.place);
    q
}

/// Fast mode's realloc of an intact inline block of the malloc family: glibc's realloc,
/// recorded as one `Realloc` record instead of a free and an allocation. The old block's
/// shard stays locked across glibc's realloc: a thread that glibc hands the old address
/// to next records its allocation after this record. None, having changed nothing, for
/// any other block (the caller takes the general path, which reports what is wrong).
fn inline_realloc(p: *mut c_void, size: usize, f: u8, stack: u32) -> Option<*mut c_void> {
    let addr = p as u64;
    if !inline::is_live(addr) {
        return None;
    }
    let shard = table::lock(addr);
    let old = inline::get_intact(addr)
        .filter(|m| m.family == family::MALLOC && inline::tail_damage(addr, m.size).is_none())?;
    inline::take(addr);
    // SAFETY: the chunk of a live inline block; its header moves with it and is rewritten
    // below.
    let q = unsafe { __libc_realloc(inline_base(p), size.saturating_add(inline::HDR + PAD)) };
    if q.is_null() {
        // glibc left the old block as it was: still live, nothing to record.
        inline::mark(addr, &old);
        drop(shard);
        sys::set_errno(libc::ENOMEM);
        return Some(q);
    }
    let q = (q as usize + inline::HDR) as *mut c_void;
    let mut rec = [0u8; wire::REALLOC_LEN];
    let mut w = wire::PayloadWriter::new(&mut rec);
    w.u32(process::pid());
    w.u32(tid());
    w.u64(addr);
    w.u64(q as u64);
    w.u64(size as u64);
    w.u32(stack);
    w.u8(f);
    w.u8(0);
    w.u16(0);
    w.u64(sys::coarse_ns());
    ring::emit(kind::REALLOC, &[&rec]);
    scrub(&mut rec);
    drop(shard);
    // The new block is nobody else's yet: marking it under its own shard's lock after the
    // record is enough.
    let meta = BlockMeta {
        size: size as u64,
        stack,
        family: family::MALLOC,
        func: f,
        place: table::PLACE_INLINE,
    };
    crate::leaks::note_heap_address(q as u64);
    let mut shard = table::lock(q as u64);
    if !inline::mark(q as u64, &meta) {
        shard.insert(q as u64, meta);
    }
    Some(q)
}

/// What is known of the live block at `addr`: inline, in its guard slot, or in the table.
fn lookup(addr: u64) -> Option<BlockMeta> {
    let mut shard = table::lock(addr);
    inline::get(addr)
        .or_else(|| guard::meta_at(addr as usize))
        .or_else(|| shard.get(addr))
}

trampoline!(realloc => realloc_at, 2);
extern "C" fn realloc_at(p: *mut c_void, size: usize, sp: u64, fp: u64) -> *mut c_void {
    realloc_impl(p, size, func::REALLOC, Caller { entry_sp: sp, fp })
}

trampoline!(reallocarray => reallocarray_at, 3);
extern "C" fn reallocarray_at(
    p: *mut c_void,
    n: usize,
    size: usize,
    sp: u64,
    fp: u64,
) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => realloc_impl(p, total, func::REALLOCARRAY, Caller { entry_sp: sp, fp }),
        None => {
            sys::set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}

fn valid_alignment(align: usize) -> bool {
    align.is_power_of_two() && align.is_multiple_of(core::mem::size_of::<usize>())
}

fn aligned(size: usize, align: usize, f: u8, caller: Caller) -> *mut c_void {
    allocate(malloc_request(size, align, f, caller))
}

trampoline!(posix_memalign => posix_memalign_at, 3);
unsafe extern "C" fn posix_memalign_at(
    out: *mut *mut c_void,
    align: usize,
    size: usize,
    sp: u64,
    fp: u64,
) -> c_int {
    if !valid_alignment(align) {
        return libc::EINVAL;
    }
    let saved = sys::errno();
    let p = aligned(
        size,
        align,
        func::POSIX_MEMALIGN,
        Caller { entry_sp: sp, fp },
    );
    sys::set_errno(saved); // posix_memalign reports through its result, not errno
    if p.is_null() {
        return libc::ENOMEM;
    }
    *out = p;
    0
}

trampoline!(aligned_alloc => aligned_alloc_at, 2);
extern "C" fn aligned_alloc_at(align: usize, size: usize, sp: u64, fp: u64) -> *mut c_void {
    if !align.is_power_of_two() {
        sys::set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    aligned(
        size,
        align,
        func::ALIGNED_ALLOC,
        Caller { entry_sp: sp, fp },
    )
}

trampoline!(memalign => memalign_at, 2);
extern "C" fn memalign_at(align: usize, size: usize, sp: u64, fp: u64) -> *mut c_void {
    // glibc rounds an alignment that is not a power of two up to one.
    let align = if align.is_power_of_two() {
        align
    } else {
        align.checked_next_power_of_two().unwrap_or(0)
    };
    if align == 0 {
        sys::set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    aligned(size, align, func::MEMALIGN, Caller { entry_sp: sp, fp })
}

trampoline!(valloc => valloc_at, 1);
extern "C" fn valloc_at(size: usize, sp: u64, fp: u64) -> *mut c_void {
    aligned(size, guard::PAGE, func::VALLOC, Caller { entry_sp: sp, fp })
}

trampoline!(pvalloc => pvalloc_at, 1);
extern "C" fn pvalloc_at(size: usize, sp: u64, fp: u64) -> *mut c_void {
    let Some(rounded) = size.max(1).checked_next_multiple_of(guard::PAGE) else {
        sys::set_errno(libc::ENOMEM);
        return core::ptr::null_mut();
    };
    aligned(
        rounded,
        guard::PAGE,
        func::PVALLOC,
        Caller { entry_sp: sp, fp },
    )
}

/// The usable size is what was asked for: using more is an overrun.
#[no_mangle]
pub extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    lookup(p as u64).map_or(0, |m| m.size as usize)
}

// ---- C++ ----

type NewHandler = unsafe extern "C" fn();

fn cxx_symbol(name: &core::ffi::CStr) -> usize {
    // SAFETY: dlsym with a NUL-terminated name; only reached on allocation failure.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) as usize }
}

/// operator new semantics on failure: call the new-handler until it gives up, then throw
/// std::bad_alloc (through libstdc++, which a program calling operator new has loaded).
fn new_impl(
    size: usize,
    align: usize,
    nothrow: bool,
    f: u8,
    fam: u8,
    caller: Caller,
) -> *mut c_void {
    loop {
        let p = allocate(Request {
            size,
            align,
            func: f,
            family: fam,
            zeroed: false,
            caller,
        });
        if !p.is_null() {
            return p;
        }
        let get = cxx_symbol(c"_ZSt15get_new_handlerv");
        let handler = if get != 0 {
            // SAFETY: std::get_new_handler() from libstdc++.
            let get: unsafe extern "C" fn() -> Option<NewHandler> =
                unsafe { core::mem::transmute(get) };
            unsafe { get() }
        } else {
            None
        };
        match handler {
            // SAFETY: the program's own new-handler, called as operator new would.
            Some(h) => unsafe { h() },
            None if nothrow => return core::ptr::null_mut(),
            None => {
                let throw = cxx_symbol(c"_ZSt17__throw_bad_allocv");
                if throw != 0 {
                    // SAFETY: std::__throw_bad_alloc() throws a C++ exception, which unwinds
                    // through our C-unwind frames to the program's handler.
                    let throw: unsafe extern "C-unwind" fn() -> ! =
                        unsafe { core::mem::transmute(throw) };
                    unsafe { throw() }
                }
                // SAFETY: no C++ runtime to throw with; operator new may not return null.
                unsafe { libc::abort() }
            }
        }
    }
}

macro_rules! operator_new {
    ($($name:ident / $at:ident [$n:tt] ($($arg:ident : $ty:ty),*) => $f:expr, $fam:expr, $align:expr, $nothrow:expr;)*) => {$(
        trampoline!($name => $at, $n);
        extern "C-unwind" fn $at(size: usize $(, $arg: $ty)*, sp: u64, fp: u64) -> *mut c_void {
            $(let _ = $arg;)*
            new_impl(size, $align, $nothrow, $f, $fam, Caller { entry_sp: sp, fp })
        }
    )*};
}

operator_new! {
    _Znwm / new_at [1] () => func::NEW, family::NEW, 0, false;
    _Znam / new_array_at [1] () => func::NEW_ARRAY, family::NEW_ARRAY, 0, false;
    _ZnwmRKSt9nothrow_t / new_nothrow_at [2] (_nt: *const c_void) => func::NEW, family::NEW, 0, true;
    _ZnamRKSt9nothrow_t / new_array_nothrow_at [2] (_nt: *const c_void) => func::NEW_ARRAY, family::NEW_ARRAY, 0, true;
}

macro_rules! operator_new_aligned {
    ($($name:ident / $at:ident [$n:tt] ($($arg:ident : $ty:ty),*) => $f:expr, $fam:expr, $nothrow:expr;)*) => {$(
        trampoline!($name => $at, $n);
        extern "C-unwind" fn $at(size: usize, align: usize $(, $arg: $ty)*, sp: u64, fp: u64) -> *mut c_void {
            $(let _ = $arg;)*
            new_impl(size, align, $nothrow, $f, $fam, Caller { entry_sp: sp, fp })
        }
    )*};
}

operator_new_aligned! {
    _ZnwmSt11align_val_t / new_aligned_at [2] () => func::NEW, family::NEW, false;
    _ZnamSt11align_val_t / new_array_aligned_at [2] () => func::NEW_ARRAY, family::NEW_ARRAY, false;
    _ZnwmSt11align_val_tRKSt9nothrow_t / new_aligned_nothrow_at [3] (_nt: *const c_void) => func::NEW, family::NEW, true;
    _ZnamSt11align_val_tRKSt9nothrow_t / new_array_aligned_nothrow_at [3] (_nt: *const c_void) => func::NEW_ARRAY, family::NEW_ARRAY, true;
}

macro_rules! operator_delete {
    ($($name:ident / $at:ident [$n:tt] ($($arg:ident : $ty:ty),*) => $f:expr, $fam:expr;)*) => {$(
        trampoline!($name => $at, $n);
        extern "C" fn $at(p: *mut c_void $(, $arg: $ty)*, sp: u64, fp: u64) {
            $(let _ = $arg;)*
            release(p, $f, $fam, Caller { entry_sp: sp, fp })
        }
    )*};
}

operator_delete! {
    _ZdlPv / delete_at [1] () => func::DELETE, family::NEW;
    _ZdaPv / delete_array_at [1] () => func::DELETE_ARRAY, family::NEW_ARRAY;
    _ZdlPvm / delete_sized_at [2] (_size: usize) => func::DELETE, family::NEW;
    _ZdaPvm / delete_array_sized_at [2] (_size: usize) => func::DELETE_ARRAY, family::NEW_ARRAY;
    _ZdlPvRKSt9nothrow_t / delete_nothrow_at [2] (_nt: *const c_void) => func::DELETE, family::NEW;
    _ZdaPvRKSt9nothrow_t / delete_array_nothrow_at [2] (_nt: *const c_void) => func::DELETE_ARRAY, family::NEW_ARRAY;
    _ZdlPvSt11align_val_t / delete_aligned_at [2] (_al: usize) => func::DELETE, family::NEW;
    _ZdaPvSt11align_val_t / delete_array_aligned_at [2] (_al: usize) => func::DELETE_ARRAY, family::NEW_ARRAY;
    _ZdlPvmSt11align_val_t / delete_sized_aligned_at [3] (_size: usize, _al: usize) => func::DELETE, family::NEW;
    _ZdaPvmSt11align_val_t / delete_array_sized_aligned_at [3] (_size: usize, _al: usize) => func::DELETE_ARRAY, family::NEW_ARRAY;
    _ZdlPvSt11align_val_tRKSt9nothrow_t / delete_aligned_nothrow_at [3] (_al: usize, _nt: *const c_void) => func::DELETE, family::NEW;
    _ZdaPvSt11align_val_tRKSt9nothrow_t / delete_array_aligned_nothrow_at [3] (_al: usize, _nt: *const c_void) => func::DELETE_ARRAY, family::NEW_ARRAY;
}

/// Fast mode's quarantine: freed glibc blocks wait here before glibc may reuse them, as
/// memcheck's freed blocks do (`--freelist-vol`, 20,000,000 bytes by default, as memcheck's).
/// Without it a new block often lands where a dangling pointer still points, and a leak
/// looks reachable; a double free of a block whose address was handed out again looks like
/// a good free.
///
/// One FIFO per thread, so that a block leaves the quarantine on the thread that freed it:
/// with one shared FIFO, a thread's frees handed other threads' blocks back to their glibc
/// arenas, and the arena locks made the threads sleep on each other (a two-thread churn
/// made 14,000 futex calls per 500,000 operations; now 4). The volume is shared: past
/// 20 MB in all, a thread that frees gives back the oldest blocks of exited threads first,
/// then its own. An exiting thread's FIFO is not emptied at once (its blocks would come
/// back to glibc together, and a dangling pointer to one of them would hide a new leak);
/// it joins the list of orphans.
pub mod fast_quarantine {
    use crate::arena;
    use crate::sys::{__libc_free, SpinLock};
    use core::cell::{Cell, UnsafeCell};
    use core::ffi::c_void;
    use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    /// The volume (`--freelist-vol`).
    pub static MAX_BYTES: AtomicU64 = AtomicU64::new(20_000_000);
    /// Blocks one thread's FIFO holds at most.
    const MAX_BLOCKS: usize = 1 << 15;
    /// Blocks given back per free at most (the rest wait for the next free).
    const BATCH: usize = 8;
    /// How many frees ahead the leaving blocks are prefetched.
    const AHEAD: usize = 4;
    /// From how many bytes quarantined on a thread its oldest blocks are out of the caches.
    const COLD_FROM: u64 = 2 << 20;

    /// Bytes in every FIFO together, orphans included, as the FIFOs have accounted for
    /// them: a thread's FIFO settles with this counter in steps of `STEP` (see
    /// `Fifo::settle`), so that a free does not take the shared cache line twice.
    static TOTAL_BYTES: AtomicU64 = AtomicU64::new(0);
    /// The step of a thread's accounting. Each live thread may have up to twice this much
    /// more accounted than it holds, which the other threads see as quarantine volume.
    const STEP: u64 = 16 << 10;

    #[repr(C)]
    struct Fifo {
        head: usize,
        len: usize,
        bytes: u64,
        /// What this FIFO has added to `TOTAL_BYTES`: between `bytes` and `bytes + 2 *
        /// STEP` while a thread owns it, exactly `bytes` once it is an orphan.
        accounted: u64,
        /// Next orphan (older first), for FIFOs of exited threads.
        next: *mut Fifo,
        slots: [(usize, u64); MAX_BLOCKS],
    }

    impl Fifo {
        fn pop(&mut self) -> Option<(usize, u64)> {
            if self.len == 0 {
                return None;
            }
            let (p, size) = self.slots[self.head];
            self.head = (self.head + 1) % MAX_BLOCKS;
            self.len -= 1;
            self.bytes -= size;
            Some((p, size))
        }

        /// Brings `accounted` back within `bytes..bytes + 2 * STEP`, in whole steps.
        #[inline]
        fn settle(&mut self) {
            if self.bytes > self.accounted {
                let add = (self.bytes - self.accounted).next_multiple_of(STEP);
                TOTAL_BYTES.fetch_add(add, Ordering::Relaxed);
                self.accounted += add;
            } else if self.accounted - self.bytes >= 2 * STEP {
                let sub = (self.accounted - self.bytes) / STEP * STEP - STEP;
                TOTAL_BYTES.fetch_sub(sub, Ordering::Relaxed);
                self.accounted -= sub;
            }
        }

        /// Accounts for exactly what the FIFO holds (it is becoming an orphan).
        fn settle_exactly(&mut self) {
            if self.accounted > self.bytes {
                TOTAL_BYTES.fetch_sub(self.accounted - self.bytes, Ordering::Relaxed);
            } else {
                TOTAL_BYTES.fetch_add(self.bytes - self.accounted, Ordering::Relaxed);
            }
            self.accounted = self.bytes;
        }
    }

    thread_local! {
        /// This thread's FIFO (arena memory), or null: not made yet, or the thread is
        /// exiting. Only touched inside the shim (the per-thread busy flag is set), so a
        /// signal handler cannot reach it halfway through a change.
        static MINE: Cell<*mut Fifo> = const { Cell::new(core::ptr::null_mut()) };
        /// Set once the thread's FIFO became an orphan: later frees go straight to glibc.
        static CLOSED: Cell<bool> = const { Cell::new(false) };
    }

    /// FIFOs of exited threads, oldest first.
    struct Orphans {
        lock: SpinLock,
        list: UnsafeCell<(*mut Fifo, *mut Fifo)>,
    }
    // SAFETY: `list` is only touched with `lock` held.
    unsafe impl Sync for Orphans {}
    static ORPHANS: Orphans = Orphans {
        lock: SpinLock::new(),
        list: UnsafeCell::new((core::ptr::null_mut(), core::ptr::null_mut())),
    };
    static ORPHAN_COUNT: AtomicUsize = AtomicUsize::new(0);

    fn mine() -> *mut Fifo {
        let f = MINE.with(|m| m.get());
        if !f.is_null() || CLOSED.with(|c| c.get()) {
            return f;
        }
        let f = arena::alloc(core::mem::size_of::<Fifo>()) as *mut Fifo;
        MINE.with(|m| m.set(f));
        f
    }

    /// Takes up to `out.len()` of the oldest orphaned blocks, while `over` bytes are too
    /// many. Returns how many were taken and the bytes still over.
    fn take_orphans(out: &mut [usize], mut over: u64) -> (usize, u64) {
        let mut n = 0;
        ORPHANS.lock.lock();
        // SAFETY: we hold the lock.
        let list = unsafe { &mut *ORPHANS.list.get() };
        while n < out.len() && over > 0 && !list.0.is_null() {
            // SAFETY: orphans are FIFOs no thread owns any more, reached only under the lock.
            let f = unsafe { &mut *list.0 };
            match f.pop() {
                Some((p, size)) => {
                    // An orphan accounts for exactly what it holds.
                    f.accounted -= size;
                    TOTAL_BYTES.fetch_sub(size, Ordering::Relaxed);
                    out[n] = p;
                    n += 1;
                    over = over.saturating_sub(size);
                }
                None => {
                    list.0 = f.next;
                    if list.0.is_null() {
                        list.1 = core::ptr::null_mut();
                    }
                    ORPHAN_COUNT.fetch_sub(1, Ordering::Relaxed);
                    arena::free(f as *mut Fifo as *mut u8, core::mem::size_of::<Fifo>());
                }
            }
        }
        ORPHANS.lock.unlock();
        (n, over)
    }

    /// Takes a freed glibc block; gives the oldest ones back to glibc past the shared
    /// volume (20 MB) or this thread's count (32,768 blocks).
    pub fn push(p: *mut c_void, size: u64) {
        let f = mine();
        if f.is_null() {
            // SAFETY: a glibc block whose release was recorded.
            unsafe { __libc_free(p) };
            return;
        }
        // SAFETY: this thread's FIFO, touched by no one else (see MINE).
        let q = unsafe { &mut *f };
        // The volume with this block in, counting this FIFO by what it holds (the other
        // threads' by what they accounted for).
        let total = TOTAL_BYTES
            .load(Ordering::Relaxed)
            .saturating_sub(q.accounted)
            + q.bytes
            + size;
        let mut over = total.saturating_sub(MAX_BYTES.load(Ordering::Relaxed));
        let mut release = [0usize; BATCH];
        let mut n = 0;
        if over > 0 && ORPHAN_COUNT.load(Ordering::Relaxed) > 0 {
            (n, over) = take_orphans(&mut release, over);
        }
        while (q.len == MAX_BLOCKS || over > 0) && n < BATCH {
            let Some((old, old_size)) = q.pop() else {
                break;
            };
            release[n] = old;
            n += 1;
            over = over.saturating_sub(old_size);
        }
        if q.len < MAX_BLOCKS {
            q.slots[(q.head + q.len) % MAX_BLOCKS] = (p as usize, size);
            q.len += 1;
            q.bytes += size;
        } else {
            // SAFETY: as above; no room to keep it.
            unsafe { __libc_free(p) };
        }
        q.settle();
        // The block that leaves a few frees from now was freed long ago: its chunk, and
        // the next chunk's header that glibc's free reads, are out of the caches.
        if q.len > AHEAD && q.bytes > COLD_FROM {
            let (soon, soon_size) = q.slots[(q.head + AHEAD) % MAX_BLOCKS];
            crate::ring::prefetch_for_write(soon - 16);
            crate::ring::prefetch_for_write(soon + soon_size as usize + 24);
        }
        for &old in &release[..n] {
            // SAFETY: blocks glibc handed out, released once, out of the quarantine now.
            unsafe { __libc_free(old as *mut c_void) };
        }
    }

    /// The thread is exiting: its FIFO becomes an orphan, emptied by later frees of other
    /// threads in age order; this thread's later frees (other exit-time destructors) go
    /// straight to glibc.
    pub fn thread_exiting() {
        CLOSED.with(|c| c.set(true));
        let f = MINE.with(|m| m.replace(core::ptr::null_mut()));
        if f.is_null() {
            return;
        }
        // SAFETY: this thread's FIFO, about to be handed over.
        let q = unsafe { &mut *f };
        if q.len == 0 {
            arena::free(f as *mut u8, core::mem::size_of::<Fifo>());
            return;
        }
        q.next = core::ptr::null_mut();
        q.settle_exactly();
        ORPHANS.lock.lock();
        // SAFETY: we hold the lock.
        let list = unsafe { &mut *ORPHANS.list.get() };
        if list.1.is_null() {
            list.0 = f;
        } else {
            // SAFETY: the tail is an orphan, reached only under the lock.
            unsafe { (*list.1).next = f };
        }
        list.1 = f;
        ORPHAN_COUNT.fetch_add(1, Ordering::Relaxed);
        ORPHANS.lock.unlock();
    }

    /// Fork support: the orphan list is shared by the threads.
    pub fn lock() {
        ORPHANS.lock.lock();
    }
    pub fn unlock() {
        ORPHANS.lock.unlock();
    }
    /// In the child after fork: only this thread's FIFO and the orphans are left (the other
    /// threads' FIFOs belong to threads the child does not have; their blocks stay out of
    /// glibc's hands). The shared volume counts what is left, or the child would find it
    /// over budget forever and quarantine nothing.
    pub fn after_fork_in_child() {
        ORPHANS.lock.force_unlock();
        let mut bytes = 0;
        let f = MINE.with(|m| m.get());
        if !f.is_null() {
            // SAFETY: this thread's FIFO.
            let q = unsafe { &mut *f };
            q.accounted = q.bytes;
            bytes += q.bytes;
        }
        // SAFETY: one thread is left, and the lock was just reset.
        let mut o = unsafe { (*ORPHANS.list.get()).0 };
        while !o.is_null() {
            // SAFETY: orphans stay valid until emptied under the lock.
            unsafe {
                bytes += (*o).bytes;
                o = (*o).next;
            }
        }
        TOTAL_BYTES.store(bytes, Ordering::Relaxed);
    }
}
