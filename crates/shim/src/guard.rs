//! The guard-page heap: every block on its own run of pages, its end touching a guard page.
//!
//! A slot is `npages` data pages followed by one guard page (or, with `--protect-below`, one
//! guard page followed by the data pages). The block is placed so that it ends exactly at the
//! guard (start = end of data − size, rounded down to the block's natural alignment), so an
//! off-by-one access faults on the instruction itself. The few bytes of slack that alignment
//! leaves, and the bytes before the block, are canaries checked at free.
//!
//! Guards are made with `madvise(MADV_GUARD_INSTALL)` (Linux 6.13+), which adds no mapping:
//! a fresh stretch of the region is guarded whole with one call, and a slot's data pages are
//! opened with one `MADV_GUARD_REMOVE` when it is handed out. A freed block's data pages are
//! guarded again (which also gives their memory back) and the slot waits in a FIFO quarantine
//! bounded in bytes before it is reused, so a use after free faults. On older kernels the same
//! is done with `mprotect`, within a budget of mappings read from `vm.max_map_count`.
//!
//! All metadata (slot records, the page → slot map, free lists, the quarantine) lives in the
//! shim's arena, outside user pages: an overrun cannot corrupt it. The fault handler reads it
//! without locks.
//!
//! A guarded block's slot is its only record: it is not in the table too. A slot goes
//! FREE → RESERVED (handed out, under the heap lock) → LIVE (its allocation recorded) →
//! RELEASING (its release recorded) → QUARANTINED (guarded again, under the heap lock) →
//! FREE. The LIVE transitions, in and out, are made under the table's shard lock for the
//! block's address, with the record that goes with them, exactly as table entries are
//! inserted and removed: so a release racing an allocation of the same address is ordered
//! in the ring as it is in the program, and a fork or the exit scan, which hold every
//! shard lock, see no block half recorded. A bit per slot, under the heap lock, marks the
//! slots between RESERVED and QUARANTINED, so the exit scan reads those, not every slot.

use crate::arena;
use crate::sys::SpinLock;
use crate::table::{BlockMeta, PLACE_GUARDED};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

pub const PAGE: usize = 4096;
const MADV_GUARD_INSTALL: i32 = 102;
const MADV_GUARD_REMOVE: i32 = 103;

/// Address space reserved for the heap; only touched pages cost memory.
const REGION_LEN: usize = 1 << 40;
/// Most pages a slot may have on the fast free lists (bigger slots use the large list).
const SMALL_CLASSES: usize = 64;
/// How much fresh region is guarded at once.
const CARVE_CHUNK: usize = 64 << 20;

/// Bytes written around blocks and checked at free.
pub const CANARY: u8 = 0xfd;
/// Canary bytes checked before a block (its underflow red zone).
pub const REDZONE: usize = 16;

pub const SLOT_FREE: u8 = 0;
pub const SLOT_LIVE: u8 = 1;
pub const SLOT_QUARANTINED: u8 = 2;
/// Handed out by `alloc`, its allocation not yet recorded (`publish`).
pub const SLOT_RESERVED: u8 = 3;
/// Its release recorded (`claim`), its pages not yet guarded (`free`).
pub const SLOT_RELEASING: u8 = 4;

/// What the fault handler needs to know of a slot. Written by the allocator under the heap
/// lock, read by the fault handler without it: every field is atomic, and a torn view only
/// makes a report less precise, never unsafe.
#[repr(C)]
pub struct Slot {
    /// First page of the slot (its guard included), as an address.
    pub base: AtomicU64,
    /// Data pages (the guard page is one more).
    pub npages: AtomicU32,
    pub state: AtomicU8,
    pub family: AtomicU8,
    pub alloc_func: AtomicU8,
    pub free_func: AtomicU8,
    pub block: AtomicU64,
    pub size: AtomicU64,
    pub alloc_stack: AtomicU32,
    pub free_stack: AtomicU32,
    /// Next slot in a free list or the quarantine.
    next: AtomicU32,
    /// The guard page is below the data pages (`--protect-below` when the slot's pages were
    /// opened): blocks allocated before the options were read keep the layout they got.
    pub below: AtomicBool,
}

impl Slot {
    /// The first data page: after the guard page when it is below.
    pub fn data(&self) -> usize {
        let base = self.base.load(Ordering::Relaxed) as usize;
        if self.below.load(Ordering::Relaxed) {
            base + PAGE
        } else {
            base
        }
    }
}

struct Heap {
    lock: SpinLock,
    inner: UnsafeCell<Inner>,
}

