//! Stack capture for allocation and free events.
//!
//! Every allocation and free captures a stack, so this is the shim's hottest path. The fast
//! path walks DWARF CFI (`.eh_frame`) itself, with the unwind rule of each return address
//! cached in a fixed, lock-free table: after warm-up a frame costs a hash probe and two loads
//! from the stack. Frame pointers alone would be cheaper but wrong: Debian's libc and
//! libstdc++ and most -O2 code have none, and a frame without one hides its caller.
//!
//! A rule the cache cannot express (CFA from an expression, as in PLT stubs; signal
//! trampolines; a CFA based on a register other than rsp/rbp; the return address anywhere
//! but at CFA-8) hands the rest of the stack to libgcc's `_Unwind_Backtrace`, which is
//! correct for everything but slow. `FENCEPOST_UNWIND=libgcc` uses libgcc for every stack,
//! to compare the two.
//!
//! Nothing here allocates through `malloc` (the miss path runs gimli over the mapped
//! `.eh_frame` with fixed-size storage on the stack), takes a lock, or panics, and every
//! read of the stack is bounded: a CFA must be 8-aligned, above the previous frame's and
//! within 64 MiB of where the walk started.

use crate::arena;
use core::arch::asm;
use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, Ordering};
use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, NativeEndian, Pointer, Register, RegisterRule,
    UnwindContext, UnwindContextStorage, UnwindSection, UnwindTableRow, X86_64,
};

/// How far above the starting stack pointer a CFA may lie.
const STACK_SPAN: u64 = 64 << 20;
/// Frames walked at most, whatever `out` and `skip` say (a corrupt stack cannot loop us).
const MAX_WALK: usize = 4096;

/// Fills `out` with return addresses of the current thread's stack, innermost first,
/// skipping `skip` frames (the shim's own), and returns how many were written.
///
/// `out[0]` is the return address into `capture_stack`'s caller (when `skip` is 0).
#[inline(never)]
pub fn capture_stack(out: &mut [u64], skip: usize) -> usize {
    let (pc, sp, fp): (u64, u64, u64);
    // SAFETY: copies rip (the address of the next instruction), rsp and rbp into registers;
    // touches no memory and no flags.
    unsafe {
        asm!(
            "lea {pc}, [rip]",
            "mov {sp}, rsp",
            "mov {fp}, rbp",
            pc = out(reg) pc,
            sp = out(reg) sp,
            fp = out(reg) fp,
            options(nomem, nostack, preserves_flags),
        );
    }
    let mut walk = Walk { out, n: 0, skip };
    if use_libgcc() {
        // Everything at or below this frame's stack pointer is the shim's own.
        libgcc::finish(&mut walk, 0, sp);
    } else {
        walk_cfi(&mut walk, pc, sp, fp);
    }
    walk.n
}

/// Forgets every cached rule. To be called after a module is unloaded (`modules::dlclose`):
/// its addresses may be reused by another with different code.
pub fn forget_rules() {
    let table = RULES.load(Ordering::Acquire);
    if table.is_null() {
        return;
    }
    for i in 0..SLOTS {
        // SAFETY: `table` holds SLOTS entries and is never freed.
        unsafe { &*table.add(i) }.store(0, Ordering::Relaxed);
    }
}

/// The output of a walk: frames are appended after `skip` have been dropped.
struct Walk<'a> {
    out: &'a mut [u64],
    n: usize,
    skip: usize,
}

impl Walk<'_> {
    /// Appends a return address; false once `out` is full.
    fn push(&mut self, pc: u64) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return true;
        }
        match self.out.get_mut(self.n) {
            Some(slot) => {
                *slot = pc;
                self.n += 1;
                self.n < self.out.len()
            }
            None => false,
        }
    }
}

