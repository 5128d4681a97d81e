//! The producer side of the event ring (see `wire.rs` for the layout).
//!
//! Every thread of every traced process writes here. A record is reserved with one
//! `fetch_add`, written, and published by a release store of its header word. When the
//! ring is full the producer waits for the consumer; when the consumer is gone the shim
//! stops recording (and says so once) instead of waiting forever.
//!
//! Before the ring is attached (allocations made by the dynamic loader before our
//! constructor runs) records go to a small static buffer that is flushed at attach.

use crate::sys::{self, SpinLock};
use crate::wire::{self, ring_off};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

static BASE: AtomicUsize = AtomicUsize::new(0);
static CAPACITY: AtomicU64 = AtomicU64::new(0);
static MAP_LEN: AtomicUsize = AtomicUsize::new(0);
/// False once the consumer is known to be gone: nothing is recorded any more.
static RECORDING: AtomicBool = AtomicBool::new(true);
static SAID_GONE: AtomicBool = AtomicBool::new(false);

const PREINIT_LEN: usize = 256 * 1024;
struct Preinit {
    lock: SpinLock,
    len: UnsafeCell<usize>,
    dropped: UnsafeCell<usize>,
    buf: UnsafeCell<[u8; PREINIT_LEN]>,
}
// SAFETY: every access to the cells happens under `lock`.
unsafe impl Sync for Preinit {}
static PREINIT: Preinit = Preinit {
    lock: SpinLock::new(),
    len: UnsafeCell::new(0),
    dropped: UnsafeCell::new(0),
    buf: UnsafeCell::new([0; PREINIT_LEN]),
};
static ATTACHED: AtomicBool = AtomicBool::new(false);
static PREINIT_DONE: AtomicU32 = AtomicU32::new(0);

fn header_u64(off: usize) -> &'static AtomicU64 {
    // SAFETY: `off` is one of the 8-byte-aligned header offsets inside the mapped header page,
    // which stays mapped for the life of the process once attached.
    unsafe { &*((BASE.load(Ordering::Relaxed) + off) as *const AtomicU64) }
}

fn header_u32(off: usize) -> &'static AtomicU32 {
    // SAFETY: as in `header_u64`, 4-byte aligned.
    unsafe { &*((BASE.load(Ordering::Relaxed) + off) as *const AtomicU32) }
}

/// Maps the ring whose fd the CLI passed, after checking that it really is our ring: a
/// sealed memfd whose size matches the capacity its header declares. A program that fakes
/// the environment cannot make the shim write outside what it mapped.
pub fn attach(fd: i32) -> Result<(), &'static str> {
    // SAFETY: fcntl/fstat/mmap on an arbitrary fd number are safe to call; results checked.
    unsafe {
        let seals = libc::fcntl(fd, libc::F_GET_SEALS);
        if seals < 0
            || seals & (libc::F_SEAL_SHRINK | libc::F_SEAL_GROW)
                != (libc::F_SEAL_SHRINK | libc::F_SEAL_GROW)
        {
            return Err("the ring fd is not a sealed memfd");
        }
        let mut st: libc::stat = core::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 {
            return Err("cannot stat the ring fd");
        }
        let len = st.st_size as usize;
        if len < wire::RING_HEADER_SIZE + 4096 {
            return Err("the ring is too small");
        }
        let p = libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        );
        if p == libc::MAP_FAILED {
            return Err("cannot map the ring");
        }
        let magic = *(p as *const u64).add(ring_off::MAGIC / 8);
        let version = *(p as *const u32).add(ring_off::VERSION / 4);
        let cap = *(p as *const u64).add(ring_off::CAPACITY / 8);
        if magic != wire::RING_MAGIC
            || version != wire::VERSION
            || !cap.is_power_of_two()
            || cap as usize + wire::RING_HEADER_SIZE != len
        {
            libc::munmap(p, len);
            return Err("the ring header does not match this shim");
        }
        MAP_LEN.store(len, Ordering::Relaxed);
        CAPACITY.store(cap, Ordering::Relaxed);
        BASE.store(p as usize, Ordering::Release);
    }
    // CPUID leaf 0x8000_0001 exists on every x86-64 processor.
    let ext = core::arch::x86_64::__cpuid(0x8000_0001);
    HAS_PREFETCHW.store(ext.ecx & (1 << 8) != 0, Ordering::Relaxed);
    ATTACHED.store(true, Ordering::Release);
    Ok(())
}