struct Inner {
    /// Next never-used address of the region.
    bump: usize,
    /// Region addresses below this are guarded whole, ready to be carved.
    guarded_to: usize,
    nslots: u32,
    free_small: [u32; SMALL_CLASSES + 1],
    /// Slots of a small class whose data pages are already open and populated, not yet
    /// handed out (see `open_batch`).
    open_small: [u32; SMALL_CLASSES + 1],
    free_large: u32,
    quarantine_head: u32,
    quarantine_tail: u32,
    quarantine_bytes: u64,
    quarantine_max_seen: u64,
    live_bytes: u64,
}

// SAFETY: `inner` is only touched with `lock` held.
unsafe impl Sync for Heap {}

static HEAP: Heap = Heap {
    lock: SpinLock::new(),
    inner: UnsafeCell::new(Inner {
        bump: 0,
        guarded_to: 0,
        nslots: 0,
        free_small: [0; SMALL_CLASSES + 1],
        open_small: [0; SMALL_CLASSES + 1],
        free_large: 0,
        quarantine_head: 0,
        quarantine_tail: 0,
        quarantine_bytes: 0,
        quarantine_max_seen: 0,
        live_bytes: 0,
    }),
};

static REGION: AtomicUsize = AtomicUsize::new(0);
static SLOTS: AtomicUsize = AtomicUsize::new(0);
/// Page index (from the region start) → slot id + 1; 0 for none.
static PAGE_MAP: AtomicUsize = AtomicUsize::new(0);
/// One bit per slot id: set from RESERVED until QUARANTINED. Changed under the heap lock.
static IN_USE: AtomicUsize = AtomicUsize::new(0);
const MAX_SLOTS: usize = 1 << 26;
static READY: AtomicBool = AtomicBool::new(false);
static FAILED: AtomicBool = AtomicBool::new(false);
/// Guards by madvise (true) or by mprotect (false, older kernels).
static MADV_GUARDS: AtomicBool = AtomicBool::new(true);
/// Use mprotect even where the kernel has guard madvise (`--guards=mprotect`: the path of
/// kernels older than 6.13, testable on newer ones).
pub static FORCE_MPROTECT: AtomicBool = AtomicBool::new(false);
/// With mprotect, each guarded slot may cost two mappings: stop guarding new slots here.
static MPROTECT_SLOT_BUDGET: AtomicU32 = AtomicU32::new(0);

// Options (set once from FENCEPOST_OPTIONS before the first allocation).
pub static PROTECT_BELOW: AtomicBool = AtomicBool::new(false);
/// `--alignment` (0: not given).
pub static MIN_ALIGN: AtomicUsize = AtomicUsize::new(0);
/// `--alignment=standard`, or a Rust program (`process::init`) without `--alignment`: every
/// block gets the alignment the C standard promises malloc (`standard_alignment`).
pub static STANDARD_ALIGN: AtomicBool = AtomicBool::new(false);
pub static QUARANTINE_MAX: AtomicU64 = AtomicU64::new(256 << 20);
pub static GUARD_BUDGET: AtomicU64 = AtomicU64::new(0);

pub static GUARDED_BLOCKS: AtomicU64 = AtomicU64::new(0);
pub static UNGUARDED_BLOCKS: AtomicU64 = AtomicU64::new(0);

fn slots() -> *const Slot {
    SLOTS.load(Ordering::Acquire) as *const Slot
}

/// The slot with this id (ids start at 1).
pub fn slot(id: u32) -> Option<&'static Slot> {
    let base = slots();
    if id == 0 || base.is_null() || id as usize > MAX_SLOTS {
        return None;
    }
    // SAFETY: ids below `nslots` index initialised arena memory of MAX_SLOTS slots; a stale
    // id still points into that array (zeroed or a live record).
    Some(unsafe { &*base.add(id as usize - 1) })
}

fn page_map() -> *const AtomicU32 {
    PAGE_MAP.load(Ordering::Acquire) as *const AtomicU32
}

/// The region's address range, for the fault handler and the leak scan.
pub fn region() -> (usize, usize) {
    let r = REGION.load(Ordering::Acquire);
    (r, if r == 0 { 0 } else { r + REGION_LEN })
}

/// The slot covering `addr`, if it lies in the region.
pub fn slot_at(addr: usize) -> Option<(u32, &'static Slot)> {
    let (lo, hi) = region();
    if addr < lo || addr >= hi {
        return None;
    }
    let map = page_map();
    if map.is_null() {
        return None;
    }
    // SAFETY: the page map covers the whole region.
    let id = unsafe { (*map.add((addr - lo) / PAGE)).load(Ordering::Acquire) };
    slot(id).map(|s| (id, s))
}

