//! Loaded modules: announced to the analyzer so that it can symbolize program counters,
//! including those of a library that is `dlclose`d before the process exits.
//!
//! We do not wrap `dlopen` (glibc uses its caller's address to pick the RUNPATH and
//! namespace, and a wrapper would change that). Instead new modules are found by walking
//! `dl_iterate_phdr` whenever its load counter moved: when a new stack is defined, before
//! and after every `dlclose`, and at exit.

use crate::sys::SpinLock;
use crate::wire::{self, kind};
use crate::{process, ring};
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicU64, Ordering};

const MAX_MODULES: usize = 1024;

#[derive(Clone, Copy)]
struct Known {
    bias: u64,
    /// Generation of the last walk that saw it.
    seen: u64,
}

struct State {
    known: [Known; MAX_MODULES],
    count: usize,
    generation: u64,
}

static LOCK: SpinLock = SpinLock::new();
static mut STATE: State = State {
    known: [Known { bias: 0, seen: 0 }; MAX_MODULES],
    count: 0,
    generation: 0,
};
static LAST_ADDS: AtomicU64 = AtomicU64::new(u64::MAX);
static LAST_SUBS: AtomicU64 = AtomicU64::new(u64::MAX);

unsafe extern "C" fn counters_cb(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: glibc passes a valid info; data is our [u64; 2].
    let out = &mut *(data as *mut [u64; 2]);
    out[0] = (*info).dlpi_adds;
    out[1] = (*info).dlpi_subs;
    1 // stop after the first module
}

/// Announces modules loaded since the last look (cheap when nothing changed).
pub fn refresh() {
    let mut counters = [0u64; 2];
    // SAFETY: the callback only writes `counters`.
    unsafe { libc::dl_iterate_phdr(Some(counters_cb), &mut counters as *mut _ as *mut c_void) };
    if counters[0] == LAST_ADDS.load(Ordering::Relaxed)
        && counters[1] == LAST_SUBS.load(Ordering::Relaxed)
    {
        return;
    }
    walk();
    LAST_ADDS.store(counters[0], Ordering::Relaxed);
    LAST_SUBS.store(counters[1], Ordering::Relaxed);
}

/// Walks every loaded module: announces new ones and the unloading of vanished ones.
pub fn walk() {
    LOCK.lock();
    // SAFETY: STATE is only touched under LOCK.
    let st = unsafe { &mut *core::ptr::addr_of_mut!(STATE) };
    st.generation += 1;
    // SAFETY: the callback only touches `st`, which we hold exclusively.
    unsafe { libc::dl_iterate_phdr(Some(walk_cb), st as *mut State as *mut c_void) };
    let gen = st.generation;
    let mut i = 0;
    while i < st.count {
        if st.known[i].seen != gen {
            emit_unload(st.known[i].bias);
            st.known[i] = st.known[st.count - 1];
            st.count -= 1;
        } else {
            i += 1;
        }
    }
    LOCK.unlock();
}

unsafe extern "C" fn walk_cb(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: data is the State passed by `walk`; info is valid for this call.
    let st = &mut *(data as *mut State);
    let info = &*info;
    let bias = info.dlpi_addr;
    for k in st.known[..st.count].iter_mut() {
        if k.bias == bias {
            k.seen = st.generation;
            return 0;
        }
    }
    if st.count < MAX_MODULES {
        st.known[st.count] = Known {
            bias,
            seen: st.generation,
        };
        st.count += 1;
    }
    emit_load(info);
    0
}

fn emit_unload(bias: u64) {
    let mut p = [0u8; wire::MODULE_UNLOAD_LEN];
    let mut w = wire::PayloadWriter::new(&mut p);
    w.u32(process::pid());
    w.u32(0);
    w.u64(bias);
    ring::emit(kind::MODULE_UNLOAD, &[&p]);
}

