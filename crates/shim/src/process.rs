//! The traced process: start-up, options, fork, exec and exit.

use crate::sys::{self, SpinLock};
use crate::wire::{self, exit_how, kind, start_flags};
use crate::{arena, guard, leaks, modules, ring, stacks, table};
use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

static PID: AtomicU32 = AtomicU32::new(0);
static FINISHED: AtomicBool = AtomicBool::new(false);
static TRACE_CHILDREN: AtomicBool = AtomicBool::new(false);
static FORK_COUNTER: AtomicU64 = AtomicU64::new(0);
static DATA_LO: AtomicUsize = AtomicUsize::new(0);
static DATA_HI: AtomicUsize = AtomicUsize::new(0);
static TEXT_LO: AtomicUsize = AtomicUsize::new(0);
static TEXT_HI: AtomicUsize = AtomicUsize::new(0);
static INIT_LOCK: SpinLock = SpinLock::new();
static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// The process id, cached (updated in the child after fork).
pub fn pid() -> u32 {
    let p = PID.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    let p = sys::getpid();
    PID.store(p, Ordering::Relaxed);
    p
}

/// True once the exit report was made: later calls go straight to glibc.
pub fn finished() -> bool {
    FINISHED.load(Ordering::Relaxed)
}

/// The shim's own writable segments (its static buffers hold copies of block addresses).
pub fn own_data_range() -> (usize, usize) {
    (
        DATA_LO.load(Ordering::Relaxed),
        DATA_HI.load(Ordering::Relaxed),
    )
}

/// True when `pc` lies in the shim's own code (frames to drop from captured stacks).
pub fn in_own_text(pc: u64) -> bool {
    let (lo, hi) = own_text();
    pc >= lo && pc < hi
}

/// The shim's code: [lo, hi), both 0 until the constructor has run.
#[inline]
pub fn own_text() -> (u64, u64) {
    (
        TEXT_LO.load(Ordering::Relaxed) as u64,
        TEXT_HI.load(Ordering::Relaxed) as u64,
    )
}

#[used]
#[link_section = ".init_array"]
static CONSTRUCTOR: extern "C" fn() = constructor;

extern "C" fn constructor() {
    init();
}

extern "C" {
    fn on_exit(f: extern "C" fn(c_int, *mut c_void), arg: *mut c_void) -> c_int;
    static mut environ: *mut *mut c_char;
}

fn env(name: &core::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: getenv does not allocate; the returned string lives in the environment.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        None
    } else {
        // SAFETY: getenv returns a NUL-terminated string.
        Some(unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes())
    }
}

/// `--alignment` was given (as a number or `standard`).
static ALIGNMENT_GIVEN: AtomicBool = AtomicBool::new(false);

/// Whether the program's executable was built by rustc: its `.comment` section (which
/// `strip` keeps) says "rustc version". Read from /proc/self/exe with fixed buffers.
fn main_program_is_rust() -> bool {
    // SAFETY: open/close of a path we own.
    let fd = unsafe { libc::open(c"/proc/self/exe".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return false;
    }
    let found = elf_comment_mentions(fd, b"rustc version");
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(fd) };
    found
}