fn guard(addr: usize, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    // SAFETY: [addr, addr+len) lies in our region; guarding discards its contents.
    unsafe {
        if MADV_GUARDS.load(Ordering::Relaxed) {
            libc::madvise(addr as *mut libc::c_void, len, MADV_GUARD_INSTALL) == 0
        } else {
            libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED);
            libc::mprotect(addr as *mut libc::c_void, len, libc::PROT_NONE) == 0
        }
    }
}

fn unguard(addr: usize, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    // SAFETY: [addr, addr+len) lies in our region.
    unsafe {
        if MADV_GUARDS.load(Ordering::Relaxed) {
            libc::madvise(addr as *mut libc::c_void, len, MADV_GUARD_REMOVE) == 0
        } else {
            libc::mprotect(
                addr as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
            ) == 0
        }
    }
}

/// Opens one page for the single-stepped instruction of a fault (see `faults.rs`).
pub fn open_page(page: usize) -> bool {
    unguard(page, PAGE)
}

/// Closes it again after the step.
pub fn close_page(page: usize) -> bool {
    guard(page, PAGE)
}

fn read_max_map_count() -> u32 {
    let mut buf = [0u8; 32];
    // SAFETY: open/read/close into our buffer.
    let n = unsafe {
        let fd = libc::open(
            c"/proc/sys/vm/max_map_count".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return 65530;
        }
        let n = libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len());
        libc::close(fd);
        n
    };
    let text = &buf[..n.max(0) as usize];
    let digits = text
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(text.len());
    crate::sys::parse_u64(&text[..digits]).unwrap_or(65530) as u32
}

/// Reserves the region and metadata. False when the machine cannot give us either; the
/// callers then use glibc blocks with canaries.
fn init() -> bool {
    if READY.load(Ordering::Acquire) {
        return true;
    }
    if FAILED.load(Ordering::Relaxed) {
        return false;
    }
    let region = crate::sys::map_anon(REGION_LEN, true);
    let slots = arena::alloc(MAX_SLOTS * core::mem::size_of::<Slot>());
    let map = arena::alloc(REGION_LEN / PAGE * 4);
    let in_use = arena::alloc(MAX_SLOTS / 8);
    if region.is_null() || slots.is_null() || map.is_null() || in_use.is_null() {
        FAILED.store(true, Ordering::Relaxed);
        return false;
    }
    // Does this kernel have guard-page madvise? Try it on the first page.
    // SAFETY: the first page of our fresh region.
    let ok = !FORCE_MPROTECT.load(Ordering::Relaxed)
        && unsafe { libc::madvise(region as *mut libc::c_void, PAGE, MADV_GUARD_INSTALL) } == 0;
    if ok {
        // SAFETY: as above.
        unsafe { libc::madvise(region as *mut libc::c_void, PAGE, MADV_GUARD_REMOVE) };
    } else {
        MADV_GUARDS.store(false, Ordering::Relaxed);
        // Leave room for the program's own mappings: use at most half the limit.
        MPROTECT_SLOT_BUDGET.store(read_max_map_count() / 4, Ordering::Relaxed);
    }
    if GUARD_BUDGET.load(Ordering::Relaxed) == 0 {
        // SAFETY: sysconf has no preconditions.
        let phys = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) }.max(1) as u64 * PAGE as u64;
        GUARD_BUDGET.store(phys / 4, Ordering::Relaxed);
    }
    SLOTS.store(slots as usize, Ordering::Release);
    PAGE_MAP.store(map as usize, Ordering::Release);
    IN_USE.store(in_use as usize, Ordering::Release);
    // SAFETY: we hold no lock yet; init runs under HEAP.lock (see `alloc`).
    let inner = unsafe { &mut *HEAP.inner.get() };
    inner.bump = region as usize;
    inner.guarded_to = region as usize;
    REGION.store(region as usize, Ordering::Release);
    READY.store(true, Ordering::Release);
    true
}

/// Blocks from this size up get at least glibc's 16-byte alignment by default.
pub const GLIBC_ALIGN_FROM: usize = 512;