/// SAFETY: `info` must be a valid `dl_phdr_info` from `dl_iterate_phdr`.
unsafe fn emit_load(info: &libc::dl_phdr_info) {
    let mut path_buf = [0u8; 4096];
    let name = if info.dlpi_name.is_null() {
        &[][..]
    } else {
        core::ffi::CStr::from_ptr(info.dlpi_name).to_bytes()
    };
    let path: &[u8] = if name.is_empty() {
        // The main program: its path is /proc/self/exe.
        let n = libc::readlink(
            c"/proc/self/exe".as_ptr(),
            path_buf.as_mut_ptr() as *mut libc::c_char,
            path_buf.len(),
        );
        if n <= 0 {
            return;
        }
        &path_buf[..n as usize]
    } else {
        name
    };
    if path.starts_with(b"linux-vdso") || path.starts_with(b"linux-gate") {
        return; // no file to symbolize from
    }
    let phdrs = core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize);
    let mut segs = [0u8; 32 * wire::MODULE_SEGMENT_LEN];
    let mut nsegs = 0usize;
    let mut build_id: &[u8] = &[];
    for ph in phdrs {
        if ph.p_type == libc::PT_LOAD && nsegs < 32 {
            let mut w = wire::PayloadWriter::new(&mut segs[nsegs * wire::MODULE_SEGMENT_LEN..]);
            w.u64(ph.p_vaddr);
            w.u64(ph.p_memsz);
            w.u64(ph.p_flags as u64);
            nsegs += 1;
        } else if ph.p_type == libc::PT_NOTE && build_id.is_empty() {
            build_id = find_build_id(
                info.dlpi_addr as usize + ph.p_vaddr as usize,
                ph.p_memsz as usize,
            );
        }
    }
    let build_id = &build_id[..build_id.len().min(64)];
    let mut head = [0u8; wire::MODULE_LOAD_FIXED];
    let mut w = wire::PayloadWriter::new(&mut head);
    w.u32(process::pid());
    w.u16(nsegs as u16);
    w.u16(build_id.len() as u16);
    w.u64(info.dlpi_addr);
    ring::emit(
        kind::MODULE_LOAD,
        &[
            &head,
            &segs[..nsegs * wire::MODULE_SEGMENT_LEN],
            build_id,
            path,
        ],
    );
}

/// Finds the GNU build-id note in a loaded PT_NOTE segment.
///
/// SAFETY: `[addr, addr+len)` must be a mapped PT_NOTE segment.
unsafe fn find_build_id(addr: usize, len: usize) -> &'static [u8] {
    let notes = core::slice::from_raw_parts(addr as *const u8, len);
    let mut at = 0;
    while at + 12 <= notes.len() {
        let rd = |o: usize| {
            u32::from_le_bytes([notes[o], notes[o + 1], notes[o + 2], notes[o + 3]]) as usize
        };
        let (namesz, descsz, ty) = (rd(at), rd(at + 4), rd(at + 8));
        let name_at = at + 12;
        let desc_at = name_at + ((namesz + 3) & !3);
        let next = desc_at + ((descsz + 3) & !3);
        if next > notes.len() {
            break;
        }
        if ty == 3 && namesz == 4 && &notes[name_at..name_at + 4] == b"GNU\0" {
            return &notes[desc_at..desc_at + descsz];
        }
        at = next;
    }
    &[]
}

/// Fork support: the module list must not be half-updated in the child.
pub fn lock() {
    LOCK.lock();
}
pub fn unlock() {
    LOCK.unlock();
}
pub fn force_unlock() {
    LOCK.force_unlock();
}

type DlcloseFn = unsafe extern "C" fn(*mut c_void) -> c_int;
static REAL_DLCLOSE: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// `dlclose` interposed: modules that vanish are announced as unloaded, after anything
/// loaded since the last look was announced, so their stacks still symbolize.
#[no_mangle]
pub unsafe extern "C" fn dlclose(handle: *mut c_void) -> c_int {
    let mut real = REAL_DLCLOSE.load(Ordering::Relaxed);
    if real == 0 {
        real = libc::dlsym(libc::RTLD_NEXT, c"dlclose".as_ptr()) as usize;
        if real == 0 {
            return -1;
        }
        REAL_DLCLOSE.store(real, Ordering::Relaxed);
    }
    // SAFETY: `real` is glibc's dlclose, found through RTLD_NEXT.
    let real: DlcloseFn = core::mem::transmute(real);
    if ring::recording() {
        refresh();
    }
    let r = real(handle);
    // Another library may be loaded at the same addresses: cached unwind rules must go.
    crate::unwind::forget_rules();
    if ring::recording() {
        walk();
    }
    r
}