/// Whether the `.comment` section of the 64-bit ELF file open at `fd` contains `needle`
/// (its first 4 KiB are read; sections past the first 128 are not looked at).
fn elf_comment_mentions(fd: c_int, needle: &[u8]) -> bool {
    let read_at = |buf: &mut [u8], at: u64| -> bool {
        // SAFETY: pread into our own buffer, at most its length.
        let n = unsafe { libc::pread(fd, buf.as_mut_ptr() as *mut c_void, buf.len(), at as i64) };
        n == buf.len() as isize
    };
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]) as usize;
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    let mut ehdr = [0u8; 64];
    if !read_at(&mut ehdr, 0) || &ehdr[..4] != b"\x7fELF" || ehdr[4] != 2 || ehdr[5] != 1 {
        return false;
    }
    let (shoff, shentsize, shnum, shstrndx) = (
        u64_at(&ehdr, 0x28),
        u16_at(&ehdr, 0x3a),
        u16_at(&ehdr, 0x3c),
        u16_at(&ehdr, 0x3e),
    );
    const SHDR: usize = 64;
    const MAX_SECTIONS: usize = 128;
    if shentsize != SHDR || shnum == 0 || shnum > MAX_SECTIONS || shstrndx >= shnum {
        return false;
    }
    let mut shdrs = [0u8; SHDR * MAX_SECTIONS];
    let shdrs = &mut shdrs[..SHDR * shnum];
    if !read_at(shdrs, shoff) {
        return false;
    }
    // (offset, size) of section i.
    let extent = |i: usize| {
        (
            u64_at(shdrs, i * SHDR + 0x18),
            u64_at(shdrs, i * SHDR + 0x20),
        )
    };
    let mut names = [0u8; 4096];
    let (names_at, names_len) = extent(shstrndx);
    let names = &mut names[..(names_len as usize).min(4096)];
    if !read_at(names, names_at) {
        return false;
    }
    let comment = (0..shnum).find(|&i| {
        let at = u32_at(shdrs, i * SHDR) as usize;
        names.get(at..at + 9) == Some(b".comment\0".as_slice())
    });
    let Some(comment) = comment else {
        return false;
    };
    let (at, len) = extent(comment);
    let mut text = [0u8; 4096];
    let text = &mut text[..(len as usize).min(4096)];
    read_at(text, at) && text.windows(needle.len()).any(|w| w == needle)
}

