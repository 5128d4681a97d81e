//! The interposed allocation surface: C and every C++ operator new/delete variant.
//!
//! Each entry point does its work through glibc's `__libc_*` functions and records the
//! change. A call made while the shim is already at work on this thread (the unwinder,
//! libc internals) goes straight to glibc unrecorded. Every block remembers its family, so a
//! `delete` of a `new[]` block is a mismatched free; a pointer the shim never handed out is
//! reported and *not* passed to glibc, so the program runs on.

use crate::sys::{
    self, __libc_calloc, __libc_free, __libc_malloc, __libc_memalign, __libc_pvalloc,
    __libc_realloc, __libc_valloc,
};
use crate::table::{self, BlockMeta};
use crate::wire::{self, family, func, kind};
use crate::{process, ring, stacks};
use core::cell::Cell;
use core::ffi::{c_int, c_void};

thread_local! {
    static IN_SHIM: Cell<bool> = const { Cell::new(false) };
    static TID: Cell<u32> = const { Cell::new(0) };
}

/// Marks this thread as busy inside the shim until dropped.
pub struct Busy(());

impl Drop for Busy {
    fn drop(&mut self) {
        IN_SHIM.with(|b| b.set(false));
    }
}

/// Enters the shim, or None when this thread already is in it (or recording is over).
#[inline]
fn enter() -> Option<Busy> {
    if process::finished() {
        return None;
    }
    IN_SHIM.with(|b| {
        if b.replace(true) {
            None
        } else {
            Some(Busy(()))
        }
    })
}

/// Enters the shim unconditionally (init and exit paths): nested allocations go raw.
pub fn enter_raw() -> Busy {
    IN_SHIM.with(|b| b.set(true));
    Busy(())
}

/// In the child after fork: this thread's id changed.
pub fn reset_thread_after_fork() {
    TID.with(|t| t.set(0));
}

fn tid() -> u32 {
    TID.with(|t| {
        let v = t.get();
        if v != 0 {
            return v;
        }
        let v = sys::gettid();
        t.set(v);
        v
    })
}

fn record_alloc(p: *mut c_void, size: usize, f: u8, fam: u8) {
    let stack = stacks::current();
    let meta = BlockMeta {
        size: size as u64,
        stack,
        family: fam,
        func: f,
    };
    let addr = p as u64;
    crate::leaks::note_heap_address(addr);
    let mut shard = table::lock(addr);
    shard.insert(addr, meta);
    let mut rec = [0u8; wire::ALLOC_LEN];
    let mut w = wire::PayloadWriter::new(&mut rec);
    w.u32(process::pid());
    w.u32(tid());
    w.u64(addr);
    w.u64(size as u64);
    w.u32(stack);
    w.u8(f);
    w.u8(fam);
    w.u16(0);
    w.u64(sys::now_ns());
    ring::emit(kind::ALLOC, &[&rec]);
}

/// Removes a block being released by `f` (of family `fam`). Returns the block when it
/// should be handed back to glibc; None when the pointer was not ours (reported).
fn record_release(p: *mut c_void, f: u8, fam: u8) -> Option<BlockMeta> {
    let stack = stacks::current();
    let addr = p as u64;
    let mut shard = table::lock(addr);
    match shard.remove(addr) {
        Some(meta) => {
            let mut rec = [0u8; wire::FREE_LEN];
            let mut w = wire::PayloadWriter::new(&mut rec);
            w.u32(process::pid());
            w.u32(tid());
            w.u64(addr);
            w.u32(stack);
            w.u8(f);
            w.u8(meta.family);
            w.u16(if meta.family != fam {
                wire::FREE_MISMATCHED
            } else {
                0
            });
            w.u64(sys::now_ns());
            ring::emit(kind::FREE, &[&rec]);
            Some(meta)
        }
        None => {
            let mut rec = [0u8; wire::BAD_FREE_LEN];
            let mut w = wire::PayloadWriter::new(&mut rec);
            w.u32(process::pid());
            w.u32(tid());
            w.u64(addr);
            w.u32(stack);
            w.u8(f);
            w.u8(fam);
            w.u16(0);
            w.u64(sys::now_ns());
            ring::emit(kind::BAD_FREE, &[&rec]);
            None
        }
    }
}

/// Extra bytes asked of glibc for every block. glibc keeps pointers to chunk headers (in
/// its bins, `top`, and free chunks); a header sits at most 8 bytes past the end of the
/// previous chunk's requested size, so without the padding such a pointer lands inside a
/// live block and turns a definite leak into a "possible" one at the exit scan.
const PAD: usize = 8;

#[inline]
fn alloc_with(size: usize, f: u8, fam: u8, raw: impl FnOnce() -> *mut c_void) -> *mut c_void {
    let Some(_busy) = enter() else { return raw() };
    let p = raw();
    if !p.is_null() {
        record_alloc(p, size, f, fam);
    }
    p
}