/// The alignment a block of `size` bytes gets: the largest power of two dividing the size,
/// capped at 16 (any object of exactly that size needs no more), or what was asked for, or
/// `--alignment`. Without `--alignment`, blocks of 512 bytes and more get 16: programs with
/// their own small-object allocator (CPython's is the common one) put aligned headers in
/// front of odd-sized big blocks and break on odd addresses, while the off-by-one overruns
/// of small string buffers, the common ones, still fault at the instruction.
pub fn natural_alignment(size: usize, asked: usize) -> usize {
    let natural = if size == 0 {
        16
    } else {
        1usize << size.trailing_zeros().min(4)
    };
    let floor = match MIN_ALIGN.load(Ordering::Relaxed) {
        0 if STANDARD_ALIGN.load(Ordering::Relaxed) => standard_alignment(size),
        0 if size >= GLIBC_ALIGN_FROM => 16,
        0 => 1,
        n => n,
    };
    natural.max(asked).max(floor)
}

/// What C17 promises `malloc(size)` (7.22.3: suitably aligned for any object of fundamental
/// alignment and of no more than `size` bytes), and what Rust's allocator relies on when it
/// calls malloc: the largest power of two up to the size, capped at 16. A 244-byte block
/// gets 16, where its natural alignment is 4: Rust's hash tables load their 16-byte control
/// groups with aligned loads.
pub fn standard_alignment(size: usize) -> usize {
    if size == 0 {
        16
    } else {
        1usize << (usize::BITS - 1 - size.leading_zeros()).min(4)
    }
}

/// The word of the in-use bitmap that holds slot `id`'s bit, and the bit.
fn in_use_bit(id: u32) -> Option<(&'static AtomicU64, u64)> {
    let words = IN_USE.load(Ordering::Acquire) as *const AtomicU64;
    if words.is_null() || id == 0 || id as usize > MAX_SLOTS {
        return None;
    }
    let i = id as usize - 1;
    // SAFETY: i < MAX_SLOTS, and the bitmap has MAX_SLOTS bits.
    Some((unsafe { &*words.add(i / 64) }, 1 << (i % 64)))
}

/// Marks slot `id` in use or not. Call with the heap lock held: a plain load and store.
fn set_in_use(id: u32, on: bool) {
    if let Some((word, bit)) = in_use_bit(id) {
        let w = word.load(Ordering::Relaxed);
        word.store(if on { w | bit } else { w & !bit }, Ordering::Relaxed);
    }
}

/// A guarded block, or None when the heap cannot take it (region or budget exhausted):
/// the caller then hands out a glibc block with canaries. The slot is RESERVED until its
/// allocation is recorded (`publish`).
pub fn alloc(size: usize, align: usize, func: u8, family: u8, stack: u32) -> Option<*mut u8> {
    if align > PAGE * 16 || size > REGION_LEN / 4 {
        return None;
    }
    let below = PROTECT_BELOW.load(Ordering::Relaxed);
    // Data pages: the block, plus room to align its start and the underflow red zone.
    let need = if below {
        size.max(1)
    } else {
        size + align.max(1) - 1 + REDZONE
    };
    let npages = need.div_ceil(PAGE).max(1);
    HEAP.lock.lock();
    if !init() {
        HEAP.lock.unlock();
        return None;
    }
    // SAFETY: we hold the heap lock.
    let inner = unsafe { &mut *HEAP.inner.get() };
    let bytes = (npages * PAGE) as u64;
    if inner.live_bytes + bytes > GUARD_BUDGET.load(Ordering::Relaxed) {
        HEAP.lock.unlock();
        return None;
    }
    // A slot whose pages are open already, else a batch of them opened now, else one.
    let mut taken = take_open(inner, npages).map(|id| (id, true));
    if taken.is_none() {
        taken = open_batch(npages).map(|id| (id, true));
    }
    // SAFETY: we hold the heap lock (again, if open_batch let it go).
    let inner = unsafe { &mut *HEAP.inner.get() };
    if taken.is_none() {
        taken = take_free(inner, npages)
            .or_else(|| carve(inner, npages))
            .map(|id| (id, false));
    }
    let Some((id, opened)) = taken else {
        HEAP.lock.unlock();
        return None;
    };
    inner.live_bytes += bytes;
    let s = slot(id)?;
    s.below.store(below, Ordering::Relaxed);
    let data = s.data();
    let data_end = data + npages * PAGE;
    let block = if below {
        data
    } else {
        (data_end - size) & !(align - 1)
    };
    s.block.store(block as u64, Ordering::Relaxed);
    s.size.store(size as u64, Ordering::Relaxed);
    s.alloc_func.store(func, Ordering::Relaxed);
    s.family.store(family, Ordering::Relaxed);
    s.alloc_stack.store(stack, Ordering::Relaxed);
    s.free_stack.store(0, Ordering::Relaxed);
    s.state.store(SLOT_RESERVED, Ordering::Release);
    set_in_use(id, true);
    HEAP.lock.unlock();

    if !opened && !unguard(data, npages * PAGE) {
        // Out of memory for page tables or mappings: give the slot back unused.
        release_slot(id);
        return None;
    }
    GUARDED_BLOCKS.fetch_add(1, Ordering::Relaxed);
    fill_canaries(block, size, data, data_end, below);
    Some(block as *mut u8)
}