/// `FENCEPOST_UNWIND=libgcc` selects libgcc for every stack; read once.
fn use_libgcc() -> bool {
    static MODE: AtomicU8 = AtomicU8::new(0); // 0 unread, 1 cfi, 2 libgcc
    let mode = MODE.load(Ordering::Relaxed);
    if mode != 0 {
        return mode == 2;
    }
    // SAFETY: getenv reads the environment without allocating; the name is NUL-terminated.
    let value = unsafe { libc::getenv(c"FENCEPOST_UNWIND".as_ptr()) };
    let libgcc = !value.is_null()
        // SAFETY: a non-null getenv result is a NUL-terminated string.
        && unsafe { core::ffi::CStr::from_ptr(value) }.to_bytes() == b"libgcc";
    MODE.store(if libgcc { 2 } else { 1 }, Ordering::Relaxed);
    libgcc
}

/// The CFI walk. Frame 0 is `capture_stack` itself, at the exact `pc`; every later frame is
/// looked up at its return address minus one (the call instruction).
fn walk_cfi(walk: &mut Walk, mut pc: u64, mut sp: u64, mut fp: u64) {
    let limit = sp.saturating_add(STACK_SPAN);
    let mut at = pc;
    let mut first = true;
    for _ in 0..MAX_WALK {
        let rule = rule_for(at);
        match rule.kind() {
            Rule::FRAME => {}
            Rule::UNSUPPORTED => {
                // libgcc takes over after the frame whose stack pointer is `sp`: the frame
                // at `pc` (for frame 0, every frame of the shim at or below `sp`).
                let resume_pc = if first { 0 } else { pc };
                libgcc::finish(walk, resume_pc, sp);
                return;
            }
            _ => return, // end of stack
        }
        let base = if rule.cfa_on_rbp() { fp } else { sp };
        let cfa = base.wrapping_add(rule.cfa_offset());
        if cfa <= sp || cfa > limit || cfa & 7 != 0 || sp & 7 != 0 {
            return;
        }
        // SAFETY: sp < cfa <= limit and both are 8-aligned, so cfa-8 lies in the part of
        // this thread's stack between the current frame's stack pointer and its CFA.
        let ra = unsafe { ((cfa - 8) as *const u64).read() };
        if let Some(slot) = rule.rbp_slot(cfa) {
            if slot < sp || slot & 7 != 0 {
                return;
            }
            // SAFETY: sp <= slot < cfa, 8-aligned: inside the frame, as above.
            fp = unsafe { (slot as *const u64).read() };
        }
        if ra == 0 || !walk.push(ra) {
            return;
        }
        pc = ra;
        at = ra - 1;
        sp = cfa;
        first = false;
    }
}

// ---------------------------------------------------------------------------------------
// Rules and the rule cache

/// How to step from a frame to its caller, packed in 30 bits.
///
/// bits 0-1 kind, bit 2 CFA on rbp (else rsp), bit 3 rbp saved, bits 4-19 CFA offset / 8,
/// bits 20-29 offset / 8 below the CFA where rbp is saved. The return address is at CFA-8
/// and the caller's rsp is the CFA (the only case `FRAME` covers).
#[derive(Clone, Copy)]
struct Rule(u64);

impl Rule {
    const BITS: u32 = 30;
    const FRAME: u64 = 1;
    const END: Rule = Rule(2);
    const UNSUPPORTED: u64 = 3;

    fn unsupported() -> Rule {
        Rule(Self::UNSUPPORTED)
    }

    /// A frame rule, if the offsets fit.
    fn frame(cfa_on_rbp: bool, cfa_offset: i64, rbp_saved_at: Option<i64>) -> Rule {
        if cfa_offset <= 0 || cfa_offset % 8 != 0 || cfa_offset / 8 >= 1 << 16 {
            return Self::unsupported();
        }
        let mut bits = Self::FRAME | (cfa_on_rbp as u64) << 2 | ((cfa_offset / 8) as u64) << 4;
        if let Some(off) = rbp_saved_at {
            // rbp is saved at CFA+off, off < 0.
            let below = off.checked_neg().unwrap_or(0);
            if below <= 0 || below % 8 != 0 || below / 8 >= 1 << 10 {
                return Self::unsupported();
            }
            bits |= 1 << 3 | ((below / 8) as u64) << 20;
        }
        Rule(bits)
    }

