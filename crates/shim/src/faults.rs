//! Faults and signals: bad accesses caught by guard pages, crashes, and the program's own
//! handlers.
//!
//! The shim owns SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT and SIGTRAP. A fault in a guard or
//! quarantined page of our heap is reported (address, read or write from the page-fault error
//! code, pc, instruction bytes, registers, stack); then, by default, the page is opened, the
//! instruction single-stepped with the trap flag, and the page closed again in the SIGTRAP
//! handler, so the run goes on as under memcheck. Any other signal goes to the handler the
//! program installed (its `sigaction` calls are recorded here, not passed to the kernel), or,
//! when it has none, is reported as a fatal signal and then delivered with the default action.
//!
//! Everything here runs in a signal handler: no allocation, no blocking lock.

use crate::guard::{
    self, Slot, SLOT_FREE, SLOT_LIVE, SLOT_QUARANTINED, SLOT_RELEASING, SLOT_RESERVED,
};
use crate::sys::{self, SpinLock};
use crate::wire::{self, fault, kind};
use crate::{process, ring, stacks};
use core::cell::{Cell, UnsafeCell};
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicBool, Ordering};

extern "C" {
    /// glibc's sigaction, under the name our interposed `sigaction` does not shadow.
    fn __sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int;
}

/// The signals whose disposition the shim keeps for itself.
const OWNED: [c_int; 6] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGABRT,
    libc::SIGTRAP,
];
const NSIG: usize = 65;
const TRAP_FLAG: i64 = 0x100;

pub static HALT_ON_ERROR: AtomicBool = AtomicBool::new(false);
static INSTALLED: AtomicBool = AtomicBool::new(false);
static FATAL_REPORTED: AtomicBool = AtomicBool::new(false);

/// The dispositions the program asked for on the signals we own.
struct ProgramActions {
    lock: SpinLock,
    acts: UnsafeCell<[libc::sigaction; NSIG]>,
}
// SAFETY: `acts` is written under `lock`; the signal handler reads one entry by copy (a torn
// read during a concurrent sigaction call is the same race the kernel's own table has).
unsafe impl Sync for ProgramActions {}

static PROGRAM: ProgramActions = ProgramActions {
    lock: SpinLock::new(),
    // SAFETY: an all-zero sigaction is SIG_DFL with no flags and an empty mask.
    acts: UnsafeCell::new(unsafe { core::mem::zeroed() }),
};

thread_local! {
    /// Pages opened for the instruction being single-stepped on this thread.
    static OPEN_PAGES: Cell<[usize; 4]> = const { Cell::new([0; 4]) };
}

fn owned(sig: c_int) -> bool {
    OWNED.contains(&sig)
}

/// Installs our handlers; the dispositions in place become the program's recorded ones.
pub fn install() {
    for sig in OWNED {
        // SAFETY: installing an SA_SIGINFO handler that follows the rules above.
        unsafe {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            let mut old: libc::sigaction = core::mem::zeroed();
            if __sigaction(sig, &sa, &mut old) == 0 {
                (*PROGRAM.acts.get())[sig as usize] = old;
            }
        }
    }
    INSTALLED.store(true, Ordering::Release);
    crate::threads::on_first_entry();
}

// ---- the program's sigaction, recorded ----

/// `sigaction` interposed: on the signals we own, the program's wish is recorded (and
/// honoured by chaining), not given to the kernel.
#[no_mangle]
pub unsafe extern "C" fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    if !(owned(sig) && INSTALLED.load(Ordering::Acquire)) {
        return __sigaction(sig, act, old);
    }
    PROGRAM.lock.lock();
    let acts = &mut *PROGRAM.acts.get();
    if !old.is_null() {
        *old = acts[sig as usize];
    }
    if !act.is_null() {
        acts[sig as usize] = *act;
    }
    PROGRAM.lock.unlock();
    0
}

/// `signal` interposed with glibc's BSD semantics (SA_RESTART, the signal blocked while
/// its handler runs), through our `sigaction`.
#[no_mangle]
pub unsafe extern "C" fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    let mut sa: libc::sigaction = core::mem::zeroed();
    sa.sa_sigaction = handler;
    sa.sa_flags = libc::SA_RESTART;
    libc::sigemptyset(&mut sa.sa_mask);
    libc::sigaddset(&mut sa.sa_mask, sig);
    let mut old: libc::sigaction = core::mem::zeroed();
    if sigaction(sig, &sa, &mut old) != 0 {
        return libc::SIG_ERR;
    }
    old.sa_sigaction
}

#[no_mangle]
pub unsafe extern "C" fn bsd_signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    signal(sig, handler)
}