/// Writes the canaries: the red zone before the block and the slack after it.
fn fill_canaries(block: usize, size: usize, data: usize, data_end: usize, below: bool) {
    // SAFETY: both ranges are inside the slot's data pages, just opened.
    unsafe {
        if !below {
            let lo = block.saturating_sub(REDZONE).max(data);
            core::ptr::write_bytes(lo as *mut u8, CANARY, block - lo);
        }
        let end = block + size;
        if end < data_end && (below || end > data_end - PAGE) {
            // Only the slack up to the guard (or, below, to the end of the last page).
            let stop = if below {
                (end + PAGE - 1) & !(PAGE - 1)
            } else {
                data_end
            };
            core::ptr::write_bytes(end as *mut u8, CANARY, stop.min(data_end) - end);
        }
    }
}

/// The first overwritten canary byte around a guarded block: (offset from the block start,
/// run length). None when all canaries are intact.
pub fn check_canaries(id: u32) -> Option<(i64, u32)> {
    let s = slot(id)?;
    let below = s.below.load(Ordering::Relaxed);
    let npages = s.npages.load(Ordering::Relaxed) as usize;
    let data = s.data();
    let data_end = data + npages * PAGE;
    let block = s.block.load(Ordering::Relaxed) as usize;
    let size = s.size.load(Ordering::Relaxed) as usize;
    let mut ranges = [(0usize, 0usize); 2];
    if !below {
        ranges[0] = (block.saturating_sub(REDZONE).max(data), block);
    }
    let end = block + size;
    if end < data_end {
        let stop = if below {
            ((end + PAGE - 1) & !(PAGE - 1)).min(data_end)
        } else {
            data_end
        };
        ranges[1] = (end, stop);
    }
    for (lo, hi) in ranges {
        if lo >= hi {
            continue;
        }
        // SAFETY: the ranges are inside the live slot's open data pages.
        let bytes = unsafe { core::slice::from_raw_parts(lo as *const u8, hi - lo) };
        if let Some(first) = bytes.iter().position(|&b| b != CANARY) {
            let run = bytes[first..].iter().take_while(|&&b| b != CANARY).count();
            return Some(((lo + first) as i64 - block as i64, run as u32));
        }
    }
    None
}

/// Slots opened per batch: at most this many, and at most `OPEN_BATCH_PAGES` pages in all,
/// for slots of at most `OPEN_BATCH_SLOT_PAGES` pages. So at most 256 KiB of populated
/// pages wait per size, 4 MiB in all. 64 slots a batch instead of 16: binary trees -2%,
/// deep stack -3% (alternating runs); the arrays below take 1.8 KiB of the caller's stack.
const OPEN_BATCH: usize = 64;
const OPEN_BATCH_PAGES: usize = 64;
const OPEN_BATCH_SLOT_PAGES: usize = 16;

/// `process_madvise` works on this kernel with `PIDFD_SELF` (Linux 6.13+ for any advice on
/// the calling process): cleared at the first failure, after which slots open one by one.
static BATCH_MADVISE: AtomicBool = AtomicBool::new(true);
/// The pidfd sentinel for the calling thread (its process's memory, for madvise).
const PIDFD_SELF: i32 = -10000;
const MADV_POPULATE_WRITE: i32 = 23;

fn take_open(inner: &mut Inner, npages: usize) -> Option<u32> {
    if npages > SMALL_CLASSES {
        return None;
    }
    let head = inner.open_small[npages];
    if head == 0 {
        return None;
    }
    inner.open_small[npages] = slot(head)?.next.load(Ordering::Relaxed);
    Some(head)
}