/// `FENCEPOST_OPTIONS` is `key=value` pairs separated by commas, written by the CLI.
fn read_options() {
    let Some(opts) = env(c"FENCEPOST_OPTIONS") else {
        return;
    };
    for item in opts.split(|&c| c == b',') {
        let mut kv = item.splitn(2, |&c| c == b'=');
        let (Some(k), Some(v)) = (kv.next(), kv.next()) else {
            continue;
        };
        match k {
            b"num_callers" => {
                if let Some(n) = sys::parse_u64(v) {
                    stacks::DEPTH.store(
                        n.clamp(1, stacks::MAX_FRAMES as u64) as u32,
                        Ordering::Relaxed,
                    );
                }
            }
            b"trace_children" => TRACE_CHILDREN.store(v == b"1", Ordering::Relaxed),
            b"mode" => crate::interpose::GUARD_MODE.store(v != b"fast", Ordering::Relaxed),
            b"freelist_vol" => {
                if let Some(n) = sys::parse_u64(v) {
                    crate::interpose::fast_quarantine::MAX_BYTES.store(n, Ordering::Relaxed);
                }
            }
            b"sample_rate" => {
                if let Some(n) = sys::parse_u64(v) {
                    crate::sample::RATE.store(n.min(u32::MAX as u64) as u32, Ordering::Relaxed);
                }
            }
            b"sample_first" => {
                if let Some(n) = sys::parse_u64(v) {
                    crate::sample::FIRST.store(n.min(255) as u32, Ordering::Relaxed);
                }
            }
            b"free_stacks" => crate::interpose::FREE_STACKS.store(v == b"1", Ordering::Relaxed),
            b"guards" => guard::FORCE_MPROTECT.store(v == b"mprotect", Ordering::Relaxed),
            b"protect_below" => guard::PROTECT_BELOW.store(v == b"1", Ordering::Relaxed),
            b"halt_on_error" => crate::faults::HALT_ON_ERROR.store(v == b"1", Ordering::Relaxed),
            b"alignment" if v == b"standard" => {
                guard::STANDARD_ALIGN.store(true, Ordering::Relaxed);
                ALIGNMENT_GIVEN.store(true, Ordering::Relaxed);
            }
            b"alignment" => {
                if let Some(n) = sys::parse_u64(v).filter(|n| n.is_power_of_two() && *n <= 4096) {
                    guard::MIN_ALIGN.store(n as usize, Ordering::Relaxed);
                    ALIGNMENT_GIVEN.store(true, Ordering::Relaxed);
                }
            }
            b"quarantine_mb" => {
                if let Some(n) = sys::parse_u64(v) {
                    guard::QUARANTINE_MAX.store(n.saturating_mul(1 << 20), Ordering::Relaxed);
                }
            }
            b"guard_budget_mb" => {
                if let Some(n) = sys::parse_u64(v).filter(|&n| n > 0) {
                    guard::GUARD_BUDGET.store(n.saturating_mul(1 << 20), Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }
}

unsafe extern "C" fn own_module_cb(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    _data: *mut c_void,
) -> c_int {
    // SAFETY: glibc passes a valid info for the duration of the call.
    let info = &*info;
    let me = own_module_cb as *const () as usize;
    let phdrs = core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize);
    let bias = info.dlpi_addr as usize;
    let ours = phdrs.iter().any(|ph| {
        ph.p_type == libc::PT_LOAD
            && me >= bias + ph.p_vaddr as usize
            && me < bias + (ph.p_vaddr + ph.p_memsz) as usize
    });
    if !ours {
        return 0;
    }
    let (mut dlo, mut dhi, mut tlo, mut thi) = (usize::MAX, 0, usize::MAX, 0);
    for ph in phdrs.iter().filter(|ph| ph.p_type == libc::PT_LOAD) {
        let lo = bias + ph.p_vaddr as usize;
        let hi = lo + ph.p_memsz as usize;
        if ph.p_flags & libc::PF_W != 0 {
            dlo = dlo.min(lo);
            dhi = dhi.max(hi);
        }
        if ph.p_flags & libc::PF_X != 0 {
            tlo = tlo.min(lo);
            thi = thi.max(hi);
        }
    }
    DATA_LO.store(dlo & !4095, Ordering::Relaxed);
    DATA_HI.store((dhi + 4095) & !4095, Ordering::Relaxed);
    TEXT_LO.store(tlo, Ordering::Relaxed);
    TEXT_HI.store(thi, Ordering::Relaxed);
    1
}

/// Runs once per process image, from our constructor.
pub fn init() {
    INIT_LOCK.lock();
    if INITIALIZED.swap(true, Ordering::Relaxed) {
        INIT_LOCK.unlock();
        return;
    }
    let _guard = crate::interpose::enter_raw();
    // SAFETY: the callback only stores into atomics.
    unsafe { libc::dl_iterate_phdr(Some(own_module_cb), core::ptr::null_mut()) };
    read_options();
    if guard::PROTECT_BELOW.load(Ordering::Relaxed) {
        // Slots opened for allocations made before now have the guard after the data.
        guard::close_open_slots();
    }
    let guards_blocks = crate::interpose::GUARD_MODE.load(Ordering::Relaxed);
    if guards_blocks && !ALIGNMENT_GIVEN.load(Ordering::Relaxed) && main_program_is_rust() {
        // Rust's allocator calls malloc for alignments up to 16 and counts on getting them.
        guard::STANDARD_ALIGN.store(true, Ordering::Relaxed);
    }
    crate::table::find_single_threaded_flag();
    crate::faults::install();
    let fd = env(c"FENCEPOST_RING_FD").and_then(sys::parse_u64);
    match fd.map(|fd| ring::attach(fd as i32)) {
        Some(Ok(())) => {}
        Some(Err(why)) => {
            ring::disable();
            sys::write_all(2, b"fencepost: ");
            sys::write_all(2, why.as_bytes());
            sys::write_all(2, b"; this process is not recorded\n");
        }
        None => {
            ring::disable();
            sys::write_all(2, b"fencepost: libfencepost_shim.so was preloaded without `fencepost run`; nothing is recorded\n");
        }
    }
    if ring::recording() {
        announce(0, 0);
        ring::flush_preinit();
        modules::walk();
    }
    // SAFETY: registering handlers with glibc; the functions live as long as the process.
    unsafe {
        on_exit(on_exit_handler, core::ptr::null_mut());
        libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child));
    }
    if let Some(fd) = fd {
        if !TRACE_CHILDREN.load(Ordering::Relaxed) {
            // Not following exec: an exec'd image must neither load us nor see the ring.
            // SAFETY: F_SETFD on our own fd.
            unsafe { libc::fcntl(fd as i32, libc::F_SETFD, libc::FD_CLOEXEC) };
            scrub_environment();
        }
    }
    INIT_LOCK.unlock();
}

fn announce(flags: u32, token: u64) {
    let mut head = [0u8; wire::PROCESS_START_FIXED];
    let mut w = wire::PayloadWriter::new(&mut head);
    w.u32(pid());
    w.u32(sys::getppid());
    w.u32(flags);
    w.u32(0);
    w.u64(token);
    w.u64(sys::now_ns());
    let mut path = [0u8; 4096];
    // SAFETY: readlink writes at most path.len() bytes.
    let n = unsafe {
        libc::readlink(
            c"/proc/self/exe".as_ptr(),
            path.as_mut_ptr() as *mut c_char,
            path.len(),
        )
    };
    let n = n.max(0) as usize;
    ring::emit(kind::PROCESS_START, &[&head, &path[..n]]);
}

/// Removes our entry from LD_PRELOAD and our variables from the environment, in place
/// (no allocation), so that programs this one execs run natively.
fn scrub_environment() {
    // SAFETY: `environ` is the process's environment array, NULL-terminated; we only move
    // pointers within it and bytes within one of its strings, before `main` runs.
    unsafe {
        let env = environ;
        if env.is_null() {
            return;
        }
        let mut read = 0;
        let mut write = 0;
        loop {
            let e = *env.add(read);
            if e.is_null() {
                *env.add(write) = e;
                break;
            }
            read += 1;
            let s = core::ffi::CStr::from_ptr(e).to_bytes();
            if s.starts_with(b"FENCEPOST_RING_FD=") || s.starts_with(b"FENCEPOST_OPTIONS=") {
                continue;
            }
            if s.starts_with(b"LD_PRELOAD=") && !strip_shim_from_preload(e, s.len()) {
                continue; // nothing else was preloaded: drop the variable
            }
            *env.add(write) = e;
            write += 1;
        }
    }
}

/// Drops the first LD_PRELOAD element if it is our shim. Returns false when the value is
/// left empty.
///
/// SAFETY: `e` points to the writable NUL-terminated string "LD_PRELOAD=..." of `len` bytes.
unsafe fn strip_shim_from_preload(e: *mut c_char, len: usize) -> bool {
    let bytes = core::slice::from_raw_parts_mut(e as *mut u8, len + 1);
    let value_at = b"LD_PRELOAD=".len();
    let value = &bytes[value_at..len];
    let first_end = value
        .iter()
        .position(|&c| c == b':' || c == b' ')
        .unwrap_or(value.len());
    if !value[..first_end].ends_with(b"libfencepost_shim.so") {
        return true;
    }
    let rest_at = value_at + (first_end + 1).min(value.len());
    let rest_len = len + 1 - rest_at; // includes the NUL
    bytes.copy_within(rest_at..rest_at + rest_len, value_at);
    rest_len > 1
}

extern "C" fn on_exit_handler(status: c_int, _arg: *mut c_void) {
    finish(stack_pointer(), exit_how::EXIT, status);
}

/// Classifies leaks and announces the end of this process, once. `sp` is the stack pointer
/// of the hook that called us: the stack below it is the shim's own, with stale copies of
/// whatever the program left there, and must not be scanned.
#[inline(never)]
pub fn finish(sp: usize, how: u32, code: i32) {
    if sys::getpid() != pid() {
        return; // a vfork child sharing our memory: the parent will report
    }
    if finished() || !ring::recording() {
        return;
    }
    if thread_count() == 1 {
        // As memcheck does: let the C and C++ runtimes free what they keep for the life of
        // the process, so it is not reported. Only when no other thread could be using it.
        free_runtime_resources();
    }
    let _guard = crate::interpose::enter_raw();
    if FINISHED.swap(true, Ordering::AcqRel) {
        return;
    }
    modules::walk();
    leaks::classify_and_report(sp, how, code);
    crate::unwind::check_summary();
}

/// The number of threads in this process, from /proc/self/stat (field 20); 0 if unknown.
fn thread_count() -> u64 {
    let mut buf = [0u8; 1024];
    // SAFETY: open/read/close into our own buffer.
    let n = unsafe {
        let fd = libc::open(
            c"/proc/self/stat".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return 0;
        }
        let n = libc::read(fd, buf.as_mut_ptr() as *mut c_void, buf.len());
        libc::close(fd);
        n
    };
    let stat = &buf[..n.max(0) as usize];
    // The command name may hold spaces and parentheses: count fields after the last ')'.
    let Some(close) = stat.iter().rposition(|&c| c == b')') else {
        return 0;
    };
    stat[close + 1..]
        .split(|&c| c == b' ')
        .filter(|f| !f.is_empty())
        .nth(17)
        .and_then(sys::parse_u64)
        .unwrap_or(0)
}

/// Calls libstdc++'s `__gnu_cxx::__freeres` and glibc's `__libc_freeres` if present.
fn free_runtime_resources() {
    for name in [c"_ZN9__gnu_cxx9__freeresEv", c"__libc_freeres"] {
        // SAFETY: dlsym with a NUL-terminated name; both functions take no arguments.
        unsafe {
            let f = libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr());
            if !f.is_null() {
                let f: extern "C" fn() = core::mem::transmute(f);
                f();
            }
        }
    }
}

