//! The threads the shim has seen: an alternate signal stack each, and where their stacks are.
//!
//! The exit scan must not take a dead thread's stack for a root: glibc keeps the stacks of
//! exited threads for reuse, full of stale pointers that would make lost blocks look
//! reachable (memcheck stops scanning a thread's stack when the thread exits). So every
//! thread that enters the shim registers a stack pointer here, and its exit (a pthread key
//! destructor: no TLS destructor, no allocation) marks the entry dead. A stack mapping that
//! holds a dead thread's stack pointer and no live one's is not scanned; only the `dtv`
//! field of the dead thread's descriptor is read (`for_each_dead_descriptor`). A live thread
//! that never entered the shim has no entry: at exit its stack pointer is read from
//! /proc/self/task (`LiveStacks`), so that a stack glibc gave it from its cache is scanned.

use crate::arena;
use crate::sys::SpinLock;
use core::ffi::{c_char, c_void};
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
    /// Its thread pointer: the address of its descriptor (`pthread_self()`).
    tp: AtomicU64,
    /// Its kernel thread id.
    tid: AtomicU32,
    /// Its alternate signal stack, from the arena (0 if the program had its own).
    altstack: AtomicUsize,
}

static ENTRIES: [Entry; MAX_THREADS] = [const {
    Entry {
        state: AtomicU8::new(EMPTY),
        sp: AtomicU64::new(0),
        tp: AtomicU64::new(0),
        tid: AtomicU32::new(0),
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
    // SAFETY: reads this thread's own thread pointer; no side effect.
    entry
        .tp
        .store(unsafe { libc::pthread_self() } as u64, Ordering::Relaxed);
    entry.tid.store(crate::sys::gettid(), Ordering::Relaxed);
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
    if let Some(entry) = mine.checked_sub(1).and_then(|i| ENTRIES.get(i)) {
        entry.tid.store(crate::sys::gettid(), Ordering::Relaxed);
    }
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

fn registered() -> &'static [Entry] {
    &ENTRIES[..USED.load(Ordering::Relaxed).min(MAX_THREADS)]
}

/// Where the other live threads' stacks are at exit, for telling a dead thread's stack from
/// one in use, and the live part of a stack in use. Taken by the exit scan; the threads it
/// lists may go on running while it reads them, as they may while the scan reads their memory.
pub struct LiveStacks {
    /// Each other live thread blocked in the kernel, as /proc/self/task/TID/syscall shows it.
    blocked: ArenaList<Blocked>,
    /// The registered stack pointer (a point in its stack mapping) of each other live thread
    /// that was running: its stack in use goes down to where we cannot tell.
    running: ArenaList<u64>,
    /// A live thread with no entry (it never entered the shim) was running, or the threads
    /// could not be listed: no stack is taken for a dead thread's.
    unknown: bool,
}

/// A thread asleep in the kernel: its stack pointer, and the six argument registers of the
/// system call it sleeps in (memcheck takes every thread's registers for roots; these are
/// the ones /proc shows).
#[derive(Clone, Copy)]
struct Blocked {
    sp: u64,
    args: [u64; 6],
}

impl LiveStacks {
    pub fn read() -> LiveStacks {
        let mut live = LiveStacks {
            blocked: ArenaList::new(MAX_THREADS),
            running: ArenaList::new(MAX_THREADS),
            unknown: false,
        };
        let me = crate::sys::gettid();
        let complete = for_each_task(|tid| {
            if tid == me {
                return; // the exit scan reads the current thread's stack from its own sp
            }
            if let Some((sp, args)) = blocked_in_kernel(tid) {
                live.unknown |= !live.blocked.push(Blocked { sp, args });
                return;
            }
            let entry = registered().iter().find(|e| {
                e.state.load(Ordering::Acquire) == LIVE && e.tid.load(Ordering::Relaxed) == tid
            });
            match entry {
                Some(e) => live.unknown |= !live.running.push(e.sp.load(Ordering::Relaxed)),
                None => live.unknown = true,
            }
        });
        live.unknown |= !complete;
        live
    }

    /// The system call arguments of the other threads blocked in one.
    pub fn syscall_args(&self) -> impl Iterator<Item = u64> + '_ {
        self.blocked.as_slice().iter().flat_map(|b| b.args)
    }

    /// Whether `[lo, hi)` is the stack of threads that have all exited: it holds a dead
    /// thread's stack pointer, and no live thread's as far as they are known.
    pub fn stack_use(&self, lo: usize, hi: usize) -> StackUse {
        let (lo, hi) = (lo as u64, hi as u64);
        let within = |sp: &u64| lo <= *sp && *sp < hi;
        let mut dead = false;
        for e in registered() {
            if !within(&e.sp.load(Ordering::Relaxed)) {
                continue;
            }
            match e.state.load(Ordering::Acquire) {
                LIVE => return StackUse::Live,
                DEAD => dead = true,
                _ => {}
            }
        }
        if !dead
            || self.blocked.as_slice().iter().any(|b| within(&b.sp))
            || self.running.as_slice().iter().any(within)
        {
            StackUse::Live
        } else if self.unknown {
            StackUse::DeadUnlessReused
        } else {
            StackUse::Dead
        }
    }

    /// Where the part of `[lo, hi)` in use begins, if it is the stack of another thread
    /// blocked in the kernel: its stack pointer, less the 128-byte red zone below it. What
    /// lies lower is dead frames, as memcheck takes it. `lo` for any other memory.
    pub fn live_from(&self, lo: usize, hi: usize) -> usize {
        let within = |sp: &u64| lo as u64 <= *sp && *sp < hi as u64;
        if self.running.as_slice().iter().any(within) {
            return lo;
        }
        let blocked = self.blocked.as_slice().iter().map(|b| b.sp);
        match blocked.filter(within).min() {
            Some(sp) => (sp as usize).saturating_sub(128).max(lo),
            None => lo,
        }
    }
}

/// What a stack mapping is to the exit scan (`LiveStacks::stack_use`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum StackUse {
    /// Memory in use: a live thread's stack, or no thread's.
    Live,
    /// The stack of threads that have all exited.
    Dead,
    /// The same, unless the thread that could not be located (`LiveStacks::unknown`) runs
    /// on it: glibc gives a new thread a cached stack.
    DeadUnlessReused,
}