    fn kind(self) -> u64 {
        self.0 & 3
    }

    fn cfa_on_rbp(self) -> bool {
        self.0 & (1 << 2) != 0
    }

    fn cfa_offset(self) -> u64 {
        ((self.0 >> 4) & 0xffff) * 8
    }

    /// Where the caller's rbp is saved, or None when rbp is unchanged.
    fn rbp_slot(self, cfa: u64) -> Option<u64> {
        if self.0 & (1 << 3) == 0 {
            return None;
        }
        Some(cfa.wrapping_sub(((self.0 >> 20) & 0x3ff) * 8))
    }
}

/// The cache: SLOTS 64-bit entries, each holding a whole (address, rule) pair so that a
/// reader can never see a torn one. An entry is
/// `(addr >> 16) << 33 | probe << 30 | rule`, and lives at slot `home(addr) + probe`
/// (probe < PROBES); `home` takes the low 16 bits of the address from the slot index,
/// so the entry names its address exactly. 0 is empty. Addresses at or above 2^47
/// (not user space) or below 64 KiB are never cached.
const SLOT_BITS: u32 = 16;
const SLOTS: usize = 1 << SLOT_BITS;
const PROBES: u64 = 4;
const RULE_MASK: u64 = (1 << Rule::BITS) - 1;

static RULES: AtomicPtr<AtomicU64> = AtomicPtr::new(core::ptr::null_mut());

fn rules_table() -> *const AtomicU64 {
    let p = RULES.load(Ordering::Acquire);
    if !p.is_null() {
        return p;
    }
    let bytes = SLOTS * core::mem::size_of::<AtomicU64>();
    let fresh = arena::alloc(bytes) as *mut AtomicU64;
    if fresh.is_null() {
        return fresh; // no cache: every frame takes the slow path
    }
    match RULES.compare_exchange(
        core::ptr::null_mut(),
        fresh,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => fresh,
        Err(other) => {
            arena::free(fresh as *mut u8, bytes);
            other
        }
    }
}

/// The first slot for `addr`: its low 16 bits folded with the rest, by shifts and xors only
/// (this sits on the walk's critical path, between loading a return address and its rule).
fn home(addr: u64) -> u64 {
    (addr ^ (addr >> 16) ^ (addr >> 31)) & (SLOTS as u64 - 1)
}

fn cacheable(addr: u64) -> bool {
    addr >> 16 != 0 && addr >> 47 == 0
}

/// The rule for the instruction at `addr`, from the cache or computed and cached.
#[inline]
fn rule_for(addr: u64) -> Rule {
    let table = rules_table();
    if table.is_null() || !cacheable(addr) {
        return compute_rule(addr);
    }
    let home = home(addr);
    let tag = (addr >> 16) << (Rule::BITS + 3);
    for probe in 0..PROBES {
        let i = ((home + probe) as usize) & (SLOTS - 1);
        // SAFETY: i < SLOTS and the table holds SLOTS entries, never freed.
        let entry = unsafe { &*table.add(i) }.load(Ordering::Relaxed);
        if entry & !RULE_MASK == tag | probe << Rule::BITS && entry & RULE_MASK != 0 {
            return Rule(entry & RULE_MASK);
        }
        if entry == 0 {
            break;
        }
    }
    let rule = compute_rule(addr);
    // Publish in the first empty probe slot, else evict the one picked by the address.
    for probe in 0..PROBES {
        let i = ((home + probe) as usize) & (SLOTS - 1);
        // SAFETY: as above.
        let slot = unsafe { &*table.add(i) };
        let entry = tag | probe << Rule::BITS | rule.0;
        if slot
            .compare_exchange(0, entry, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            return rule;
        }
    }
    let victim = (addr >> 4) % PROBES;
    let i = ((home + victim) as usize) & (SLOTS - 1);
    // SAFETY: as above.
    unsafe { &*table.add(i) }.store(tag | victim << Rule::BITS | rule.0, Ordering::Relaxed);
    rule
}

