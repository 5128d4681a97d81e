//! exec: the image being replaced says so first.
//!
//! A process image that execs ends without exiting: without a word from us the analyzer
//! could not tell it from one that was killed, and would report its live blocks as
//! `unreleased`. memcheck does not leak-check at exec, and neither do we; we only announce
//! the exec (and its failure, if the call returns).
//!
//! glibc's exec functions call `execve` internally, not through the PLT, so every public one
//! is interposed. The variadic `execl*` are naked trampolines that hand their argument list
//! to Rust as two arrays: the five arguments that came in registers, then the stack.

use crate::wire::{self, kind};
use crate::{process, ring};
use core::ffi::{c_char, c_int, c_void};

/// `Exec.flags`.
const ATTEMPT: u32 = 0;
const FAILED: u32 = 1;

fn announce(flags: u32) {
    if !ring::recording() || process::finished() {
        return;
    }
    let mut p = [0u8; wire::EXEC_LEN];
    let mut w = wire::PayloadWriter::new(&mut p);
    w.u32(process::pid());
    w.u32(flags);
    ring::emit(kind::EXEC, &[&p]);
}

/// Runs an exec call between the two announcements.
fn around(call: impl FnOnce() -> c_int) -> c_int {
    announce(ATTEMPT);
    let r = call();
    let errno = crate::sys::errno();
    announce(FAILED);
    crate::sys::set_errno(errno);
    r
}

fn real(name: &core::ffi::CStr) -> *mut c_void {
    // SAFETY: dlsym with a NUL-terminated name.
    unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) }
}

type ExecVe =
    unsafe extern "C" fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int;
type ExecV = unsafe extern "C" fn(*const c_char, *const *const c_char) -> c_int;
type FExecVe = unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char) -> c_int;

macro_rules! real_or_enosys {
    ($name:literal, $ty:ty) => {{
        let f = real($name);
        if f.is_null() {
            crate::sys::set_errno(libc::ENOSYS);
            return -1;
        }
        // SAFETY: glibc's function of that name has this signature.
        unsafe { core::mem::transmute::<*mut c_void, $ty>(f) }
    }};
}

extern "C" {
    static environ: *const *const c_char;
}

#[no_mangle]
pub unsafe extern "C" fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    let f = real_or_enosys!(c"execve", ExecVe);
    around(|| f(path, argv, envp))
}

#[no_mangle]
pub unsafe extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    let f = real_or_enosys!(c"execv", ExecV);
    around(|| f(path, argv))
}

#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int {
    let f = real_or_enosys!(c"execvp", ExecV);
    around(|| f(file, argv))
}

#[no_mangle]
pub unsafe extern "C" fn execvpe(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    let f = real_or_enosys!(c"execvpe", ExecVe);
    around(|| f(file, argv, envp))
}

#[no_mangle]
pub unsafe extern "C" fn fexecve(
    fd: c_int,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    let f = real_or_enosys!(c"fexecve", FExecVe);
    around(|| f(fd, argv, envp))
}

/// Which `execl*` a trampoline stands for.
const L: usize = 0;
const LP: usize = 1;
const LE: usize = 2;
/// Arguments accepted by `execl*`, the program name included (more: E2BIG).
const MAX_ARGS: usize = 1024;

/// The body of `execl`, `execlp` and `execle`: `regs` holds the five variadic arguments that
/// came in registers (rsi, rdx, rcx, r8, r9), `stack` the ones after them.
unsafe extern "C" fn execl_impl(
    path: *const c_char,
    regs: *const *const c_char,
    stack: *const *const c_char,
    which: usize,
) -> c_int {
    let arg = |i: usize| {
        if i < 5 {
            *regs.add(i)
        } else {
            *stack.add(i - 5)
        }
    };
    let mut argv: [*const c_char; MAX_ARGS + 1] = [core::ptr::null(); MAX_ARGS + 1];
    let mut n = 0;
    loop {
        if n == MAX_ARGS {
            crate::sys::set_errno(libc::E2BIG);
            return -1;
        }
        let a = arg(n);
        argv[n] = a;
        if a.is_null() {
            break;
        }
        n += 1;
    }
    match which {
        LP => execvp(path, argv.as_ptr()),
        LE => execve(path, argv.as_ptr(), arg(n + 1) as *const *const c_char),
        _ => execve(path, argv.as_ptr(), environ),
    }
}

macro_rules! execl_trampoline {
    ($name:ident, $which:expr) => {
        /// Variadic exec, as a trampoline into [`execl_impl`].
        #[unsafe(naked)]
        #[no_mangle]
        pub unsafe extern "C" fn $name() {
            core::arch::naked_asm!(
                "sub rsp, 40",
                "mov [rsp], rsi",
                "mov [rsp + 8], rdx",
                "mov [rsp + 16], rcx",
                "mov [rsp + 24], r8",
                "mov [rsp + 32], r9",
                "mov rsi, rsp",
                "lea rdx, [rsp + 48]",
                "mov rcx, {which}",
                "call {imp}",
                "add rsp, 40",
                "ret",
                which = const $which,
                imp = sym execl_impl,
            )
        }
    };
}

execl_trampoline!(execl, L);
execl_trampoline!(execlp, LP);
execl_trampoline!(execle, LE);