/// The ring mapping, for the leak scan to skip.
pub fn range() -> (usize, usize) {
    let b = BASE.load(Ordering::Relaxed);
    (b, b + MAP_LEN.load(Ordering::Relaxed))
}

/// Stops recording for good (no analyzer: the shim was preloaded by hand).
pub fn disable() {
    RECORDING.store(false, Ordering::Relaxed);
}

pub fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

/// Writes one record made of `kind` and the concatenation of `parts`.
pub fn emit(kind: u16, parts: &[&[u8]]) {
    if !RECORDING.load(Ordering::Relaxed) {
        return;
    }
    let payload: usize = parts.iter().map(|p| p.len()).sum();
    let len = wire::record_len(payload);
    if len > wire::MAX_RECORD_LEN {
        return;
    }
    if !ATTACHED.load(Ordering::Acquire) && emit_preinit(kind, len, parts) {
        return;
    }
    // attach finished while we looked: fall through to the ring
    emit_ring(kind, len, parts);
}

fn emit_preinit(kind: u16, len: usize, parts: &[&[u8]]) -> bool {
    PREINIT.lock.lock();
    if PREINIT_DONE.load(Ordering::Relaxed) != 0 {
        PREINIT.lock.unlock();
        return false;
    }
    // SAFETY: we hold the lock that guards the buffer.
    unsafe {
        let used = &mut *PREINIT.len.get();
        let buf = &mut *PREINIT.buf.get();
        if *used + len > PREINIT_LEN {
            *PREINIT.dropped.get() += 1;
        } else {
            let rec = &mut buf[*used..*used + len];
            rec.fill(0);
            rec[..8].copy_from_slice(&wire::record_header(len as u32, kind).to_le_bytes());
            let mut at = 8;
            for p in parts {
                rec[at..at + p.len()].copy_from_slice(p);
                at += p.len();
            }
            *used += len;
        }
    }
    PREINIT.lock.unlock();
    true
}

/// Moves what was recorded before the ring was attached into the ring. Called by the
/// constructor right after the process announced itself.
pub fn flush_preinit() {
    PREINIT.lock.lock();
    // SAFETY: we hold the lock; records in the buffer were written whole by `emit_preinit`.
    unsafe {
        let used = *PREINIT.len.get();
        let buf = &*PREINIT.buf.get();
        let mut at = 0;
        while at + 8 <= used {
            let word = u64::from_le_bytes(buf[at..at + 8].try_into().unwrap_or([0; 8]));
            let (len, kind) = wire::split_header(word);
            let len = len as usize;
            if len < 8 || at + len > used {
                break;
            }
            emit_ring(kind, len, &[&buf[at + 8..at + len]]);
            at += len;
        }
        *PREINIT.len.get() = 0;
        let dropped = *PREINIT.dropped.get();
        if dropped > 0 {
            header_u64(ring_off::DROPPED).fetch_add(dropped as u64, Ordering::Relaxed);
        }
    }
    PREINIT_DONE.store(1, Ordering::Relaxed);
    PREINIT.lock.unlock();
}

fn consumer_alive() -> bool {
    if header_u32(ring_off::CONSUMER_STATE).load(Ordering::Acquire) != wire::CONSUMER_ALIVE {
        return false;
    }
    let pid = header_u32(ring_off::CONSUMER_PID).load(Ordering::Relaxed);
    if pid == 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence.
    unsafe { libc::kill(pid as i32, 0) == 0 || sys::errno() == libc::EPERM }
}

fn stop_recording() {
    RECORDING.store(false, Ordering::Relaxed);
    if !SAID_GONE.swap(true, Ordering::Relaxed) {
        let mut b = [0u8; 20];
        sys::write_all(2, b"fencepost: the analyzer is gone; process ");
        sys::write_all(2, sys::fmt_u64(sys::getpid() as u64, &mut b));
        sys::write_all(2, b" runs on without being recorded\n");
    }
}

/// The consumer's position as last seen by any producer.
static KNOWN_TAIL: AtomicU64 = AtomicU64::new(0);

