//! Stack capture for allocation and free events.
//!
//! Baseline implementation over libgcc's `_Unwind_Backtrace` (DWARF CFI from `.eh_frame`,
//! found through `_dl_find_object`: no locks, no allocation on glibc 2.35+).

use core::ffi::c_void;

#[repr(C)]
struct UnwindContext {
    _private: [u8; 0],
}

type UnwindTraceFn = extern "C" fn(ctx: *mut UnwindContext, arg: *mut c_void) -> i32;

extern "C" {
    fn _Unwind_Backtrace(trace: UnwindTraceFn, arg: *mut c_void) -> i32;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
}

const URC_NO_REASON: i32 = 0;
const URC_END_OF_STACK: i32 = 5;

struct Walk<'a> {
    out: &'a mut [u64],
    n: usize,
    skip: usize,
}

extern "C" fn step(ctx: *mut UnwindContext, arg: *mut c_void) -> i32 {
    // SAFETY: `arg` is the `Walk` passed by `capture_stack`, alive for the whole walk.
    let walk = unsafe { &mut *(arg as *mut Walk) };
    // SAFETY: `ctx` is the live context libgcc hands to the callback.
    let ip = unsafe { _Unwind_GetIP(ctx) } as u64;
    if ip == 0 {
        return URC_END_OF_STACK;
    }
    if walk.skip > 0 {
        walk.skip -= 1;
        return URC_NO_REASON;
    }
    if walk.n >= walk.out.len() {
        return URC_END_OF_STACK;
    }
    walk.out[walk.n] = ip;
    walk.n += 1;
    URC_NO_REASON
}

/// Fills `out` with return addresses of the current thread's stack, innermost first,
/// skipping `skip` frames (the shim's own), and returns how many were written.
#[inline(never)]
pub fn capture_stack(out: &mut [u64], skip: usize) -> usize {
    let mut walk = Walk {
        out,
        n: 0,
        skip: skip + 1,
    };
    // SAFETY: `step` only touches `walk`, which outlives the call.
    unsafe { _Unwind_Backtrace(step, &mut walk as *mut Walk as *mut c_void) };
    walk.n
}