// ---- the handler ----

unsafe extern "C" fn on_signal(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let saved_errno = sys::errno();
    let _busy = crate::interpose::enter_raw();
    let uc = &mut *(ctx as *mut libc::ucontext_t);
    if sig == libc::SIGTRAP && close_open_pages(uc) {
        sys::set_errno(saved_errno);
        return;
    }
    if sig == libc::SIGSEGV {
        let addr = (*info).si_addr() as usize;
        if let Some((id, slot)) = guard::slot_at(addr) {
            if guard_fault(addr, id, slot, uc) {
                sys::set_errno(saved_errno);
                return;
            }
        }
    }
    not_ours(sig, info, ctx, uc);
    sys::set_errno(saved_errno);
}

fn gregs(uc: &libc::ucontext_t) -> &[i64; 23] {
    &uc.uc_mcontext.gregs
}

/// The interrupted registers, in the wire's order (`wire::REG_NAMES`).
fn regs(uc: &libc::ucontext_t) -> [u64; 17] {
    use libc::*;
    let g = gregs(uc);
    [
        REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI, REG_R8, REG_R9,
        REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15, REG_RIP,
    ]
    .map(|r| g[r as usize] as u64)
}

/// The instruction bytes at `pc`, read through the kernel (the page may end there).
fn insn_bytes(pc: u64) -> [u8; wire::INSN_LEN] {
    let mut out = [0u8; wire::INSN_LEN];
    let local = libc::iovec {
        iov_base: out.as_mut_ptr() as *mut c_void,
        iov_len: out.len(),
    };
    let remote = libc::iovec {
        iov_base: pc as *mut c_void,
        iov_len: out.len(),
    };
    // SAFETY: the kernel checks the remote range; a short read leaves zeros.
    if unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) } < 0 {
        // Maybe the instruction sits at the end of a page: read what fits.
        let room = (4096 - (pc as usize & 4095)).min(out.len());
        let local = libc::iovec {
            iov_base: out.as_mut_ptr() as *mut c_void,
            iov_len: room,
        };
        let remote = libc::iovec {
            iov_base: pc as *mut c_void,
            iov_len: room,
        };
        // SAFETY: as above.
        unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    }
    out
}

/// A fault at `addr` inside slot `id`. Returns false when it is not a heap error after all
/// (a live data page: not a page we guard).
fn guard_fault(addr: usize, _id: u32, slot: &Slot, uc: &mut libc::ucontext_t) -> bool {
    let state = slot.state.load(Ordering::Acquire);
    let base = slot.base.load(Ordering::Relaxed) as usize;
    let npages = slot.npages.load(Ordering::Relaxed) as usize;
    let below = slot.below.load(Ordering::Relaxed);
    let guard_page = if below {
        base
    } else {
        base + npages * guard::PAGE
    };
    let page = addr & !(guard::PAGE - 1);
    let in_guard = page == guard_page;
    let block = slot.block.load(Ordering::Relaxed);
    let kind = match state {
        // A block being handed out or released is still the program's: the same as live.
        SLOT_LIVE | SLOT_RESERVED | SLOT_RELEASING if in_guard => {
            if below {
                fault::UNDERFLOW
            } else {
                fault::OVERFLOW
            }
        }
        SLOT_LIVE | SLOT_RESERVED | SLOT_RELEASING => return false,
        SLOT_QUARANTINED => fault::USE_AFTER_FREE,
        SLOT_FREE => fault::WILD,
        _ => fault::WILD,
    };
    let g = gregs(uc);
    let pc = g[libc::REG_RIP as usize] as u64;
    let write = g[libc::REG_ERR as usize] & 2 != 0;
    let stack = stacks::at_signal(pc);
    let uaf = kind == fault::USE_AFTER_FREE;
    let known = kind != fault::WILD;
    let load32 = |a: &core::sync::atomic::AtomicU32, keep: bool| {
        if keep {
            a.load(Ordering::Relaxed)
        } else {
            0
        }
    };
    let load8 = |a: &core::sync::atomic::AtomicU8, keep: bool| {
        if keep {
            a.load(Ordering::Relaxed)
        } else {
            0
        }
    };
    let record = wire::FaultRecord {
        pid: process::pid(),
        tid: crate::interpose::tid(),
        addr: addr as u64,
        pc,
        block_addr: if known { block } else { 0 },
        block_size: if known {
            slot.size.load(Ordering::Relaxed)
        } else {
            0
        },
        stack,
        alloc_stack: load32(&slot.alloc_stack, known),
        free_stack: load32(&slot.free_stack, uaf),
        flags: if write { wire::FAULT_WRITE } else { 0 },
        kind,
        alloc_func: load8(&slot.alloc_func, known),
        free_func: load8(&slot.free_func, uaf),
        time: sys::now_ns(),
        insn: insn_bytes(pc),
        regs: regs(uc),
    };
    let mut rec = [0u8; wire::FAULT_LEN];
    record.write(&mut wire::PayloadWriter::new(&mut rec));
    ring::emit(kind::FAULT, &[&rec]);

    if HALT_ON_ERROR.load(Ordering::Relaxed) {
        // Stop here: the access faults again with the default action.
        set_default(libc::SIGSEGV);
        return true;
    }
    // Open the page, run the one instruction, close it again (SIGTRAP).
    let mut open = OPEN_PAGES.with(|c| c.get());
    if let Some(free) = open.iter_mut().find(|p| **p == 0 || **p == page) {
        *free = page;
    } else {
        set_default(libc::SIGSEGV); // four pages in one instruction: give up, let it die
        return true;
    }
    if !guard::open_page(page) {
        set_default(libc::SIGSEGV);
        return true;
    }
    OPEN_PAGES.with(|c| c.set(open));
    uc.uc_mcontext.gregs[libc::REG_EFL as usize] |= TRAP_FLAG;
    true
}