#[inline]
fn release(p: *mut c_void, f: u8, fam: u8) {
    if p.is_null() {
        return;
    }
    if process::finished() {
        return; // the exit report is made; the memory goes away with the process
    }
    let Some(_busy) = enter() else {
        // SAFETY: a block allocated raw on this thread's nested path.
        unsafe { __libc_free(p) };
        return;
    };
    if record_release(p, f, fam).is_some() {
        // SAFETY: the table says glibc handed out `p` and it was live until now.
        unsafe { __libc_free(p) };
    }
}

// ---- C ----

#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    // SAFETY: plain glibc allocation.
    alloc_with(size, func::MALLOC, family::MALLOC, || unsafe {
        __libc_malloc(size.saturating_add(PAD))
    })
}

#[no_mangle]
pub extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        sys::set_errno(libc::ENOMEM);
        return core::ptr::null_mut();
    };
    // SAFETY: plain glibc allocation.
    alloc_with(total, func::CALLOC, family::MALLOC, || unsafe {
        __libc_calloc(1, total.saturating_add(PAD))
    })
}

#[no_mangle]
pub extern "C" fn free(p: *mut c_void) {
    release(p, func::FREE, family::MALLOC);
}

fn realloc_impl(p: *mut c_void, size: usize, f: u8) -> *mut c_void {
    if p.is_null() {
        // SAFETY: plain glibc allocation.
        return alloc_with(size, f, family::MALLOC, || unsafe {
            __libc_malloc(size.saturating_add(PAD))
        });
    }
    if process::finished() {
        // SAFETY: after the exit report, blocks are glibc's again.
        return unsafe { __libc_realloc(p, size) };
    }
    let Some(busy) = enter() else {
        // SAFETY: a nested call on a block allocated raw.
        return unsafe { __libc_realloc(p, size) };
    };
    if size == 0 {
        // glibc frees and returns NULL.
        if record_release(p, f, family::MALLOC).is_some() {
            // SAFETY: `p` was ours and live.
            unsafe { __libc_free(p) };
        }
        return core::ptr::null_mut();
    }
    // The release is recorded before glibc may hand the old address to another thread.
    let Some(old) = record_release(p, f, family::MALLOC) else {
        return core::ptr::null_mut();
    };
    // SAFETY: `p` was live in glibc's heap.
    let q = unsafe { __libc_realloc(p, size.saturating_add(PAD)) };
    drop(busy);
    let _busy = enter();
    if q.is_null() {
        // The old block is still live: put it back.
        record_alloc(p, old.size as usize, old.func, old.family);
        return q;
    }
    record_alloc(q, size, f, family::MALLOC);
    q
}

#[no_mangle]
pub extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    realloc_impl(p, size, func::REALLOC)
}

#[no_mangle]
pub extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => realloc_impl(p, total, func::REALLOCARRAY),
        None => {
            sys::set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}

fn valid_alignment(align: usize) -> bool {
    align.is_power_of_two() && align % core::mem::size_of::<usize>() == 0
}

#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !valid_alignment(align) {
        return libc::EINVAL;
    }
    let p = alloc_with(size, func::POSIX_MEMALIGN, family::MALLOC, || {
        __libc_memalign(align, size.saturating_add(PAD))
    });
    if p.is_null() {
        return libc::ENOMEM;
    }
    *out = p;
    0
}

#[no_mangle]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        sys::set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    // SAFETY: plain glibc allocation.
    alloc_with(size, func::ALIGNED_ALLOC, family::MALLOC, || unsafe {
        __libc_memalign(align, size.saturating_add(PAD))
    })
}

#[no_mangle]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    // SAFETY: plain glibc allocation (glibc rounds a bad alignment up, as it always did).
    alloc_with(size, func::MEMALIGN, family::MALLOC, || unsafe {
        __libc_memalign(align, size.saturating_add(PAD))
    })
}

#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    // SAFETY: plain glibc allocation.
    alloc_with(size, func::VALLOC, family::MALLOC, || unsafe {
        __libc_valloc(size.saturating_add(PAD))
    })
}

#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let rounded = size.div_ceil(4096).max(1).saturating_mul(4096);
    // SAFETY: plain glibc allocation.
    alloc_with(rounded, func::PVALLOC, family::MALLOC, || unsafe {
        __libc_pvalloc(rounded.saturating_add(PAD))
    })
}

/// The usable size is what was asked for: using more is an overrun.
#[no_mangle]
pub extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    table::lock(p as u64)
        .get(p as u64)
        .map_or(0, |m| m.size as usize)
}

// ---- C++ ----

type NewHandler = unsafe extern "C" fn();

fn cxx_symbol(name: &core::ffi::CStr) -> usize {
    // SAFETY: dlsym with a NUL-terminated name; only reached on allocation failure.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) as usize }
}