/// Takes a batch of slots of a small class (free ones, else fresh ones), opens all their
/// data pages and fills them with zeroed memory in two `process_madvise` calls, keeps the
/// rest on the class's open list and returns one. A guard removed and a page faulted in per
/// allocation cost two kernel entries each; batched, a fraction of one.
///
/// Called and returns with the heap lock held; the lock is let go around the system calls
/// (the slots taken are no one else's meanwhile), so the caller must not keep a borrow of
/// the heap's state across the call. None when batching does not apply here
/// (mprotect guards, big slots, a kernel without process_madvise guards).
fn open_batch(npages: usize) -> Option<u32> {
    if !MADV_GUARDS.load(Ordering::Relaxed)
        || !BATCH_MADVISE.load(Ordering::Relaxed)
        || npages > OPEN_BATCH_SLOT_PAGES
    {
        return None;
    }
    // SAFETY: the caller holds the heap lock; this borrow ends before it is let go.
    let inner = unsafe { &mut *HEAP.inner.get() };
    let want = (OPEN_BATCH_PAGES / npages).min(OPEN_BATCH);
    let mut ids = [0u32; OPEN_BATCH];
    let mut n = 0;
    while n < want {
        match take_free(inner, npages).or_else(|| carve(inner, npages)) {
            Some(id) => {
                ids[n] = id;
                n += 1;
            }
            None => break,
        }
    }
    if n == 0 {
        return None;
    }
    let below = PROTECT_BELOW.load(Ordering::Relaxed);
    let mut iov = [libc::iovec {
        iov_base: core::ptr::null_mut(),
        iov_len: 0,
    }; OPEN_BATCH];
    for (v, &id) in iov.iter_mut().zip(&ids[..n]) {
        let data = slot(id).map_or(0, |s| {
            s.below.store(below, Ordering::Relaxed);
            s.data()
        });
        v.iov_base = data as *mut libc::c_void;
        v.iov_len = npages * PAGE;
    }
    HEAP.lock.unlock();
    let total = (n * npages * PAGE) as isize;
    let advise = |advice: i32| {
        // SAFETY: the iovecs name the data pages of slots we took out of the free lists:
        // ours alone until they are handed out. process_madvise only reads the iovecs.
        unsafe {
            libc::syscall(
                libc::SYS_process_madvise,
                PIDFD_SELF,
                iov.as_ptr(),
                n,
                advice,
                0,
            ) as isize
        }
    };
    let opened = advise(MADV_GUARD_REMOVE) == total;
    if opened {
        // Best effort: pages not populated now fault in when first touched.
        advise(MADV_POPULATE_WRITE);
    } else {
        BATCH_MADVISE.store(false, Ordering::Relaxed);
    }
    // Slots the batch call did not open are opened one by one; one that cannot be goes
    // back to the free list (it was never live: `live_bytes` did not count it).
    let mut usable = [0u32; OPEN_BATCH];
    let mut failed = [0u32; OPEN_BATCH];
    let (mut m, mut f) = (0, 0);
    for (v, &id) in iov.iter().zip(&ids[..n]) {
        if opened || unguard(v.iov_base as usize, v.iov_len) {
            usable[m] = id;
            m += 1;
        } else {
            failed[f] = id;
            f += 1;
        }
    }
    HEAP.lock.lock();
    // SAFETY: we hold the heap lock again.
    let inner = unsafe { &mut *HEAP.inner.get() };
    for &id in &failed[..f] {
        push_free(inner, id);
    }
    if m == 0 {
        return None;
    }
    for &id in usable[1..m].iter().rev() {
        if let Some(s) = slot(id) {
            s.next.store(inner.open_small[npages], Ordering::Relaxed);
            inner.open_small[npages] = id;
        }
    }
    Some(usable[0])
}

/// Guards the data pages of the slots opened ahead (`open_batch`) and frees them: called
/// when `--protect-below` is read, after blocks allocated before the options (by other
/// libraries' constructors) opened slots with the guard page after the data. A free slot is
/// guarded whole, so either layout can open it again.
pub fn close_open_slots() {
    HEAP.lock.lock();
    // SAFETY: we hold the heap lock.
    let inner = unsafe { &mut *HEAP.inner.get() };
    for npages in 0..inner.open_small.len() {
        while let Some(id) = take_open(inner, npages) {
            if let Some(s) = slot(id) {
                guard(s.data(), npages * PAGE);
            }
            push_free(inner, id);
        }
    }
    HEAP.lock.unlock();
}

fn take_free(inner: &mut Inner, npages: usize) -> Option<u32> {
    if npages <= SMALL_CLASSES {
        let head = inner.free_small[npages];
        if head != 0 {
            inner.free_small[npages] = slot(head)?.next.load(Ordering::Relaxed);
            return Some(head);
        }
        return None;
    }
    // Large slots: first exact fit (large blocks are rare; the list stays short).
    let mut prev = 0u32;
    let mut cur = inner.free_large;
    while cur != 0 {
        let s = slot(cur)?;
        let next = s.next.load(Ordering::Relaxed);
        if s.npages.load(Ordering::Relaxed) as usize == npages {
            if prev == 0 {
                inner.free_large = next;
            } else {
                slot(prev)?.next.store(next, Ordering::Relaxed);
            }
            return Some(cur);
        }
        prev = cur;
        cur = next;
    }
    None
}