#[inline(always)]
fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: reads the stack pointer register; no memory is touched.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    sp
}

type MainFn = extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) -> c_int;
type StartMainFn = unsafe extern "C" fn(
    MainFn,
    c_int,
    *mut *mut c_char,
    usize,
    usize,
    usize,
    *mut c_void,
) -> c_int;

static REAL_MAIN: AtomicUsize = AtomicUsize::new(0);
/// The stack pointer just above `main`'s frame, once `main` has returned: from then on
/// the main thread's stack below it holds only dead frames and the exit machinery, whose
/// stale slots must not keep a leaked block "reachable".
static MAIN_RETURNED_SP: AtomicUsize = AtomicUsize::new(0);

extern "C" fn main_trampoline(
    argc: c_int,
    argv: *mut *mut c_char,
    envp: *mut *mut c_char,
) -> c_int {
    // SAFETY: REAL_MAIN was set to the program's main before __libc_start_main ran us.
    let real: MainFn = unsafe { core::mem::transmute(REAL_MAIN.load(Ordering::Relaxed)) };
    let r = real(argc, argv, envp);
    MAIN_RETURNED_SP.store(stack_pointer(), Ordering::Relaxed);
    r
}

/// Where the exit scan may start on the main thread's stack (0: anywhere above our frames).
pub fn main_returned_sp() -> usize {
    MAIN_RETURNED_SP.load(Ordering::Relaxed)
}