/// Waits until the consumer has made room for a record ending at `end`.
#[cold]
fn wait_for_room(end: u64, cap: u64) {
    let tail = header_u64(ring_off::TAIL);
    let mut waited = 0u32;
    loop {
        let t = tail.load(Ordering::Acquire);
        KNOWN_TAIL.fetch_max(t, Ordering::Relaxed);
        if end - t <= cap {
            return;
        }
        waited += 1;
        if waited < 100 {
            core::hint::spin_loop();
            continue;
        }
        if waited.is_multiple_of(256) && !consumer_alive() {
            stop_recording();
            return;
        }
        // SAFETY: plain sleeps; the consumer needs the CPU (2 cores).
        unsafe {
            if waited < 1000 {
                libc::sched_yield();
            } else {
                let ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 200_000,
                };
                libc::nanosleep(&ts, core::ptr::null_mut());
            }
        }
    }
}

/// How far ahead of its record a producer asks for the ring's lines.
///
/// The consumer clears what it has read, so the lines a producer writes next were last
/// written on the other core. The write itself is no wait (the store buffer holds it), but
/// the next locked instruction (the next reservation, a shard lock) waits until every
/// earlier store is done, line fetches included: perf put most of the ring's and the shard
/// locks' samples just after their `lock` instructions. Asked for 1 KiB ahead, about ten
/// records, a line has arrived by the time it is written. Measured with alternating runs:
/// binary trees -6%, threads churn -5%, deep stack -2%, live-million -1.5%; 256 B and 4 KiB
/// ahead did as well as 1 KiB.
const PREFETCH_AHEAD: usize = 1024;

/// The processor has `prefetchw` (CPUID PRFCHW; Intel since Broadwell, AMD since K8).
static HAS_PREFETCHW: AtomicBool = AtomicBool::new(false);

/// Asks for the cache line at `addr` in a state ready for writing (`prefetchw`), or for
/// reading where the processor has no `prefetchw` (`prefetcht0`, measured within 1% of it
/// on binary trees). Only a hint: it faults on nothing and changes no memory. Used for the
/// ring's lines and for the chunks about to leave fast mode's quarantine.
#[inline(always)]
pub(crate) fn prefetch_for_write(addr: usize) {
    // SAFETY: a prefetch never faults and writes nothing; prefetchw only where CPUID says
    // the processor has it.
    unsafe {
        if HAS_PREFETCHW.load(Ordering::Relaxed) {
            core::arch::asm!(
                "prefetchw [{}]",
                in(reg) addr,
                options(nostack, readonly, preserves_flags)
            );
        } else {
            core::arch::asm!(
                "prefetcht0 [{}]",
                in(reg) addr,
                options(nostack, readonly, preserves_flags)
            );
        }
    }
}

fn emit_ring(kind: u16, len: usize, parts: &[&[u8]]) {
    let base = BASE.load(Ordering::Relaxed);
    let cap = CAPACITY.load(Ordering::Relaxed) as usize;
    let data = base + wire::RING_HEADER_SIZE;
    let pos = header_u64(ring_off::RESERVE).fetch_add(len as u64, Ordering::Relaxed);
    // The consumer moves `tail` after every record; reading it each time would bounce its
    // cache line between the cores. A stale value is safe (it only underestimates room).
    let end = pos + len as u64;
    if end - KNOWN_TAIL.load(Ordering::Relaxed) > cap as u64 {
        wait_for_room(end, cap as u64);
        if !RECORDING.load(Ordering::Relaxed) {
            return;
        }
    }
    let start = (pos as usize) & (cap - 1);
    prefetch_for_write(data + ((start + PREFETCH_AHEAD) & (cap - 1)));
    let mut off = start + 8;
    for p in parts {
        let mut src = *p;
        while !src.is_empty() {
            let at = off & (cap - 1);
            let n = src.len().min(cap - at);
            // SAFETY: [at, at+n) lies inside the data area, in space this record reserved
            // and the consumer has released (the wait above).
            unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), (data + at) as *mut u8, n) };
            src = &src[n..];
            off += n;
        }
    }
    let header = wire::record_header(len as u32, kind);
    // SAFETY: `start` is 8-aligned (records are multiples of 8, capacity a power of two ≥ 8),
    // inside the data area; the release store publishes the payload written above.
    unsafe { (*((data + start) as *const AtomicU64)).store(header, Ordering::Release) };
}