fn carve(inner: &mut Inner, npages: usize) -> Option<u32> {
    let region = REGION.load(Ordering::Relaxed);
    let len = (npages + 1) * PAGE;
    if inner.bump + len > region + REGION_LEN || inner.nslots as usize >= MAX_SLOTS - 1 {
        return None;
    }
    if !MADV_GUARDS.load(Ordering::Relaxed)
        && inner.nslots >= MPROTECT_SLOT_BUDGET.load(Ordering::Relaxed)
    {
        return None; // out of mappings: canaries only from here on
    }
    let base = inner.bump;
    if base + len > inner.guarded_to {
        let to = (base + len)
            .max(inner.guarded_to + CARVE_CHUNK)
            .min(region + REGION_LEN);
        if !guard(inner.guarded_to, to - inner.guarded_to) {
            return None;
        }
        inner.guarded_to = to;
    }
    inner.bump += len;
    inner.nslots += 1;
    let id = inner.nslots;
    let s = slot(id)?;
    s.base.store(base as u64, Ordering::Relaxed);
    s.npages.store(npages as u32, Ordering::Relaxed);
    let map = page_map();
    let first = (base - region) / PAGE;
    for p in first..first + npages + 1 {
        // SAFETY: p indexes the page map, which covers the region.
        unsafe { (*map.add(p)).store(id, Ordering::Release) };
    }
    Some(id)
}

/// Frees a guarded block whose release was recorded (`claim`): its pages are guarded
/// (and their memory returned) and the slot waits in quarantine. Returns false when `id`
/// is not a slot being released.
pub fn free(id: u32, func: u8, stack: u32) -> bool {
    let Some(s) = slot(id) else { return false };
    if s.state.load(Ordering::Acquire) != SLOT_RELEASING {
        return false;
    }
    let npages = s.npages.load(Ordering::Relaxed) as usize;
    let data = s.data();
    s.free_func.store(func, Ordering::Relaxed);
    s.free_stack.store(stack, Ordering::Relaxed);
    s.state.store(SLOT_QUARANTINED, Ordering::Release);
    guard(data, npages * PAGE);
    HEAP.lock.lock();
    // SAFETY: we hold the heap lock.
    let inner = unsafe { &mut *HEAP.inner.get() };
    set_in_use(id, false);
    inner.live_bytes = inner.live_bytes.saturating_sub((npages * PAGE) as u64);
    s.next.store(0, Ordering::Relaxed);
    if inner.quarantine_tail == 0 {
        inner.quarantine_head = id;
    } else if let Some(t) = slot(inner.quarantine_tail) {
        t.next.store(id, Ordering::Relaxed);
    }
    inner.quarantine_tail = id;
    inner.quarantine_bytes += s.size.load(Ordering::Relaxed).max(1);
    inner.quarantine_max_seen = inner.quarantine_max_seen.max(inner.quarantine_bytes);
    // Release the oldest slots beyond the quarantine's budget.
    let max = QUARANTINE_MAX.load(Ordering::Relaxed);
    while inner.quarantine_bytes > max && inner.quarantine_head != 0 {
        let old = inner.quarantine_head;
        let Some(o) = slot(old) else { break };
        inner.quarantine_head = o.next.load(Ordering::Relaxed);
        if inner.quarantine_head == 0 {
            inner.quarantine_tail = 0;
        }
        inner.quarantine_bytes = inner
            .quarantine_bytes
            .saturating_sub(o.size.load(Ordering::Relaxed).max(1));
        push_free(inner, old);
    }
    HEAP.lock.unlock();
    true
}

fn push_free(inner: &mut Inner, id: u32) {
    let Some(s) = slot(id) else { return };
    s.state.store(SLOT_FREE, Ordering::Release);
    let npages = s.npages.load(Ordering::Relaxed) as usize;
    if npages <= SMALL_CLASSES {
        s.next.store(inner.free_small[npages], Ordering::Relaxed);
        inner.free_small[npages] = id;
    } else {
        s.next.store(inner.free_large, Ordering::Relaxed);
        inner.free_large = id;
    }
}