// ---------------------------------------------------------------------------------------
// The miss path: find and evaluate the FDE with gimli

#[repr(C)]
struct DlFindObject {
    dlfo_flags: u64,
    dlfo_map_start: *mut c_void,
    dlfo_map_end: *mut c_void,
    dlfo_link_map: *mut c_void,
    dlfo_eh_frame: *mut c_void,
    reserved: [u64; 7],
}

extern "C" {
    /// glibc 2.35+: lock-free, allocation-free and async-signal-safe.
    fn _dl_find_object(address: *mut c_void, result: *mut DlFindObject) -> i32;
}

/// gimli's unwind state in fixed arrays (on the stack, only on a cache miss): 24 register
/// rules (x86-64 CFI names at most the 17 integer registers and the return address) and
/// 4 remembered states.
struct FixedStorage;

impl<T: gimli::ReaderOffset> UnwindContextStorage<T> for FixedStorage {
    type Rules = [(Register, RegisterRule<T>); 24];
    type Stack = [UnwindTableRow<T, Self>; 4];
}

type Slice<'a> = gimli::EndianSlice<'a, NativeEndian>;

/// The rule in effect at `addr`, from the `.eh_frame` of the module containing it.
#[cold]
#[inline(never)]
fn compute_rule(addr: u64) -> Rule {
    let mut found = DlFindObject {
        dlfo_flags: 0,
        dlfo_map_start: core::ptr::null_mut(),
        dlfo_map_end: core::ptr::null_mut(),
        dlfo_link_map: core::ptr::null_mut(),
        dlfo_eh_frame: core::ptr::null_mut(),
        reserved: [0; 7],
    };
    // SAFETY: `found` is a valid out-pointer of the layout glibc's <dlfcn.h> declares for
    // x86-64; the address is only compared, never dereferenced.
    if unsafe { _dl_find_object(addr as *mut c_void, &mut found) } != 0 {
        return Rule::END; // not in any module (JIT code, garbage): stop as libgcc does
    }
    let start = found.dlfo_map_start as u64;
    let end = found.dlfo_map_end as u64;
    let hdr = found.dlfo_eh_frame as u64;
    if hdr == 0 {
        return Rule::END;
    }
    if hdr < start || hdr >= end {
        return Rule::unsupported();
    }
    // SAFETY: the module is mapped from `start` to `end` (glibc keeps the whole span
    // reserved while it is loaded) and its `.eh_frame_hdr` lies inside; gimli reads only
    // what the well-formed CFI there describes, bounds-checked against this span.
    let hdr_data = unsafe { core::slice::from_raw_parts(hdr as *const u8, (end - hdr) as usize) };
    let mut bases = BaseAddresses::default()
        .set_eh_frame_hdr(hdr)
        .set_text(start);
    let Ok(parsed) = EhFrameHdr::new(hdr_data, NativeEndian).parse(&bases, 8) else {
        return Rule::unsupported();
    };
    let Pointer::Direct(eh_frame) = parsed.eh_frame_ptr() else {
        return Rule::unsupported();
    };
    if eh_frame < start || eh_frame >= end {
        return Rule::unsupported();
    }
    // SAFETY: as above, for `.eh_frame`.
    let frame_data =
        unsafe { core::slice::from_raw_parts(eh_frame as *const u8, (end - eh_frame) as usize) };
    bases = bases.set_eh_frame(eh_frame);
    let mut section: EhFrame<Slice> = EhFrame::new(frame_data, NativeEndian);
    section.set_address_size(8);
    let Some(table) = parsed.table() else {
        return Rule::unsupported(); // no search table: let libgcc scan linearly
    };
    let fde = match table.fde_for_address(&section, &bases, addr, EhFrame::cie_from_offset) {
        Ok(fde) => fde,
        Err(gimli::Error::NoUnwindInfoForAddress) => return Rule::END,
        Err(_) => return Rule::unsupported(),
    };
    if fde.cie().is_signal_trampoline() {
        return Rule::unsupported();
    }
    let mut ctx = UnwindContext::<usize, FixedStorage>::new_in();
    match fde.unwind_info_for_address(&section, &bases, &mut ctx, addr) {
        Ok(row) => rule_of_row(row),
        Err(_) => Rule::unsupported(),
    }
}