/// A list of at most `cap` values in arena memory (the exit scan allocates nothing else).
struct ArenaList<T: Copy> {
    items: *mut T,
    len: usize,
    cap: usize,
}

impl<T: Copy> ArenaList<T> {
    /// Room for `cap` values; none if the arena is out of memory.
    fn new(cap: usize) -> Self {
        let items = arena::alloc(cap * core::mem::size_of::<T>()) as *mut T;
        let cap = if items.is_null() { 0 } else { cap };
        ArenaList { items, len: 0, cap }
    }

    /// Adds `v`; false when there is no room.
    fn push(&mut self, v: T) -> bool {
        if self.len >= self.cap {
            return false;
        }
        // SAFETY: len < cap, the chunk's length in values.
        unsafe { self.items.add(self.len).write(v) };
        self.len += 1;
        true
    }

    fn as_slice(&self) -> &[T] {
        if self.cap == 0 {
            return &[];
        }
        // SAFETY: the first len values were written by `push`.
        unsafe { core::slice::from_raw_parts(self.items, self.len) }
    }
}

impl<T: Copy> Drop for ArenaList<T> {
    fn drop(&mut self) {
        if self.cap != 0 {
            arena::free(self.items as *mut u8, self.cap * core::mem::size_of::<T>());
        }
    }
}

/// Calls `f` with the descriptor (thread pointer) of each dead thread whose descriptor lies
/// in `[lo, hi)`, a dead stack (`LiveStacks::stack_use`): glibc keeps the descriptor at
/// the top of the stack, and both in its cache for the next thread.
pub fn for_each_dead_descriptor(lo: usize, hi: usize, mut f: impl FnMut(u64)) {
    for e in registered() {
        let tp = e.tp.load(Ordering::Relaxed);
        if e.state.load(Ordering::Acquire) == DEAD && lo as u64 <= tp && tp < hi as u64 {
            f(tp);
        }
    }
}

/// Calls `f` with the id of each thread of this process. False when /proc/self/task could
/// not be read to the end.
fn for_each_task(mut f: impl FnMut(u32)) -> bool {
    // SAFETY: open/getdents64/close on a descriptor of ours, into our own buffer.
    let fd = unsafe {
        libc::open(
            c"/proc/self/task".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return false;
    }
    let mut buf = [0u8; 4096];
    let complete = loop {
        // SAFETY: the kernel writes at most buf.len() bytes of dirent64 records.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd,
                buf.as_mut_ptr() as *mut c_void,
                buf.len(),
            )
        };
        if n == 0 {
            break true;
        }
        if n < 0 {
            break false;
        }
        let mut at = 0usize;
        // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
        while at + 19 < n as usize {
            let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
            if reclen == 0 {
                break;
            }
            let name = &buf[at + 19..(at + reclen).min(n as usize)];
            let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
            if let Some(tid) = crate::sys::parse_u64(name) {
                f(tid as u32);
            }
            at += reclen;
        }
    };
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(fd) };
    complete
}

/// Thread `tid` of this process, if it is blocked: its stack pointer, and the six argument
/// registers of the system call it is blocked in (zeros when it is blocked elsewhere). The
/// kernel's /proc/self/task/TID/syscall reads "NR ARG1 .. ARG6 SP PC" then, "-1 SP PC"
/// outside a system call, and "running" otherwise.
fn blocked_in_kernel(tid: u32) -> Option<(u64, [u64; 6])> {
    const PREFIX: &[u8] = b"/proc/self/task/";
    let mut path = [0u8; 48];
    path[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut len = PREFIX.len();
    let mut digits = [0u8; 20];
    let tid = crate::sys::fmt_u64(tid as u64, &mut digits);
    path[len..len + tid.len()].copy_from_slice(tid);
    len += tid.len();
    path[len..len + 8].copy_from_slice(b"/syscall");
    // path[len + 8] stays 0: the terminating NUL.
    let mut buf = [0u8; 256];
    // SAFETY: open/read/close with a NUL-terminated path, into our own buffer.
    let n = unsafe {
        let fd = libc::open(
            path.as_ptr() as *const c_char,
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return None;
        }
        let n = libc::read(fd, buf.as_mut_ptr() as *mut c_void, buf.len());
        libc::close(fd);
        n
    };
    let text = &buf[..n.max(0) as usize];
    let fields = || {
        text.split(|&c| c == b' ' || c == b'\n')
            .filter(|f| !f.is_empty())
    };
    let hex = |f: &[u8]| crate::sys::parse_hex(f.strip_prefix(b"0x").unwrap_or(f));
    let count = fields().count();
    if count < 3 {
        return None; // "running", or nothing
    }
    let sp = hex(fields().nth(count - 2)?)?;
    let mut args = [0u64; 6];
    if count == 9 {
        for (arg, field) in args.iter_mut().zip(fields().skip(1)) {
            *arg = hex(field).unwrap_or(0);
        }
    }
    Some((sp, args))
}