/// Returns a slot that was taken but could not be opened.
fn release_slot(id: u32) {
    HEAP.lock.lock();
    // SAFETY: we hold the heap lock.
    let inner = unsafe { &mut *HEAP.inner.get() };
    set_in_use(id, false);
    if let Some(s) = slot(id) {
        inner.live_bytes = inner
            .live_bytes
            .saturating_sub(s.npages.load(Ordering::Relaxed) as u64 * PAGE as u64);
    }
    push_free(inner, id);
    HEAP.lock.unlock();
}

/// The slot whose block starts at `addr`, if it is in one of `states`.
fn slot_of_block(addr: usize, states: &[u8]) -> Option<(u32, &'static Slot)> {
    let (id, s) = slot_at(addr)?;
    (states.contains(&s.state.load(Ordering::Acquire))
        && s.block.load(Ordering::Relaxed) as usize == addr)
        .then_some((id, s))
}

/// The slot of the program's block at `addr`: live (at exit), or with its release recorded
/// (at free), for the canary check.
pub fn held_slot_of(addr: usize) -> Option<u32> {
    slot_of_block(addr, &[SLOT_LIVE, SLOT_RELEASING]).map(|(id, _)| id)
}

/// The slot of the block at `addr` whose release was recorded (`claim`), for `free`.
pub fn releasing_slot_of(addr: usize) -> Option<u32> {
    slot_of_block(addr, &[SLOT_RELEASING]).map(|(id, _)| id)
}

fn meta_of(s: &Slot) -> BlockMeta {
    BlockMeta {
        size: s.size.load(Ordering::Relaxed),
        stack: s.alloc_stack.load(Ordering::Relaxed),
        family: s.family.load(Ordering::Relaxed),
        func: s.alloc_func.load(Ordering::Relaxed),
        place: PLACE_GUARDED,
    }
}

/// Records that the block at `addr`, handed out by `alloc`, is live: RESERVED → LIVE.
/// Call with the table's shard lock for `addr` held, with the allocation's record.
pub fn publish(addr: usize) {
    if let Some((_, s)) = slot_of_block(addr, &[SLOT_RESERVED]) {
        s.state.store(SLOT_LIVE, Ordering::Release);
    }
}

/// Takes the live block at `addr` for its release: LIVE → RELEASING, and what it was.
/// None when no live guarded block starts there. Call with the table's shard lock for
/// `addr` held, with the release's record: only one release can take a block.
pub fn claim(addr: usize) -> Option<BlockMeta> {
    let (_, s) = slot_of_block(addr, &[SLOT_LIVE])?;
    s.state.store(SLOT_RELEASING, Ordering::Release);
    Some(meta_of(s))
}

/// What is known of the live guarded block at `addr`, without taking it.
pub fn meta_at(addr: usize) -> Option<BlockMeta> {
    slot_of_block(addr, &[SLOT_LIVE]).map(|(_, s)| meta_of(s))
}

/// Live guarded blocks (for the exit scan). Call with every shard lock held.
pub fn live_count() -> usize {
    let mut n = 0;
    for_each_live(|_, _| n += 1);
    n
}

/// Calls `f` for every live guarded block. Call with every shard lock held (no block
/// changes between LIVE and another state meanwhile); takes the heap lock, which orders
/// the in-use bits.
pub fn for_each_live(mut f: impl FnMut(u64, BlockMeta)) {
    if !READY.load(Ordering::Acquire) {
        return;
    }
    HEAP.lock.lock();
    // SAFETY: we hold the heap lock.
    let nslots = unsafe { (*HEAP.inner.get()).nslots };
    let words = IN_USE.load(Ordering::Acquire) as *const AtomicU64;
    for w in 0..(nslots as usize).div_ceil(64) {
        // SAFETY: w covers slot ids up to nslots, within the bitmap.
        let mut bits = unsafe { &*words.add(w) }.load(Ordering::Relaxed);
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let Some(s) = slot((w * 64 + b + 1) as u32) else {
                continue;
            };
            if s.state.load(Ordering::Acquire) == SLOT_LIVE {
                f(s.block.load(Ordering::Relaxed), meta_of(s));
            }
        }
    }
    HEAP.lock.unlock();
}

/// Largest quarantine seen, for the end-of-run statistics.
pub fn quarantine_max_seen() -> u64 {
    HEAP.lock.lock();
    // SAFETY: we hold the heap lock.
    let v = unsafe { (*HEAP.inner.get()).quarantine_max_seen };
    HEAP.lock.unlock();
    v
}

/// Fork support.
pub fn lock() {
    HEAP.lock.lock();
}
pub fn unlock() {
    HEAP.lock.unlock();
}
pub fn force_unlock() {
    HEAP.lock.force_unlock();
}
