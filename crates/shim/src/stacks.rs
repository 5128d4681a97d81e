//! Stack capture and deduplication.
//!
//! A stack is hashed from its program counters; the first thread to see a hash assigns it
//! an id and emits its frames once (`StackDef`); everyone after refers to the id. The table
//! is lock-free (CAS on the hash word); a full table degrades to emitting every stack.

use crate::wire::{self, kind};
use crate::{arena, modules, process, ring, unwind};
use core::cell::Cell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

pub const MAX_FRAMES: usize = 256;
/// Distinct stacks the table holds (16 bytes each, in lazily touched arena pages). Recursive
/// code makes many: binary-tree recursion has one per path from the root.
const SLOTS: usize = 1 << 22;

#[repr(C)]
struct Slot {
    hash: AtomicU64,
    id: AtomicU32,
    _pad: u32,
}

static SLOTS_PTR: AtomicPtr<Slot> = AtomicPtr::new(core::ptr::null_mut());
static NEXT_ID: AtomicU32 = AtomicU32::new(1);
static USED: AtomicU32 = AtomicU32::new(0);
/// Frames recorded per stack (`--num-callers`).
pub static DEPTH: AtomicU32 = AtomicU32::new(24);

fn slots() -> *mut Slot {
    arena::shared_table(&SLOTS_PTR, SLOTS)
}

/// The stack's identity: 64 bits that stand for its frames everywhere (the shared table
/// and `HASH_OF` compare nothing else). Two lanes, even and odd frames, so that the
/// multiply chain is half as long; each step is a full-width multiply and a rotation, and
/// the lanes are folded with murmur3's finaliser.
fn hash(pcs: &[u64]) -> u64 {
    const K0: u64 = 0x9E37_79B9_7F4A_7C15;
    const K1: u64 = 0xC2B2_AE3D_27D4_EB4F;
    let mut a: u64 = 0xcbf2_9ce4_8422_2325 ^ pcs.len() as u64;
    let mut b: u64 = 0x1656_67b1_9e37_79f9;
    let mut pairs = pcs.chunks_exact(2);
    for pair in &mut pairs {
        a = (a ^ pair[0]).wrapping_mul(K0).rotate_left(29);
        b = (b ^ pair[1]).wrapping_mul(K1).rotate_left(31);
    }
    if let [last] = pairs.remainder() {
        a = (a ^ last).wrapping_mul(K0).rotate_left(29);
    }
    let mut h = a ^ b.wrapping_mul(K0).rotate_left(27);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h.max(2) // 0 means empty
}

/// Frames captured on the common path (the default depth is 24).
const SMALL: usize = 64;

/// Captures the stack of a call to one of the shim's entry points, made from `caller`,
/// and returns its id, emitting its definition the first time it is seen. The walk starts
/// at the caller and leaves out the shim's own frames (`main_trampoline` below main).
#[inline(never)]
pub fn current_at(caller: unwind::Caller) -> u32 {
    if !ring::recording() {
        return 0;
    }
    let depth = (DEPTH.load(Ordering::Relaxed) as usize).clamp(1, MAX_FRAMES);
    if depth > SMALL {
        return current_at_deep(caller, depth);
    }
    let mut buf = [MaybeUninit::uninit(); SMALL];
    intern(unwind::capture_from(&mut buf[..depth], caller))
}

#[cold]
fn current_at_deep(caller: unwind::Caller, depth: usize) -> u32 {
    let mut buf = [MaybeUninit::uninit(); MAX_FRAMES];
    intern(unwind::capture_from(&mut buf[..depth], caller))
}

/// The stack of the instruction at `pc` that raised the signal being handled: frame 0 is
/// `pc` itself (not a return address), then its callers.
pub fn at_signal(pc: u64) -> u32 {
    if !ring::recording() {
        return 0;
    }
    let depth = (DEPTH.load(Ordering::Relaxed) as usize).clamp(1, MAX_FRAMES);
    let mut buf = [MaybeUninit::uninit(); MAX_FRAMES + 32];
    let pcs = unwind::capture_stack(&mut buf[..depth + 32]);
    // The walk goes through our handler and the kernel's signal frame; the interrupted
    // frame is reported with its exact pc.
    match pcs.iter().position(|&p| p == pc) {
        Some(at) => {
            let end = pcs.len().min(at + depth);
            intern(&pcs[at..end])
        }
        None => intern(&[pc]),
    }
}

/// The id of a stack given by its frames.
///
/// Before the shared table (64 MiB, where a lookup is a cache miss), guesses are tried: the
/// stack that followed the thread's last one the last time that one was seen (`SUCC_OF`),
/// the one defined right after it, and the last one again. A program that repeats a
/// sequence of allocations (a loop building the same structure again: a tree, a list, a
/// parse) meets its stacks in the same order each time, so the successor is right from the
/// second round on; ids are handed out in the order stacks are first seen, so the tables,
/// indexed by id, are read in runs. A guess is taken only if its full hash matches, the
/// same test the shared table makes.
pub fn intern(pcs: &[u64]) -> u32 {
    if !ring::recording() {
        return 0;
    }
    let h = hash(pcs);
    if crate::sample::active() {
        let site = hash(&pcs[..pcs.len().min(SITE_FRAMES)]);
        SITE.with(|s| s.set(site));
    }
    let hash_of = hash_of_table();
    let succ_of = succ_of_table();
    // One lookup of the thread-local for both reading and updating it.
    LAST.with(|last_cell| {
        let last = last_cell.get();
        let id = guess(h, last, hash_of, succ_of).unwrap_or_else(|| intern_shared(pcs, h, hash_of));
        if !succ_of.is_null() && last != 0 && (last as usize) < SLOTS {
            // SAFETY: last < SLOTS, the table's length.
            let succ = unsafe { &*succ_of.add(last as usize) };
            // Written only when it changes: threads repeating one sequence share the line.
            if succ.load(Ordering::Relaxed) != id {
                succ.store(id, Ordering::Relaxed);
            }
        }
        last_cell.set(id);
        id
    })
}