fn rule_of_row(row: &UnwindTableRow<usize, FixedStorage>) -> Rule {
    match row.register(X86_64::RA) {
        RegisterRule::Undefined => return Rule::END, // `_start`, `clone3`: the outermost frame
        RegisterRule::Offset(-8) => {}
        _ => return Rule::unsupported(),
    }
    let (cfa_on_rbp, cfa_offset) = match *row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } if register == X86_64::RSP => {
            (false, offset)
        }
        CfaRule::RegisterAndOffset { register, offset } if register == X86_64::RBP => {
            (true, offset)
        }
        _ => return Rule::unsupported(),
    };
    let rbp_saved_at = match row.register(X86_64::RBP) {
        RegisterRule::Undefined | RegisterRule::SameValue => None,
        RegisterRule::Offset(off) => Some(off),
        _ => return Rule::unsupported(),
    };
    Rule::frame(cfa_on_rbp, cfa_offset, rbp_saved_at)
}

// ---------------------------------------------------------------------------------------
// The fallback: libgcc's `_Unwind_Backtrace`

mod libgcc {
    use super::Walk;
    use core::ffi::c_void;

    #[repr(C)]
    struct Context {
        _private: [u8; 0],
    }

    type TraceFn = extern "C" fn(ctx: *mut Context, arg: *mut c_void) -> i32;

    extern "C" {
        fn _Unwind_Backtrace(trace: TraceFn, arg: *mut c_void) -> i32;
        fn _Unwind_GetIP(ctx: *mut Context) -> usize;
        fn _Unwind_GetCFA(ctx: *mut Context) -> usize;
    }

    const URC_NO_REASON: i32 = 0;
    const URC_END_OF_STACK: i32 = 5;

    struct Resume<'w, 'o> {
        walk: &'w mut Walk<'o>,
        /// The frame after which to record: the one at return address `pc` whose stack
        /// pointer is `sp`, or, when `pc` is 0, the last frame whose stack pointer is at
        /// or below `sp`.
        pc: u64,
        sp: u64,
        recording: bool,
    }

    extern "C" fn step(ctx: *mut Context, arg: *mut c_void) -> i32 {
        // SAFETY: `arg` is the `Resume` passed by `finish`, alive for the whole walk.
        let resume = unsafe { &mut *(arg as *mut Resume) };
        // SAFETY: `ctx` is the live context libgcc hands to the callback.
        let ip = unsafe { _Unwind_GetIP(ctx) } as u64;
        if ip == 0 {
            return URC_END_OF_STACK;
        }
        if !resume.recording {
            // libgcc's CFA for the frame at `ip` is that frame's stack pointer (the CFA of
            // the frame it called).
            // SAFETY: as above.
            let sp = unsafe { _Unwind_GetCFA(ctx) } as u64;
            if resume.pc == 0 {
                if sp <= resume.sp {
                    return URC_NO_REASON;
                }
            } else {
                if ip == resume.pc && sp == resume.sp {
                    resume.recording = true;
                }
                return URC_NO_REASON;
            }
            resume.recording = true;
        }
        if resume.walk.push(ip) {
            URC_NO_REASON
        } else {
            URC_END_OF_STACK
        }
    }

    /// Appends to `walk` the frames above the given one, walked by libgcc.
    #[inline(never)]
    pub(super) fn finish(walk: &mut Walk, pc: u64, sp: u64) {
        if walk.n >= walk.out.len() {
            return;
        }
        let mut resume = Resume {
            walk,
            pc,
            sp,
            recording: false,
        };
        // SAFETY: `step` only touches `resume`, which outlives the call.
        unsafe { _Unwind_Backtrace(step, &mut resume as *mut Resume as *mut c_void) };
    }
}
