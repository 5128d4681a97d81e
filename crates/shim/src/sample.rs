//! Sampled guard mode (`--mode=sampled`): which new blocks go against a guard page.
//!
//! Guard mode gives every block pages of its own. The kernel's part of that (a guard
//! installed at free, a fresh zeroed page at the next allocation) is about 2 us a block on
//! our machines, so an allocation-bound program runs slower than under memcheck
//! (docs/performance.md). Sampled mode guards the blocks a bug is most likely to show on,
//! and leaves the others to fast mode's path (glibc's heap, an inline header, canaries
//! checked at free):
//!
//! - every call site's first `FIRST` blocks. A site is the allocation's first three frames
//!   (the call and its two callers): enough to tell apart the callers of a wrapper such as
//!   `xmalloc` or `operator new`, few enough that recursive code (a tree built by a
//!   function calling itself) has a handful of sites, not one per path from the root. A
//!   test that reaches a site at all has its first blocks checked at the instruction: an
//!   off-by-one in the code that sizes or fills them faults there, as in guard mode.
//! - after that, one block in `RATE` on average: a countdown per thread, drawn from a
//!   generator with a fixed seed, so a single-threaded program has the same blocks guarded
//!   on every run, and a loop that allocates in a fixed pattern is not sampled in step
//!   with it.
//!
//! Sites are counted in a table of 64K entries, four ways to a set, each the site's hash
//! with its count in the low byte. Entries are read and written without a
//! read-modify-write: two threads racing on a new site may guard a block or two more than
//! `FIRST`. A site that loses its entry to others (more than four busy sites in one set)
//! starts its count again, which guards more blocks, never fewer. Once a site has had its
//! share its entry is only read, so threads allocating from one hot site share its line.

use crate::arena;
use core::cell::Cell;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// One block in this many is guarded after each site's first ones; 0 guards every block
/// (guard mode).
pub static RATE: AtomicU32 = AtomicU32::new(0);
/// Blocks guarded at each call site before the rate applies (at most 255).
pub static FIRST: AtomicU32 = AtomicU32::new(0);

/// Entries of the site table, and entries to a set (32 bytes: a set never straddles a cache
/// line).
const SITES: usize = 1 << 16;
const WAYS: usize = 4;
static SEEN: AtomicPtr<AtomicU64> = AtomicPtr::new(core::ptr::null_mut());

thread_local! {
    /// Allocations left before this thread's next sampled one (0: none drawn yet).
    static COUNTDOWN: Cell<u32> = const { Cell::new(0) };
    /// The thread's generator state (xorshift64), started from a fixed seed.
    static STATE: Cell<u64> = const { Cell::new(0x9E37_79B9_7F4A_7C15) };
}

/// Whether sampling is on (otherwise every block is guarded, or none in fast mode).
#[inline]
pub fn active() -> bool {
    RATE.load(Ordering::Relaxed) != 0
}

/// Whether the new block allocated at `site` (`stacks::last_site`, 0 if unknown) goes
/// against a guard page. Every block does when sampling is off.
#[inline]
pub fn guards(site: u64) -> bool {
    let rate = RATE.load(Ordering::Relaxed);
    rate == 0 || first_at_site(site) || countdown(rate)
}

/// Counts one more block at `site` while it has had fewer than `FIRST`.
#[inline]
fn first_at_site(site: u64) -> bool {
    let first = FIRST.load(Ordering::Relaxed).min(255) as u64;
    if first == 0 || site == 0 {
        return false;
    }
    let table = arena::shared_table(&SEEN, SITES);
    if table.is_null() {
        return false;
    }
    let tag = site & !0xff;
    let set = (site >> 8) as usize % (SITES / WAYS) * WAYS;
    // SAFETY: set + WAYS <= SITES, the table's length.
    let ways = unsafe { core::slice::from_raw_parts(table.add(set), WAYS) };
    let mut free = None;
    for way in ways {
        let e = way.load(Ordering::Relaxed);
        if e & !0xff == tag {
            let had = e & 0xff;
            if had >= first {
                return false;
            }
            way.store(tag | (had + 1), Ordering::Relaxed);
            return true;
        }
        if e == 0 && free.is_none() {
            free = Some(way);
        }
    }
    // A new site: an empty way, or one chosen by the site's own bits.
    let way = free.unwrap_or(&ways[(site >> 40) as usize % WAYS]);
    way.store(tag | 1, Ordering::Relaxed);
    true
}

/// True once every `rate` allocations of this thread on average (each gap uniform in
/// 1..=2*rate-1).
#[inline]
fn countdown(rate: u32) -> bool {
    COUNTDOWN.with(|c| {
        let left = match c.get() {
            0 => draw(rate), // the thread's first allocation
            n => n,
        };
        if left > 1 {
            c.set(left - 1);
            return false;
        }
        c.set(draw(rate));
        true
    })
}

fn draw(rate: u32) -> u32 {
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        let span = u64::from(rate).saturating_mul(2).saturating_sub(1).max(1);
        1 + (x % span) as u32
    })
}