/// The first of `intern`'s guesses whose hash is `h`.
#[inline]
fn guess(h: u64, last: u32, hash_of: *const AtomicU64, succ_of: *const AtomicU32) -> Option<u32> {
    if hash_of.is_null() || last == 0 || last as usize >= SLOTS {
        return None;
    }
    let succ = if succ_of.is_null() {
        0
    } else {
        // SAFETY: last < SLOTS, the table's length.
        unsafe { &*succ_of.add(last as usize) }.load(Ordering::Relaxed)
    };
    [succ, last.wrapping_add(1), last].into_iter().find(|&g| {
        // SAFETY: g < SLOTS, the table's length.
        g != 0
            && (g as usize) < SLOTS
            && unsafe { &*hash_of.add(g as usize) }.load(Ordering::Acquire) == h
    })
}

thread_local! {
    /// The id of the last stack this thread interned (a hint: checked against `HASH_OF`).
    static LAST: Cell<u32> = const { Cell::new(0) };
    /// The call site of the last stack this thread interned, in sampled mode.
    static SITE: Cell<u64> = const { Cell::new(0) };
}

/// Frames that make an allocation's call site for sampled mode (`sample`): the call and
/// its two callers.
const SITE_FRAMES: usize = 3;

/// The call site (a hash of its first frames) of the stack this thread interned last, in
/// sampled mode; 0 when none was, or in another mode. Read right after `current_at`.
pub fn last_site() -> u64 {
    SITE.with(|s| s.get())
}

/// Hash of each stack id (0: none), for `intern`'s guesses; SLOTS entries, lazily touched.
static HASH_OF: AtomicPtr<AtomicU64> = AtomicPtr::new(core::ptr::null_mut());

fn hash_of_table() -> *const AtomicU64 {
    arena::shared_table(&HASH_OF, SLOTS)
}

/// For each stack id, the id interned after it the last time a thread interned it (0: not
/// yet); a hint for `intern`, checked against `HASH_OF` like the others.
static SUCC_OF: AtomicPtr<AtomicU32> = AtomicPtr::new(core::ptr::null_mut());

fn succ_of_table() -> *const AtomicU32 {
    arena::shared_table(&SUCC_OF, SLOTS)
}

/// The id of a stack by its hash in the table shared by all threads.
fn intern_shared(pcs: &[u64], h: u64, hash_of: *const AtomicU64) -> u32 {
    let table = slots();
    if table.is_null() || USED.load(Ordering::Relaxed) as usize > SLOTS * 3 / 4 {
        return define(pcs);
    }
    let mut i = h as usize & (SLOTS - 1);
    loop {
        // SAFETY: i < SLOTS and the table has SLOTS slots.
        let slot = unsafe { &*table.add(i) };
        let cur = slot.hash.load(Ordering::Acquire);
        if cur == h {
            // Another thread may still be publishing the id.
            loop {
                let id = slot.id.load(Ordering::Acquire);
                if id != 0 {
                    return id;
                }
                core::hint::spin_loop();
            }
        }
        if cur == 0 {
            if slot
                .hash
                .compare_exchange(0, h, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                USED.fetch_add(1, Ordering::Relaxed);
                let id = define(pcs);
                if !hash_of.is_null() && (id as usize) < SLOTS {
                    // SAFETY: id < SLOTS, the table's length. Published after the
                    // definition was emitted, as the slot's id is.
                    unsafe { &*hash_of.add(id as usize) }.store(h, Ordering::Release);
                }
                slot.id.store(id, Ordering::Release);
                return id;
            }
            continue; // lost the race for this slot: look at it again
        }
        i = (i + 1) & (SLOTS - 1);
    }
}

fn define(pcs: &[u64]) -> u32 {
    // A new stack may point into a library loaded since we last looked.
    modules::refresh();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut head = [0u8; wire::STACK_DEF_FIXED];
    let mut w = wire::PayloadWriter::new(&mut head);
    w.u32(process::pid());
    w.u32(id);
    w.u32(pcs.len() as u32);
    w.u32(0);
    // The frames are little-endian u64s on the wire, as they are in memory here.
    const _: () = assert!(cfg!(target_endian = "little"));
    // SAFETY: the bytes of `pcs`, which lives for the whole call; u8 has no alignment.
    let frames = unsafe { core::slice::from_raw_parts(pcs.as_ptr() as *const u8, pcs.len() * 8) };
    ring::emit(kind::STACK_DEF, &[&head, frames]);
    id
}