/// `__libc_start_main` interposed, to know when `main` returns (see MAIN_RETURNED_SP).
#[no_mangle]
pub unsafe extern "C" fn __libc_start_main(
    main: MainFn,
    argc: c_int,
    argv: *mut *mut c_char,
    init: usize,
    fini: usize,
    rtld_fini: usize,
    stack_end: *mut c_void,
) -> c_int {
    let real = libc::dlsym(libc::RTLD_NEXT, c"__libc_start_main".as_ptr());
    if real.is_null() {
        sys::write_all(2, b"fencepost: cannot find __libc_start_main\n");
        libc::abort();
    }
    // SAFETY: glibc's __libc_start_main, with the arguments _start gave us.
    let real: StartMainFn = core::mem::transmute(real);
    REAL_MAIN.store(main as usize, Ordering::Relaxed);
    real(
        main_trampoline,
        argc,
        argv,
        init,
        fini,
        rtld_fini,
        stack_end,
    )
}

/// `_exit` called by the program: memcheck still checks for leaks here, and so do we.
#[no_mangle]
pub extern "C" fn _exit(status: c_int) -> ! {
    if sys::getpid() == pid() && !finished() {
        finish(stack_pointer(), exit_how::UNDERSCORE_EXIT, status);
    }
    // SAFETY: exit_group ends the process; it does not return.
    unsafe {
        libc::syscall(libc::SYS_exit_group, status);
        // exit_group does not return; if it somehow did, end this thread for good.
        loop {
            libc::syscall(libc::SYS_exit, status);
        }
    }
}

#[no_mangle]
pub extern "C" fn _Exit(status: c_int) -> ! {
    _exit(status)
}