/// operator new semantics on failure: call the new-handler until it gives up, then throw
/// std::bad_alloc (through libstdc++, which a program calling operator new has loaded).
fn new_impl(size: usize, align: usize, nothrow: bool, f: u8, fam: u8) -> *mut c_void {
    loop {
        let p = alloc_with(size, f, fam, || {
            // SAFETY: plain glibc allocation; operator new(0) must return a unique pointer.
            unsafe {
                if align > 16 {
                    __libc_memalign(align, size.saturating_add(PAD))
                } else {
                    __libc_malloc(size.saturating_add(PAD))
                }
            }
        });
        if !p.is_null() {
            return p;
        }
        let get = cxx_symbol(c"_ZSt15get_new_handlerv");
        let handler = if get != 0 {
            // SAFETY: std::get_new_handler() from libstdc++.
            let get: unsafe extern "C" fn() -> Option<NewHandler> =
                unsafe { core::mem::transmute(get) };
            unsafe { get() }
        } else {
            None
        };
        match handler {
            // SAFETY: the program's own new-handler, called as operator new would.
            Some(h) => unsafe { h() },
            None if nothrow => return core::ptr::null_mut(),
            None => {
                let throw = cxx_symbol(c"_ZSt17__throw_bad_allocv");
                if throw != 0 {
                    // SAFETY: std::__throw_bad_alloc() throws a C++ exception, which unwinds
                    // through our C-unwind frames to the program's handler.
                    let throw: unsafe extern "C-unwind" fn() -> ! =
                        unsafe { core::mem::transmute(throw) };
                    unsafe { throw() }
                }
                // SAFETY: no C++ runtime to throw with; operator new may not return null.
                unsafe { libc::abort() }
            }
        }
    }
}

macro_rules! operator_new {
    ($($name:ident ($($arg:ident : $ty:ty),*) => $f:expr, $fam:expr, $align:expr, $nothrow:expr;)*) => {$(
        #[no_mangle]
        pub extern "C-unwind" fn $name(size: usize $(, $arg: $ty)*) -> *mut c_void {
            $(let _ = $arg;)*
            new_impl(size, $align, $nothrow, $f, $fam)
        }
    )*};
}

operator_new! {
    _Znwm() => func::NEW, family::NEW, 0, false;
    _Znam() => func::NEW_ARRAY, family::NEW_ARRAY, 0, false;
    _ZnwmRKSt9nothrow_t(_nt: *const c_void) => func::NEW, family::NEW, 0, true;
    _ZnamRKSt9nothrow_t(_nt: *const c_void) => func::NEW_ARRAY, family::NEW_ARRAY, 0, true;
}

macro_rules! operator_new_aligned {
    ($($name:ident ($($arg:ident : $ty:ty),*) => $f:expr, $fam:expr, $nothrow:expr;)*) => {$(
        #[no_mangle]
        pub extern "C-unwind" fn $name(size: usize, align: usize $(, $arg: $ty)*) -> *mut c_void {
            $(let _ = $arg;)*
            new_impl(size, align, $nothrow, $f, $fam)
        }
    )*};
}

operator_new_aligned! {
    _ZnwmSt11align_val_t() => func::NEW, family::NEW, false;
    _ZnamSt11align_val_t() => func::NEW_ARRAY, family::NEW_ARRAY, false;
    _ZnwmSt11align_val_tRKSt9nothrow_t(_nt: *const c_void) => func::NEW, family::NEW, true;
    _ZnamSt11align_val_tRKSt9nothrow_t(_nt: *const c_void) => func::NEW_ARRAY, family::NEW_ARRAY, true;
}

macro_rules! operator_delete {
    ($($name:ident ($($arg:ident : $ty:ty),*) => $f:expr, $fam:expr;)*) => {$(
        #[no_mangle]
        pub extern "C" fn $name(p: *mut c_void $(, $arg: $ty)*) {
            $(let _ = $arg;)*
            release(p, $f, $fam)
        }
    )*};
}

operator_delete! {
    _ZdlPv() => func::DELETE, family::NEW;
    _ZdaPv() => func::DELETE_ARRAY, family::NEW_ARRAY;
    _ZdlPvm(_size: usize) => func::DELETE, family::NEW;
    _ZdaPvm(_size: usize) => func::DELETE_ARRAY, family::NEW_ARRAY;
    _ZdlPvRKSt9nothrow_t(_nt: *const c_void) => func::DELETE, family::NEW;
    _ZdaPvRKSt9nothrow_t(_nt: *const c_void) => func::DELETE_ARRAY, family::NEW_ARRAY;
    _ZdlPvSt11align_val_t(_al: usize) => func::DELETE, family::NEW;
    _ZdaPvSt11align_val_t(_al: usize) => func::DELETE_ARRAY, family::NEW_ARRAY;
    _ZdlPvmSt11align_val_t(_size: usize, _al: usize) => func::DELETE, family::NEW;
    _ZdaPvmSt11align_val_t(_size: usize, _al: usize) => func::DELETE_ARRAY, family::NEW_ARRAY;
    _ZdlPvSt11align_val_tRKSt9nothrow_t(_al: usize, _nt: *const c_void) => func::DELETE, family::NEW;
    _ZdaPvSt11align_val_tRKSt9nothrow_t(_al: usize, _nt: *const c_void) => func::DELETE_ARRAY, family::NEW_ARRAY;
}
