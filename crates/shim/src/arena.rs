//! The shim's private memory: one large reservation carved into power-of-two chunks.
//!
//! Keeping every byte the shim owns in one address range matters for the leak scan: the
//! live-block table holds a pointer to every block, so the scan must skip it, and one range
//! is trivial to skip. Pages are only touched when used (MAP_NORESERVE), and freed chunks go
//! to a free list per size class for reuse.

use crate::sys::{map_anon, SpinLock};
use core::sync::atomic::{AtomicUsize, Ordering};

const MIN_SHIFT: usize = 12;
const CLASSES: usize = 40;
/// Chunks smaller than this keep their pages when freed and are zeroed when handed out
/// again. An madvise per free costs a syscall and, in a threaded program, a TLB shootdown
/// on every other core; the live-block table's shards rebuild small chunks often.
const KEEP_BELOW: usize = 256 << 10;

struct Arena {
    base: AtomicUsize,
    len: AtomicUsize,
    next: AtomicUsize,
    lock: SpinLock,
    free: [AtomicUsize; CLASSES],
}

static ARENA: Arena = Arena {
    base: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    next: AtomicUsize::new(0),
    lock: SpinLock::new(),
    free: [const { AtomicUsize::new(0) }; CLASSES],
};

fn class_of(len: usize) -> usize {
    let len = len.max(1 << MIN_SHIFT).next_power_of_two();
    len.trailing_zeros() as usize - MIN_SHIFT
}

fn reserve() -> bool {
    if ARENA.base.load(Ordering::Acquire) != 0 {
        return true;
    }
    // 64 GiB of address space; under strict overcommit fall back to smaller sizes.
    for shift in [36usize, 34, 32, 30] {
        let p = map_anon(1 << shift, true);
        if !p.is_null() {
            ARENA.len.store(1 << shift, Ordering::Relaxed);
            ARENA.next.store(p as usize, Ordering::Relaxed);
            ARENA.base.store(p as usize, Ordering::Release);
            return true;
        }
    }
    false
}

/// The table `slot` points to, made on first use: `len` zeroed entries of `T` (for which
/// all-zero bytes must be a valid value). Threads racing to make it agree on one; the
/// others' chunks go back. Null when out of space (the caller does without the table).
pub fn shared_table<T>(slot: &core::sync::atomic::AtomicPtr<T>, len: usize) -> *mut T {
    let p = slot.load(Ordering::Acquire);
    if !p.is_null() {
        return p;
    }
    let bytes = len * core::mem::size_of::<T>();
    let fresh = alloc(bytes) as *mut T;
    if fresh.is_null() {
        return fresh;
    }
    match slot.compare_exchange(
        core::ptr::null_mut(),
        fresh,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => fresh,
        Err(other) => {
            free(fresh as *mut u8, bytes);
            other
        }
    }
}

/// A zeroed chunk of at least `len` bytes (page aligned), or null when out of space.
pub fn alloc(len: usize) -> *mut u8 {
    let class = class_of(len);
    if class >= CLASSES {
        return core::ptr::null_mut();
    }
    let size = 1usize << (class + MIN_SHIFT);
    ARENA.lock.lock();
    if !reserve() {
        ARENA.lock.unlock();
        return core::ptr::null_mut();
    }
    let head = ARENA.free[class].load(Ordering::Relaxed);
    let p = if head != 0 {
        // SAFETY: a free chunk stores the next free chunk's address in its first word.
        let next = unsafe { *(head as *const usize) };
        ARENA.free[class].store(next, Ordering::Relaxed);
        head
    } else {
        let p = ARENA.next.load(Ordering::Relaxed);
        let end = ARENA.base.load(Ordering::Relaxed) + ARENA.len.load(Ordering::Relaxed);
        if p + size > end {
            ARENA.lock.unlock();
            return core::ptr::null_mut();
        }
        ARENA.next.store(p + size, Ordering::Relaxed);
        ARENA.lock.unlock();
        return p as *mut u8; // never used: already zero
    };
    ARENA.lock.unlock();
    // SAFETY: the chunk is ours. A small one kept its pages at free: all of it is zeroed;
    // MADV_DONTNEED zeroed a big one but for the link word.
    unsafe {
        if size < KEEP_BELOW {
            core::ptr::write_bytes(p as *mut u8, 0, size);
        } else {
            *(p as *mut usize) = 0;
        }
    }
    p as *mut u8
}

/// Returns a chunk from [`alloc`] of the same `len`.
pub fn free(p: *mut u8, len: usize) {
    if p.is_null() {
        return;
    }
    let class = class_of(len);
    let size = 1usize << (class + MIN_SHIFT);
    if size >= KEEP_BELOW {
        // Give the pages back to the kernel; the range stays reserved.
        // SAFETY: the chunk belongs to the arena and nobody uses it any more.
        unsafe { libc::madvise(p as *mut libc::c_void, size, libc::MADV_DONTNEED) };
    }
    ARENA.lock.lock();
    // SAFETY: as above; the first word links the free list.
    unsafe { *(p as *mut usize) = ARENA.free[class].load(Ordering::Relaxed) };
    ARENA.free[class].store(p as usize, Ordering::Relaxed);
    ARENA.lock.unlock();
}

/// The arena's address range, for the leak scan to skip.
pub fn range() -> (usize, usize) {
    let base = ARENA.base.load(Ordering::Acquire);
    (base, base + ARENA.len.load(Ordering::Relaxed))
}

/// Fork support: the arena's lists must not be half-updated in the child.
pub fn lock() {
    ARENA.lock.lock();
}
pub fn unlock() {
    ARENA.lock.unlock();
}
pub fn force_unlock() {
    ARENA.lock.force_unlock();
}