/// After the single step: closes the pages opened for it. False if there were none.
fn close_open_pages(uc: &mut libc::ucontext_t) -> bool {
    let open = OPEN_PAGES.with(|c| c.get());
    if open.iter().all(|&p| p == 0) {
        return false;
    }
    for &p in open.iter().filter(|&&p| p != 0) {
        guard::close_page(p);
    }
    OPEN_PAGES.with(|c| c.set([0; 4]));
    uc.uc_mcontext.gregs[libc::REG_EFL as usize] &= !TRAP_FLAG;
    true
}

fn set_default(sig: c_int) {
    // SAFETY: restoring the default disposition with glibc's sigaction.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut sa.sa_mask);
        __sigaction(sig, &sa, core::ptr::null_mut());
    }
}

/// A signal that is not a heap error: the program's handler, or a fatal report.
unsafe fn not_ours(
    sig: c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut c_void,
    uc: &mut libc::ucontext_t,
) {
    let act = (*PROGRAM.acts.get())[sig as usize];
    let handler = act.sa_sigaction;
    let synchronous = (*info).si_code > 0 && sig != libc::SIGABRT && sig != libc::SIGTRAP;
    if handler != libc::SIG_DFL && !(handler == libc::SIG_IGN && synchronous) {
        if handler == libc::SIG_IGN {
            return;
        }
        if act.sa_flags & libc::SA_RESETHAND != 0 {
            PROGRAM.lock.lock();
            (*PROGRAM.acts.get())[sig as usize].sa_sigaction = libc::SIG_DFL;
            PROGRAM.lock.unlock();
        }
        // Block what the program's handler asked to have blocked while it runs.
        let mut mask = act.sa_mask;
        if act.sa_flags & libc::SA_NODEFER == 0 {
            libc::sigaddset(&mut mask, sig);
        }
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &mask, &mut old);
        if act.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
                core::mem::transmute(handler);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(c_int) = core::mem::transmute(handler);
            f(sig);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        return;
    }
    if sig == libc::SIGTRAP && !synchronous {
        set_default(sig);
        libc::raise(sig);
        return;
    }
    report_fatal(sig, info, uc);
    set_default(sig);
    if !synchronous {
        // Sent, not caused by the instruction: returning would not repeat it.
        libc::raise(sig);
    }
}

unsafe fn report_fatal(sig: c_int, info: *mut libc::siginfo_t, uc: &libc::ucontext_t) {
    if FATAL_REPORTED.swap(true, Ordering::AcqRel) || !ring::recording() {
        return;
    }
    let g = gregs(uc);
    let pc = g[libc::REG_RIP as usize] as u64;
    let stack = stacks::at_signal(pc);
    let addr = match sig {
        libc::SIGSEGV | libc::SIGBUS | libc::SIGFPE | libc::SIGILL => (*info).si_addr() as u64,
        _ => 0,
    };
    let record = wire::FatalSignalRecord {
        pid: process::pid(),
        tid: crate::interpose::tid(),
        signo: sig,
        code: (*info).si_code,
        addr,
        pc,
        stack,
        time: sys::now_ns(),
        insn: insn_bytes(pc),
        regs: regs(uc),
    };
    let mut rec = [0u8; wire::FATAL_SIGNAL_LEN];
    record.write(&mut wire::PayloadWriter::new(&mut rec));
    ring::emit(kind::FATAL_SIGNAL, &[&rec]);
}
