//! The table of live blocks: address → size, allocating family, entry point, stack.
//!
//! Sharded open addressing in arena memory (never in user pages, so an overrun cannot
//! corrupt it). Each shard has its own lock; the event for a change is emitted while the
//! shard lock is held, so the ring's order of alloc/free events for one address is the order
//! in which the table saw them, and a fork (which takes every shard lock) sees a table that
//! matches the events before its `ForkPrepare`.

use crate::arena;
use crate::sys::SpinLock;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

const SHARDS: usize = 64;
const EMPTY: u64 = 0;
const TOMB: u64 = 1;

#[derive(Clone, Copy, Default)]
#[repr(C)]
pub struct BlockMeta {
    pub size: u64,
    pub stack: u32,
    pub family: u8,
    pub func: u8,
    /// Where the block lives: `PLACE_*`.
    pub place: u8,
}

/// A glibc block, as handed out (fast mode, or before the guard heap could be used).
pub const PLACE_GLIBC: u8 = 0;
/// A block of the guard-page heap.
pub const PLACE_GUARDED: u8 = 1;
/// A glibc block between canary red zones (the guard heap's budget was reached).
pub const PLACE_PACKED: u8 = 2;
/// A glibc block with its metadata in a header in front of it (fast mode, see `inline`);
/// in the table only when the inline bitmap had no room for it.
pub const PLACE_INLINE: u8 = 3;

#[derive(Clone, Copy)]
#[repr(C)]
struct Slot {
    key: u64,
    meta: BlockMeta,
}

struct ShardData {
    slots: *mut Slot,
    cap: usize,
    len: usize,
    tombs: usize,
}

/// A cache line (two, counting the spatial prefetcher's pairs) of its own: packed at 56
/// bytes, two threads working in neighbouring shards bounced one line between their cores.
#[repr(align(128))]
pub struct Shard {
    lock: SpinLock,
    data: UnsafeCell<ShardData>,
}

// SAFETY: `data` is only touched with `lock` held (or by the single thread left at exit/fork).
unsafe impl Sync for Shard {}

static TABLE: [Shard; SHARDS] = [const {
    Shard {
        lock: SpinLock::new(),
        data: UnsafeCell::new(ShardData {
            slots: core::ptr::null_mut(),
            cap: 0,
            len: 0,
            tombs: 0,
        }),
    }
}; SHARDS];

/// A block's page, scattered: picks the first slot's neighbourhood (and, in the guard heap,
/// the shard).
#[inline]
fn page_hash(addr: u64) -> u64 {
    let x = (addr >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^ (x >> 29)
}

/// Where the search for `addr` starts (before masking): a window of 256 slots picked by its
/// page, and in it the block's offset in the page in 16-byte steps. Blocks allocated one
/// after another in one page (glibc's heap) get neighbouring slots, so their inserts and
/// removes share cache lines; blocks on different pages (the guard heap) land anywhere.
///
/// Windows are aligned, so two pages share a whole window or none, and the offset is
/// XORed with bits of the page's hash that neither the window nor the shard uses: two
/// pages of small blocks (every other 16-byte step used) that share a window fill its
/// slots in turn instead of probing past each other. With windows that overlapped at
/// any slot and plain offsets, inserts spent most of their time probing; binary trees in
/// fast mode ran 7-10% slower.
#[inline]
fn home(addr: u64) -> u64 {
    let ph = page_hash(addr);
    (ph << 8) | (((addr >> 4) ^ (ph >> 32)) & 0xff)
}

/// The shard for `addr`. In the guard heap, by page (a block per page; threads take slots
/// from one region). Elsewhere, by 64 MiB region of address space: glibc gives each thread
/// an arena of its own, each arena but the main one a 64 MiB-aligned heap, so a thread's
/// blocks share a few shards that no other thread touches and their lock lines stay in
/// that thread's cache. Scattered by page, every lock was a line last written on the other
/// core: two threads churning blocks ran 11% faster by region (`thread_churn`), and a
/// single thread takes no lock either way. A bitmap word of `inline` (1 KiB) lies within
/// one region, so its bits change under one shard's lock.
fn shard_of(addr: u64) -> &'static Shard {
    let (lo, hi) = crate::guard::region();
    let key = if (lo as u64..hi as u64).contains(&addr) {
        page_hash(addr)
    } else {
        (addr >> 26).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    };
    &TABLE[(key >> 58) as usize % SHARDS]
}

/// glibc's `__libc_single_threaded` (2.32+), found at start; null before that, or when
/// this glibc has none (then every operation locks).
static SINGLE_THREADED: AtomicPtr<AtomicU8> = AtomicPtr::new(core::ptr::null_mut());

/// Finds glibc's flag for "no thread was ever created". Called by the constructor.
pub fn find_single_threaded_flag() {
    // SAFETY: dlsym with a NUL-terminated name; the variable lives as long as libc.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__libc_single_threaded".as_ptr()) };
    SINGLE_THREADED.store(p as *mut AtomicU8, Ordering::Relaxed);
}

/// True while the process has one thread and always had: glibc clears the flag in
/// pthread_create before the new thread exists, and never sets it again (libstdc++ skips
/// its reference-count atomics on the same flag). No other thread can then be in the
/// table, so its locks, an atomic read-modify-write each, are skipped. A signal handler
/// that allocates while this thread is in the table does not get here: the shim's
/// reentrancy flag sends it to glibc directly.
#[inline]
fn single_threaded() -> bool {
    let p = SINGLE_THREADED.load(Ordering::Relaxed);
    // SAFETY: null, or glibc's one-byte flag, which lives as long as the process.
    !p.is_null() && unsafe { &*p }.load(Ordering::Relaxed) != 0
}

