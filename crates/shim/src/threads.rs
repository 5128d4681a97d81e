//! The threads the shim has seen: an alternate signal stack each, and where their stacks are.
//!
//! The exit scan must not take a dead thread's stack for a root: glibc keeps the stacks of
//! exited threads for reuse, full of stale pointers that would make lost blocks look
//! reachable (memcheck stops scanning a thread's stack when the thread exits). So every
//! thread that enters the shim registers a stack pointer here, and its exit (a pthread key
//! destructor: no TLS destructor, no allocation) marks the entry dead. A stack mapping that
//! holds a dead thread's stack pointer and no live one's is not scanned.

use crate::arena;
use crate::sys::SpinLock;
use core::ffi::c_void;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

const MAX_THREADS: usize = 8192;
const ALTSTACK_LEN: usize = 64 * 1024;

const EMPTY: u8 = 0;
const LIVE: u8 = 1;
const DEAD: u8 = 2;

struct Entry {
    state: AtomicU8,
    /// A stack pointer of the thread (any address in its stack mapping will do).
    sp: AtomicU64,
    /// Its alternate signal stack, from the arena (0 if the program had its own).
    altstack: AtomicUsize,
}

static ENTRIES: [Entry; MAX_THREADS] = [const {
    Entry {
        state: AtomicU8::new(EMPTY),
        sp: AtomicU64::new(0),
        altstack: AtomicUsize::new(0),
    }
}; MAX_THREADS];
static USED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's entry index + 1 (0: not registered).
    static MINE: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}
static KEY: AtomicU32 = AtomicU32::new(u32::MAX);
static KEY_LOCK: SpinLock = SpinLock::new();

fn stack_pointer() -> u64 {
    let sp: u64;
    // SAFETY: reads the stack pointer register; no memory is touched.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    sp
}

/// Called once per thread, the first time it enters the shim: registers its stack and
/// gives it an alternate signal stack, so that a stack overflow can still be reported.
pub fn on_first_entry() {
    if MINE.with(|m| m.get()) != 0 {
        return; // registered before a fork: the same thread, the same stack
    }
    let index = take_entry();
    let Some(entry) = index.and_then(|i| ENTRIES.get(i)) else {
        return;
    };
    entry.sp.store(stack_pointer(), Ordering::Relaxed);
    entry
        .altstack
        .store(make_altstack() as usize, Ordering::Relaxed);
    entry.state.store(LIVE, Ordering::Release);
    MINE.with(|m| m.set(index.unwrap_or(0) + 1));
    let key = key();
    if key != u32::MAX {
        // SAFETY: a key of ours; the value is the entry's index + 1 (never null). Keys below
        // PTHREAD_KEY_2NDLEVEL_SIZE live in the thread descriptor: no allocation.
        unsafe { libc::pthread_setspecific(key, (index.unwrap_or(0) + 1) as *const c_void) };
    }
}

/// A free entry: a never-used one, else one of a dead thread.
fn take_entry() -> Option<usize> {
    let i = USED.fetch_add(1, Ordering::Relaxed);
    if i < MAX_THREADS {
        return Some(i);
    }
    USED.store(MAX_THREADS, Ordering::Relaxed);
    ENTRIES.iter().position(|e| {
        e.state
            .compare_exchange(DEAD, EMPTY, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    })
}

fn make_altstack() -> *mut u8 {
    // SAFETY: querying and setting this thread's alternate stack; the memory is ours.
    unsafe {
        let mut cur: libc::stack_t = core::mem::zeroed();
        if libc::sigaltstack(core::ptr::null(), &mut cur) != 0
            || cur.ss_flags & libc::SS_DISABLE == 0
        {
            return core::ptr::null_mut(); // the program has its own, or we cannot tell
        }
        let mem = arena::alloc(ALTSTACK_LEN);
        if mem.is_null() {
            return mem;
        }
        let st = libc::stack_t {
            ss_sp: mem as *mut c_void,
            ss_flags: 0,
            ss_size: ALTSTACK_LEN,
        };
        if libc::sigaltstack(&st, core::ptr::null_mut()) != 0 {
            arena::free(mem, ALTSTACK_LEN);
            return core::ptr::null_mut();
        }
        mem
    }
}

fn key() -> u32 {
    let k = KEY.load(Ordering::Acquire);
    if k != u32::MAX {
        return k;
    }
    KEY_LOCK.lock();
    let mut k = KEY.load(Ordering::Acquire);
    if k == u32::MAX {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: creating a key whose destructor only touches our entries and the arena.
        if unsafe { libc::pthread_key_create(&mut key, Some(on_thread_exit)) } == 0 {
            k = key;
            KEY.store(k, Ordering::Release);
        }
    }
    KEY_LOCK.unlock();
    k
}

unsafe extern "C" fn on_thread_exit(value: *mut c_void) {
    {
        let _busy = crate::interpose::enter_raw();
        crate::interpose::fast_quarantine::thread_exiting();
    }
    let Some(entry) = (value as usize).checked_sub(1).and_then(|i| ENTRIES.get(i)) else {
        return;
    };
    let mem = entry.altstack.swap(0, Ordering::Relaxed);
    if mem != 0 {
        let st = libc::stack_t {
            ss_sp: core::ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        // SAFETY: this thread is exiting; its alternate stack is no longer in use.
        libc::sigaltstack(&st, core::ptr::null_mut());
        arena::free(mem as *mut u8, ALTSTACK_LEN);
    }
    entry.sp.store(stack_pointer(), Ordering::Relaxed);
    entry.state.store(DEAD, Ordering::Release);
}

/// In the child after fork: only the forking thread lives on; the others' stacks are
/// copies full of stale pointers.
pub fn after_fork_in_child() {
    let mine = MINE.with(|m| m.get());
    for (i, e) in ENTRIES
        .iter()
        .enumerate()
        .take(USED.load(Ordering::Relaxed).min(MAX_THREADS))
    {
        if i + 1 != mine && e.state.load(Ordering::Relaxed) == LIVE {
            e.state.store(DEAD, Ordering::Relaxed);
        }
    }
}

/// True when `[lo, hi)` is the stack of a thread that has exited (and of no live thread).
pub fn is_dead_stack(lo: usize, hi: usize) -> bool {
    let (lo, hi) = (lo as u64, hi as u64);
    let mut dead = false;
    for e in ENTRIES
        .iter()
        .take(USED.load(Ordering::Relaxed).min(MAX_THREADS))
    {
        let sp = e.sp.load(Ordering::Relaxed);
        if sp < lo || sp >= hi {
            continue;
        }
        match e.state.load(Ordering::Acquire) {
            LIVE => return false,
            DEAD => dead = true,
            _ => {}
        }
    }
    dead
}