extern "C" fn fork_prepare() {
    if !ring::recording() {
        return;
    }
    modules::lock();
    table::lock_all();
    guard::lock();
    crate::interpose::fast_quarantine::lock();
    arena::lock();
    let token =
        ((pid() as u64) << 32) | (FORK_COUNTER.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff);
    let mut p = [0u8; wire::FORK_PREPARE_LEN];
    let mut w = wire::PayloadWriter::new(&mut p);
    w.u32(pid());
    w.u32(0);
    w.u64(token);
    ring::emit(kind::FORK_PREPARE, &[&p]);
    LAST_TOKEN.store(token, Ordering::Relaxed);
}

static LAST_TOKEN: AtomicU64 = AtomicU64::new(0);

extern "C" fn fork_parent() {
    if !ring::recording() {
        return;
    }
    arena::unlock();
    crate::interpose::fast_quarantine::unlock();
    guard::unlock();
    table::unlock_all();
    modules::unlock();
}

extern "C" fn fork_child() {
    PID.store(sys::getpid(), Ordering::Relaxed);
    crate::interpose::reset_thread_after_fork();
    crate::threads::after_fork_in_child();
    if !ring::recording() {
        return;
    }
    arena::force_unlock();
    crate::interpose::fast_quarantine::after_fork_in_child();
    guard::force_unlock();
    // The child's statistics count its own blocks, not those it inherited.
    guard::GUARDED_BLOCKS.store(0, Ordering::Relaxed);
    guard::UNGUARDED_BLOCKS.store(0, Ordering::Relaxed);
    table::reset_locks_after_fork();
    modules::force_unlock();
    announce(start_flags::FORKED, LAST_TOKEN.load(Ordering::Relaxed));
}

/// Calls `f(lo, hi, is_brk_heap)` for every private readable and writable mapping (and
/// anonymous shared ones), read from /proc/self/maps without allocating.
pub fn for_each_writable_mapping(mut f: impl FnMut(usize, usize, bool)) {
    // SAFETY: open/read/close on a path we own; the buffer is ours.
    let fd = unsafe {
        libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return;
    }
    let mut buf = [0u8; 8192];
    let mut have = 0usize;
    loop {
        // SAFETY: reading into the free tail of `buf`.
        let n = unsafe {
            libc::read(
                fd,
                buf[have..].as_mut_ptr() as *mut c_void,
                buf.len() - have,
            )
        };
        if n <= 0 && have == 0 {
            break;
        }
        have += n.max(0) as usize;
        let mut start = 0;
        while let Some(nl) = buf[start..have].iter().position(|&c| c == b'\n') {
            if let Some((lo, hi, heap)) = parse_maps_line(&buf[start..start + nl]) {
                f(lo, hi, heap);
            }
            start += nl + 1;
        }
        if start == 0 && have == buf.len() {
            have = 0; // an absurdly long line: drop it
            continue;
        }
        buf.copy_within(start..have, 0);
        have -= start;
        if n <= 0 {
            break;
        }
    }
    // SAFETY: closing the fd we opened.
    unsafe { libc::close(fd) };
}

/// `lo-hi perms offset dev inode path` → the range, if it is memory that can hold roots, and
/// whether it is the brk heap.
fn parse_maps_line(line: &[u8]) -> Option<(usize, usize, bool)> {
    let mut fields = line.split(|&c| c == b' ').filter(|f| !f.is_empty());
    let range = fields.next()?;
    let perms = fields.next()?;
    let _offset = fields.next()?;
    let _dev = fields.next()?;
    let inode = fields.next()?;
    let path = fields.next().unwrap_or(b"");
    if perms.len() < 4 || perms[0] != b'r' || perms[1] != b'w' {
        return None;
    }
    if path.starts_with(b"[v") {
        return None; // [vvar], [vdso], [vsyscall]
    }
    if perms[3] == b's' && (inode != b"0" || !path.is_empty()) {
        return None; // shared file mappings: not program data, and reading may fault
    }
    let dash = range.iter().position(|&c| c == b'-')?;
    let lo = sys::parse_hex(&range[..dash])? as usize;
    let hi = sys::parse_hex(&range[dash + 1..])? as usize;
    (lo < hi).then_some((lo, hi, path == b"[heap]"))
}