/// The shard responsible for `addr`, locked. Dropping the guard unlocks it.
pub fn lock(addr: u64) -> ShardGuard {
    if single_threaded() {
        return ShardGuard { addr, locked: None };
    }
    let shard = shard_of(addr);
    shard.lock.lock();
    ShardGuard {
        addr,
        locked: Some(shard),
    }
}

pub struct ShardGuard {
    addr: u64,
    /// The shard, locked; None when the process was single-threaded at `lock` (it still
    /// is at drop: the shim creates no thread while it holds a shard), and the shard is
    /// found only if its table is used.
    locked: Option<&'static Shard>,
}

impl Drop for ShardGuard {
    fn drop(&mut self) {
        if let Some(shard) = self.locked {
            shard.lock.unlock();
        }
    }
}

impl ShardGuard {
    fn data(&mut self) -> &mut ShardData {
        let shard = self.locked.unwrap_or_else(|| shard_of(self.addr));
        // SAFETY: the guard holds the shard lock, or the process has one thread.
        unsafe { &mut *shard.data.get() }
    }

    /// Records a new live block. Returns false only if no memory could be had for the table.
    pub fn insert(&mut self, addr: u64, meta: BlockMeta) -> bool {
        let d = self.data();
        if (d.len + d.tombs + 1) * 4 > d.cap * 3 && !grow(d) {
            return false;
        }
        let mask = d.cap - 1;
        let mut i = home(addr) as usize & mask;
        loop {
            // SAFETY: i < cap; slots points at cap slots.
            let s = unsafe { &mut *d.slots.add(i) };
            if s.key == EMPTY || s.key == TOMB || s.key == addr {
                if s.key == TOMB {
                    d.tombs -= 1;
                }
                if s.key != addr {
                    d.len += 1;
                }
                s.key = addr;
                s.meta = meta;
                return true;
            }
            i = (i + 1) & mask;
        }
    }

    /// Removes a live block and returns what was known of it.
    pub fn remove(&mut self, addr: u64) -> Option<BlockMeta> {
        let d = self.data();
        if d.cap == 0 || addr <= TOMB {
            return None;
        }
        let mask = d.cap - 1;
        let mut i = home(addr) as usize & mask;
        loop {
            // SAFETY: i < cap.
            let s = unsafe { &mut *d.slots.add(i) };
            if s.key == EMPTY {
                return None;
            }
            if s.key == addr {
                s.key = TOMB;
                d.len -= 1;
                d.tombs += 1;
                return Some(s.meta);
            }
            i = (i + 1) & mask;
        }
    }

    pub fn get(&mut self, addr: u64) -> Option<BlockMeta> {
        let d = self.data();
        if d.cap == 0 || addr <= TOMB {
            return None;
        }
        let mask = d.cap - 1;
        let mut i = home(addr) as usize & mask;
        loop {
            // SAFETY: i < cap.
            let s = unsafe { &*d.slots.add(i) };
            if s.key == EMPTY {
                return None;
            }
            if s.key == addr {
                return Some(s.meta);
            }
            i = (i + 1) & mask;
        }
    }
}

fn grow(d: &mut ShardData) -> bool {
    let new_cap = if d.len * 2 < d.cap {
        d.cap.max(256)
    } else {
        (d.cap * 2).max(256)
    };
    let bytes = new_cap * core::mem::size_of::<Slot>();
    let slots = arena::alloc(bytes) as *mut Slot;
    if slots.is_null() {
        return false;
    }
    let mask = new_cap - 1;
    for i in 0..d.cap {
        // SAFETY: i < old cap.
        let s = unsafe { *d.slots.add(i) };
        if s.key > TOMB {
            let mut j = home(s.key) as usize & mask;
            // SAFETY: j < new_cap; the new array is zeroed (EMPTY keys).
            unsafe {
                while (*slots.add(j)).key != EMPTY {
                    j = (j + 1) & mask;
                }
                *slots.add(j) = s;
            }
        }
    }
    if !d.slots.is_null() {
        arena::free(d.slots as *mut u8, d.cap * core::mem::size_of::<Slot>());
    }
    d.slots = slots;
    d.cap = new_cap;
    d.tombs = 0;
    true
}

/// Takes every shard lock (fork prepare, exit scan).
pub fn lock_all() {
    for s in TABLE.iter() {
        s.lock.lock();
    }
}

pub fn unlock_all() {
    for s in TABLE.iter() {
        s.lock.unlock();
    }
}

/// In the child after fork: the threads that held locks are gone.
pub fn reset_locks_after_fork() {
    for s in TABLE.iter() {
        s.lock.force_unlock();
    }
}

/// Number of live blocks. Call with every lock held.
pub fn live_count() -> usize {
    // SAFETY: the caller holds every shard lock.
    TABLE.iter().map(|s| unsafe { (*s.data.get()).len }).sum()
}

/// Calls `f` for every live block. Call with every lock held.
pub fn for_each(mut f: impl FnMut(u64, BlockMeta)) {
    for s in TABLE.iter() {
        // SAFETY: the caller holds every shard lock.
        let d = unsafe { &*s.data.get() };
        for i in 0..d.cap {
            // SAFETY: i < cap.
            let slot = unsafe { *d.slots.add(i) };
            if slot.key > TOMB {
                f(slot.key, slot.meta);
            }
        }
    }
}
