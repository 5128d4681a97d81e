//! Stack capture for allocation and free events.
//!
//! Every allocation and free captures a stack, so this is the shim's hottest path. The fast
//! path walks DWARF CFI (`.eh_frame`) itself, with the unwind rule of each return address
//! cached in a fixed, lock-free table: after warm-up a frame costs a hash probe and two loads
//! from the stack. Frame pointers alone would be cheaper but wrong: Debian's libc and
//! libstdc++ and most -O2 code have none, and a frame without one hides its caller.
//!
//! Each thread also remembers its last walk (`Memo`). Consecutive allocations mostly share
//! their outer frames, so a walk that reaches a frame of the last walk in the same state
//! (return address, stack pointer, and rbp where a later rule reads it) only re-reads the
//! return addresses (and saved rbp values) the last walk read from there on; when they are
//! all unchanged, the rest of the stack is the last walk's, without a rule lookup. This is
//! exact: the walk is a function of that state and of those values. `FENCEPOST_UNWIND=check`
//! compares every memoized walk with a plain one (tests/unwinding.rs).
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
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};
use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, NativeEndian, Pointer, Register, RegisterRule,
    UnwindContext, UnwindContextStorage, UnwindSection, UnwindTableRow, X86_64,
};

/// How far above the starting stack pointer a CFA may lie.
const STACK_SPAN: u64 = 64 << 20;
/// Frames walked at most, whatever `out` says (a corrupt stack cannot loop us).
const MAX_WALK: usize = 4096;

/// Fills `out` with return addresses of the current thread's stack, innermost first, and
/// returns how many were written. `out[0]` is the return address into `capture_stack`'s
/// caller: the shim's own frames are in it (for a signal handler's stack, see
/// `stacks::at_signal`; entry points use [`capture_from`]).
#[inline(never)]
pub fn capture_stack(out: &mut [MaybeUninit<u64>]) -> &mut [u64] {
    let (pc, sp, fp) = here();
    let mut walk = Walk::new(out);
    match mode() {
        // Everything at or below this frame's stack pointer is the shim's own.
        Mode::Libgcc => libgcc::finish(&mut walk, 0, sp),
        Mode::Cfi => {
            walk_cfi(&mut walk, State::start(pc, sp, fp));
        }
        Mode::Check => {
            if walk_cfi(&mut walk, State::start(pc, sp, fp)) {
                REPLAYED.fetch_add(1, Ordering::Relaxed);
            }
            check_against_plain(&walk, State::start(pc, sp, fp));
        }
    }
    walk.into_frames()
}

/// The pc, stack pointer and rbp of the calling function (the pc is the instruction after
/// this inlined copy).
#[inline(always)]
fn here() -> (u64, u64, u64) {
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
    (pc, sp, fp)
}

/// Where the program called one of the shim's entry points, as the entry's trampoline saw
/// it at its first instruction (see `interpose`): the stack pointer, which points at the
/// return address the call pushed, and rbp, still the caller's. Every callee-saved
/// register holds the caller's value there, so the caller's frame is fully known and a walk
/// can start at it without stepping through the shim's own frames.
#[derive(Clone, Copy)]
pub struct Caller {
    pub entry_sp: u64,
    pub fp: u64,
}

/// Like [`capture_stack`], starting at `caller`: `out[0]` is the return address into the
/// program, the shim's frames above it are never walked, and those below it (see
/// [`Walk::skipping_own_frames`]) are left out.
#[inline(never)]
pub fn capture_from(out: &mut [MaybeUninit<u64>], caller: Caller) -> &mut [u64] {
    let mut walk = Walk::skipping_own_frames(out);
    // A call leaves the stack pointer 8-aligned; anything else is not a trampoline's.
    if walk.out.is_empty() || caller.entry_sp & 7 != 0 {
        return walk.into_frames();
    }
    // SAFETY: `entry_sp` is this thread's stack pointer at the entry point's first
    // instruction, 8-aligned: it points at the return address pushed by the call, above
    // every frame of the shim (which is still running on top of it).
    let ra = unsafe { (caller.entry_sp as *const u64).read() };
    if ra == 0 || !walk.push(ra) {
        return walk.into_frames();
    }
    let mode = mode();
    if mode == Mode::Libgcc {
        // libgcc walks from here, through the shim, and records from the caller's caller
        // on: the frame at `ra` whose stack pointer is just above the return address.
        libgcc::finish(&mut walk, ra, caller.entry_sp + 8);
        return walk.into_frames();
    }
    let start = State {
        pc: ra,
        at: ra - 1,
        sp: caller.entry_sp + 8,
        fp: caller.fp,
        first: false,
    };
    let replayed = walk_cfi(&mut walk, start);
    if mode == Mode::Check {
        if replayed {
            REPLAYED.fetch_add(1, Ordering::Relaxed);
        }
        check_against_plain(&walk, start);
        check_entry_start(&walk);
    }
    walk.into_frames()
}

/// `FENCEPOST_UNWIND=check`: the walk that started at the entry point's caller gives the
/// frames a walk from here through the shim's own frames gives, once those are dropped.
#[cold]
#[inline(never)]
fn check_entry_start(walk: &Walk) {
    let (pc, sp, fp) = here();
    if !crate::process::in_own_text(pc) {
        // Before the shim's constructor ran (an earlier constructor allocating): its own
        // frames cannot be told apart yet, and the walk through them keeps them.
        return;
    }
    let mut again = [MaybeUninit::uninit(); 320];
    let len = (walk.out.len() + 32).min(again.len());
    let mut plain = Walk::new(&mut again[..len]);
    walk_from(
        &mut plain,
        State::start(pc, sp, fp),
        sp.saturating_add(STACK_SPAN),
    );
    let own = |pc: &&u64| !crate::process::in_own_text(**pc);
    let through = plain.frames().iter().filter(own);
    let from_entry = walk.frames().iter().filter(own);
    // The entry's walk may have stopped earlier (its `out` is shorter): compare what it has,
    // and all of it when it reached the end of the stack.
    let same = if walk.n < walk.out.len() {
        through.eq(from_entry)
    } else {
        through.zip(from_entry).all(|(a, b)| a == b)
    };
    if !same {
        DIFFERED.fetch_add(1, Ordering::Relaxed);
        let msg = b"fencepost: unwind check: the walk from the entry's caller differs from the walk through the shim\n";
        // SAFETY: writing a static message to stderr.
        unsafe { libc::write(2, msg.as_ptr() as *const c_void, msg.len()) };
        let walks = [
            (&b"  through the shim:"[..], plain.frames()),
            (&b"  from the caller: "[..], walk.frames()),
        ];
        for (name, frames) in walks {
            let mut line = [0u8; 4096];
            let mut w = Line {
                buf: &mut line,
                len: 0,
            };
            w.text(name);
            for &f in frames {
                w.text(b" ");
                w.number(f);
            }
            w.text(b"\n");
            // SAFETY: writing our own buffer to stderr.
            unsafe { libc::write(2, w.buf.as_ptr() as *const c_void, w.len) };
        }
    }
}

/// Forgets every cached rule. To be called after a module is unloaded (`modules::dlclose`):
/// its addresses may be reused by another with different code.
pub fn forget_rules() {
    GENERATION.fetch_add(1, Ordering::Release);
    let table = RULES.load(Ordering::Acquire);
    if table.is_null() {
        return;
    }
    for i in 0..SLOTS {
        // SAFETY: `table` holds SLOTS entries and is never freed.
        unsafe { &*table.add(i) }.store(0, Ordering::Relaxed);
    }
}

/// The output of a walk: the first `n` entries of `out` are written, the rest never read
/// (callers pass uninitialised buffers: zeroing them cost more than a short walk).
struct Walk<'a> {
    out: &'a mut [MaybeUninit<u64>],
    n: usize,
    /// Return addresses in [skip_lo, skip_lo + skip_span) are walked through but not
    /// written: the shim's own code, for walks from an entry point.
    skip_lo: u64,
    skip_span: u64,
}

impl<'a> Walk<'a> {
    fn new(out: &'a mut [MaybeUninit<u64>]) -> Walk<'a> {
        Walk {
            out,
            n: 0,
            skip_lo: 0,
            skip_span: 0,
        }
    }

    /// A walk that leaves out the shim's frames: `main_trampoline` below main, and the
    /// shim's frames under a new-handler it called. Dropping them here costs a compare
    /// per frame; compacting the stack afterwards cost 7% of fast mode on binary trees.
    fn skipping_own_frames(out: &'a mut [MaybeUninit<u64>]) -> Walk<'a> {
        let (lo, hi) = crate::process::own_text();
        Walk {
            skip_lo: lo,
            skip_span: hi.wrapping_sub(lo),
            ..Walk::new(out)
        }
    }

    /// Appends a return address (unless it is one to skip); false once `out` is full.
    fn push(&mut self, pc: u64) -> bool {
        if pc.wrapping_sub(self.skip_lo) < self.skip_span {
            return self.n < self.out.len();
        }
        match self.out.get_mut(self.n) {
            Some(slot) => {
                slot.write(pc);
                self.n += 1;
                self.n < self.out.len()
            }
            None => false,
        }
    }

    /// The return addresses written so far.
    fn frames(&self) -> &[u64] {
        // SAFETY: the first `n` entries were written by `push`; MaybeUninit<u64> has u64's
        // layout.
        unsafe { core::slice::from_raw_parts(self.out.as_ptr() as *const u64, self.n) }
    }

    fn into_frames(self) -> &'a mut [u64] {
        // SAFETY: as in `frames`; the walk gives up its borrow of `out`.
        unsafe { core::slice::from_raw_parts_mut(self.out.as_mut_ptr() as *mut u64, self.n) }
    }
}

/// How stacks are walked, from `FENCEPOST_UNWIND` (read once): the CFI walker with its
/// per-thread memo (the default), libgcc for every stack (`libgcc`, to compare), or both
/// CFI walks, with and without the memo, compared at every capture (`check`: a difference
/// is written to stderr; the test suite runs programs this way).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Cfi = 1,
    Libgcc = 2,
    Check = 3,
}

fn mode() -> Mode {
    static MODE: AtomicU8 = AtomicU8::new(0); // 0: not read yet
    match MODE.load(Ordering::Relaxed) {
        1 => return Mode::Cfi,
        2 => return Mode::Libgcc,
        3 => return Mode::Check,
        _ => {}
    }
    // SAFETY: getenv reads the environment without allocating; the name is NUL-terminated.
    let value = unsafe { libc::getenv(c"FENCEPOST_UNWIND".as_ptr()) };
    let mode = if value.is_null() {
        Mode::Cfi
    } else {
        // SAFETY: a non-null getenv result is a NUL-terminated string.
        match unsafe { core::ffi::CStr::from_ptr(value) }.to_bytes() {
            b"libgcc" => Mode::Libgcc,
            b"check" => Mode::Check,
            _ => Mode::Cfi,
        }
    };
    MODE.store(mode as u8, Ordering::Relaxed);
    mode
}

/// `FENCEPOST_UNWIND=check`: walks again without the memo and says so on stderr when the
/// two walks differ.
#[cold]
fn check_against_plain(walk: &Walk, start: State) {
    let mut again = [MaybeUninit::uninit(); 320];
    let len = walk.out.len().min(again.len());
    let mut plain = Walk {
        skip_lo: walk.skip_lo,
        skip_span: walk.skip_span,
        ..Walk::new(&mut again[..len])
    };
    // A walk from the caller starts with the return address it read: the plain one too.
    for &pc in &walk.frames()[..walk.n.min(len).min(usize::from(!start.first))] {
        plain.push(pc);
    }
    walk_from(&mut plain, start, start.sp.saturating_add(STACK_SPAN));
    CHECKED.fetch_add(1, Ordering::Relaxed);
    if plain.frames() != walk.frames() {
        DIFFERED.fetch_add(1, Ordering::Relaxed);
        let msg = b"fencepost: unwind check: the memoized walk differs from the plain walk\n";
        // SAFETY: writing a static message to stderr.
        unsafe { libc::write(2, msg.as_ptr() as *const c_void, msg.len()) };
    }
}

/// `FENCEPOST_UNWIND=check`: walks compared, walks that differed, walks that used the memo.
static CHECKED: AtomicU64 = AtomicU64::new(0);
static DIFFERED: AtomicU64 = AtomicU64::new(0);
static REPLAYED: AtomicU64 = AtomicU64::new(0);
/// Walks the CFI walker handed to libgcc at a rule it cannot express (any mode; reported
/// by `FENCEPOST_UNWIND=check`).
static HANDED: AtomicU64 = AtomicU64::new(0);

/// `FENCEPOST_UNWIND=check`: at the end of the process, one line on stderr with the counts
/// (the tests read it to know the check ran and the memo was used).
pub fn check_summary() {
    if mode() != Mode::Check {
        return;
    }
    let mut line = [0u8; 160];
    let mut w = Line {
        buf: &mut line,
        len: 0,
    };
    w.text(b"fencepost: unwind check: ");
    w.number(CHECKED.load(Ordering::Relaxed));
    w.text(b" walks compared, ");
    w.number(DIFFERED.load(Ordering::Relaxed));
    w.text(b" differed, ");
    w.number(REPLAYED.load(Ordering::Relaxed));
    w.text(b" finished from the memo, ");
    w.number(HANDED.load(Ordering::Relaxed));
    w.text(b" handed to libgcc (pid ");
    w.number(crate::process::pid() as u64);
    w.text(b")\n");
    // SAFETY: writing our own buffer to stderr.
    unsafe { libc::write(2, w.buf.as_ptr() as *const c_void, w.len) };
}

/// A line of text built without allocating, to reach stderr in one write (the processes of
/// a run share it).
struct Line<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Line<'_> {
    fn text(&mut self, t: &[u8]) {
        for &b in t {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
    }

    fn number(&mut self, v: u64) {
        let mut digits = [0u8; 20];
        self.text(crate::sys::fmt_u64(v, &mut digits));
    }
}

/// The CFI walk from `start`: `capture_stack`'s own frame at its exact pc, or an entry
/// point's caller at its return address; every frame after the first is looked up at its
/// return address minus one (the call instruction).
///
/// Consecutive walks on one thread mostly differ in their innermost frames only: the same
/// outer functions call malloc again and again. So each thread keeps the steps of its last
/// walk ([`Memo`]), and when the walk reaches a frame the last one went through, with the
/// same stack pointer and registers, and every return address (and saved rbp) the last walk
/// read from there on is still in its place, the rest of the stack is taken from the memo
/// instead of being walked again.
///
/// Returns whether the walk was finished from the memo.
fn walk_cfi(walk: &mut Walk, start: State) -> bool {
    let memo = MEMO.with(|m| m.get());
    // SAFETY: this thread's memo. `busy` keeps a walk nested in this one (a signal handler
    // interrupting it) out of it, so there is one live reference at a time.
    let memo = unsafe { &mut *memo };
    if memo.busy {
        walk_from(walk, start, start.sp.saturating_add(STACK_SPAN));
        return false;
    }
    memo.busy = true;
    let replayed = walk_memo(walk, memo, start);
    memo.busy = false;
    replayed
}

/// Where a walk stands: the frame whose stack pointer is `sp`, executing `at` (its return
/// address minus one, or the exact pc for frame 0), with rbp holding `fp`.
#[derive(Clone, Copy)]
struct State {
    pc: u64,
    at: u64,
    sp: u64,
    fp: u64,
    first: bool,
}

impl State {
    fn start(pc: u64, sp: u64, fp: u64) -> State {
        State {
            pc,
            at: pc,
            sp,
            fp,
            first: true,
        }
    }
}

/// What one step from a frame to its caller did.
enum Step {
    /// Moved to the caller: the return address read at `cfa - 8` (the caller's stack
    /// pointer is the CFA), and where the caller's rbp was read (0: rbp unchanged).
    Frame {
        ra: u64,
        slot: u64,
        cfa_on_rbp: bool,
    },
    /// The outermost frame (or no unwind information): the walk is over.
    End,
    /// The walk cannot go on here by itself (libgcc took over) or must stop (a CFA out of
    /// bounds, a zero return address).
    Other,
}

/// One step from `st` to its caller, updating `st`.
#[inline(always)]
fn step(walk: &mut Walk, st: &mut State, limit: u64) -> Step {
    let rule = rule_for(st.at);
    match rule.kind() {
        Rule::FRAME => {}
        Rule::UNSUPPORTED => {
            // libgcc takes over after the frame whose stack pointer is `sp`: the frame at
            // `pc` (for frame 0, every frame of the shim at or below `sp`).
            let resume_pc = if st.first { 0 } else { st.pc };
            HANDED.fetch_add(1, Ordering::Relaxed);
            libgcc::finish(walk, resume_pc, st.sp);
            return Step::Other;
        }
        _ => return Step::End,
    }
    let base = if rule.cfa_on_rbp() { st.fp } else { st.sp };
    let cfa = base.wrapping_add(rule.cfa_offset());
    if cfa <= st.sp || cfa > limit || cfa & 7 != 0 || st.sp & 7 != 0 {
        return Step::Other;
    }
    // SAFETY: sp < cfa <= limit and both are 8-aligned, so cfa-8 lies in the part of this
    // thread's stack between the current frame's stack pointer and its CFA.
    let ra = unsafe { ((cfa - 8) as *const u64).read() };
    let mut slot = 0;
    if let Some(at) = rule.rbp_slot(cfa) {
        if at < st.sp || at & 7 != 0 {
            return Step::Other;
        }
        // SAFETY: sp <= slot < cfa, 8-aligned: inside the frame, as above.
        st.fp = unsafe { (at as *const u64).read() };
        slot = at;
    }
    if ra == 0 {
        return Step::Other;
    }
    st.pc = ra;
    st.at = ra - 1;
    st.sp = cfa;
    st.first = false;
    Step::Frame {
        ra,
        slot,
        cfa_on_rbp: rule.cfa_on_rbp(),
    }
}

/// Walks from `st` to the end, without the memo.
fn walk_from(walk: &mut Walk, mut st: State, limit: u64) {
    for _ in 0..MAX_WALK {
        match step(walk, &mut st, limit) {
            Step::Frame { ra, .. } => {
                if !walk.push(ra) {
                    return;
                }
            }
            Step::End | Step::Other => return,
        }
    }
}

/// The walk with this thread's memo: walks fresh until it meets the last walk, then replays
/// the last walk from there, and leaves the memo describing this walk.
fn walk_memo(walk: &mut Walk, memo: &mut Memo, start: State) -> bool {
    let limit = start.sp.saturating_add(STACK_SPAN);
    let generation = GENERATION.load(Ordering::Acquire);
    let usable = memo.ended != Ended::NONE && memo.generation == generation && memo.sp[0] <= limit;
    let mut prefix = Prefix::new();
    let mut st = start;
    // The memo state the walk may meet next: states are numbered from the outermost (0), so
    // their stack pointers fall as the index rises, and the walk's rise.
    let mut cursor = memo.len;
    for _ in 0..MAX_WALK {
        if usable && prefix.len < MEMO_STEPS {
            while cursor > 0 && memo.sp[cursor] < st.sp {
                cursor -= 1;
            }
            if cursor > 0 && memo.matches(cursor, &st) && memo.still_valid(cursor) {
                replay(walk, memo, &prefix, cursor, limit);
                return true;
            }
        }
        let before = st;
        match step(walk, &mut st, limit) {
            Step::Frame {
                ra,
                slot,
                cfa_on_rbp,
            } => {
                prefix.push(&before, ra, slot, cfa_on_rbp);
                if !walk.push(ra) {
                    memo.record(&prefix, &st, Ended::FULL, generation);
                    return false;
                }
            }
            Step::End => {
                memo.record(&prefix, &st, Ended::END, generation);
                return false;
            }
            Step::Other => {
                memo.ended = Ended::NONE;
                return false;
            }
        }
    }
    memo.ended = Ended::NONE;
    false
}

/// The walk met the memo's state `at` after the steps in `prefix`: hands the memo's return
/// addresses from there to the walk, and makes the memo describe this walk (its own states
/// up to `at`, then the prefix). If the last walk stopped only because it had enough frames
/// and this one wants more, it walks on from the memo's last state and forgets the memo
/// (remembering that would move every entry).
fn replay(walk: &mut Walk, memo: &mut Memo, prefix: &Prefix, at: usize, limit: u64) {
    let mut wants_more = true;
    for s in (0..at).rev() {
        if !walk.push(memo.ra[s]) {
            wants_more = false;
            break;
        }
    }
    if wants_more && memo.ended == Ended::FULL {
        let last = memo.outermost_state();
        memo.ended = Ended::NONE;
        walk_from(walk, last, limit);
        return;
    }
    if at + prefix.len > MEMO_STEPS {
        memo.ended = Ended::NONE;
        return;
    }
    memo.append(prefix, at);
}

/// How a remembered walk ended.
struct Ended;

impl Ended {
    /// Nothing remembered (or a walk the memo cannot describe: libgcc, a bad frame).
    const NONE: u8 = 0;
    /// The outermost frame.
    const END: u8 = 1;
    /// The walk had all the frames it wanted; the stack may go on.
    const FULL: u8 = 2;
}

/// Steps a memo remembers: twice the default `--num-callers` (24), so that walks from an
/// entry point's caller (which step through none of the shim's frames) are remembered up
/// to 47 frames kept; a longer walk is not remembered.
const MEMO_STEPS: usize = 48;

/// The last walk of a thread, numbered from its outermost end, so that the next walk, which
/// shares the outer part, only writes its own inner steps. State 0 is where the walk
/// stopped, state `len` where it started. Step `s` went from state `s + 1` to state `s`:
/// it read the return address `ra[s]` at `sp[s] - 8` and, when `slot[s]` is not 0, the
/// caller's rbp (`fp[s]`) at `slot[s]`.
struct Memo {
    busy: bool,
    ended: u8,
    generation: u32,
    /// Steps recorded; the state arrays hold `len + 1` entries.
    len: usize,
    sp: [u64; MEMO_STEPS + 1],
    fp: [u64; MEMO_STEPS + 1],
    at: [u64; MEMO_STEPS + 1],
    ra: [u64; MEMO_STEPS],
    slot: [u64; MEMO_STEPS],
    /// Bit s: step s computed its CFA from rbp.
    rbp_cfa: u64,
    /// Bit t: the walk from state t on depends on the value of rbp in state t (a later step
    /// computes a CFA from rbp before any step reloads it).
    needs_fp: u64,
}

thread_local! {
    static MEMO: core::cell::UnsafeCell<Memo> = const {
        core::cell::UnsafeCell::new(Memo {
            busy: false,
            ended: Ended::NONE,
            generation: 0,
            len: 0,
            sp: [0; MEMO_STEPS + 1],
            fp: [0; MEMO_STEPS + 1],
            at: [0; MEMO_STEPS + 1],
            ra: [0; MEMO_STEPS],
            slot: [0; MEMO_STEPS],
            rbp_cfa: 0,
            needs_fp: 0,
        })
    };
}

/// Bumped when cached rules are forgotten (a module was unloaded): memos made before it
/// describe code that may be gone.
static GENERATION: AtomicU32 = AtomicU32::new(0);

impl Memo {
    /// Whether a walk standing at `st` is where this memo's walk stood in state `t`.
    #[inline]
    fn matches(&self, t: usize, st: &State) -> bool {
        self.sp[t] == st.sp
            && self.at[t] == st.at
            && (self.needs_fp & (1 << t) == 0 || self.fp[t] == st.fp)
    }

    /// Whether every value the walk read from state `t` on is still where it was read.
    #[inline]
    fn still_valid(&self, t: usize) -> bool {
        for s in 0..t {
            // SAFETY: these are exactly the addresses a plain walk from state `t` would read,
            // in the same order, up to the first value that differs: state `t` matched (the
            // same rule at `at`, the same sp, and fp where a rule uses it), so step `t - 1`
            // computes the same CFA and rbp slot; if the values read there are the same, so
            // is the next state, and so on. The memo adds no read the walk would not make,
            // and each was bounds-checked when it was made (and the outermost CFA against
            // this walk's limit, in `walk_memo`).
            unsafe {
                if ((self.sp[s] - 8) as *const u64).read() != self.ra[s] {
                    return false;
                }
                if self.slot[s] != 0 && (self.slot[s] as *const u64).read() != self.fp[s] {
                    return false;
                }
            }
        }
        true
    }

    /// Where the remembered walk stopped, as a walk would stand there.
    fn outermost_state(&self) -> State {
        State {
            pc: self.ra[0],
            at: self.at[0],
            sp: self.sp[0],
            fp: self.fp[0],
            first: false,
        }
    }

    fn set_state(&mut self, t: usize, sp: u64, fp: u64, at: u64) {
        self.sp[t] = sp;
        self.fp[t] = fp;
        self.at[t] = at;
    }

    /// Remembers a walk made of `prefix` alone, which stopped at `last` as `ended` says.
    fn record(&mut self, prefix: &Prefix, last: &State, ended: u8, generation: u32) {
        if prefix.len == 0 || prefix.len > MEMO_STEPS {
            self.ended = Ended::NONE;
            return;
        }
        self.set_state(0, last.sp, last.fp, last.at);
        self.generation = generation;
        self.ended = ended;
        self.needs_fp = (ended == Ended::FULL) as u64;
        self.append(prefix, 0);
    }

    /// Keeps states 0..=`at` and puts the steps of `prefix` (innermost first) above them.
    fn append(&mut self, prefix: &Prefix, at: usize) {
        let p = prefix.len;
        let len = at + p;
        let mut needs = self.needs_fp & (1 << at) != 0;
        let mut rbp_cfa = self.rbp_cfa & ((1u64 << at) - 1);
        let mut needs_fp = self.needs_fp & ((1u64 << (at + 1)) - 1);
        // Prefix step q becomes step at + p - 1 - q: walked outward from the join.
        for q in (0..p).rev() {
            let s = at + p - 1 - q;
            let (sp, fp, st_at, ra, slot, on_rbp) = prefix.get(q);
            self.ra[s] = ra;
            self.slot[s] = slot;
            self.set_state(s + 1, sp, fp, st_at);
            if on_rbp {
                needs = true;
                rbp_cfa |= 1 << s;
            } else if slot != 0 {
                needs = false;
            }
            needs_fp |= (needs as u64) << (s + 1);
        }
        self.len = len;
        self.rbp_cfa = rbp_cfa;
        self.needs_fp = needs_fp;
    }
}

/// The steps of the current walk before it met the memo, on the walker's stack. Only the
/// first `len` entries are written and read: zeroing 2 KiB at every walk would cost more
/// than most of the walks it serves.
struct Prefix {
    len: usize,
    sp: [MaybeUninit<u64>; MEMO_STEPS],
    fp: [MaybeUninit<u64>; MEMO_STEPS],
    at: [MaybeUninit<u64>; MEMO_STEPS],
    ra: [MaybeUninit<u64>; MEMO_STEPS],
    slot: [MaybeUninit<u64>; MEMO_STEPS],
    rbp_cfa: u64,
}

impl Prefix {
    /// Built field by field: from a struct literal of uninitialised arrays, rustc and LLVM
    /// zero all 1.9 KiB anyway (a `memset` call at every walk, 6% of fast mode's time on
    /// binary trees).
    #[inline(always)]
    fn new() -> Prefix {
        let mut prefix = MaybeUninit::<Prefix>::uninit();
        let raw = prefix.as_mut_ptr();
        // SAFETY: the two plain fields are written; every other field is an array of
        // `MaybeUninit`, for which any contents (none) are valid.
        unsafe {
            core::ptr::addr_of_mut!((*raw).len).write(0);
            core::ptr::addr_of_mut!((*raw).rbp_cfa).write(0);
            prefix.assume_init()
        }
    }

    /// Appends a step; past `MEMO_STEPS` the prefix only counts (and is not remembered).
    #[inline(always)]
    fn push(&mut self, before: &State, ra: u64, slot: u64, cfa_on_rbp: bool) {
        let i = self.len;
        if i >= MEMO_STEPS {
            self.len = MEMO_STEPS + 1;
            return;
        }
        self.sp[i].write(before.sp);
        self.fp[i].write(before.fp);
        self.at[i].write(before.at);
        self.ra[i].write(ra);
        self.slot[i].write(slot);
        self.rbp_cfa |= (cfa_on_rbp as u64) << i;
        self.len = i + 1;
    }

    /// Step `q` (innermost first, `q < len <= MEMO_STEPS`): the state before it (sp, fp,
    /// at), the return address and rbp slot it read, and whether its CFA was rbp-based.
    #[inline(always)]
    fn get(&self, q: usize) -> (u64, u64, u64, u64, u64, bool) {
        assert!(q < self.len.min(MEMO_STEPS));
        // SAFETY: `push` wrote entries 0..len.
        unsafe {
            (
                self.sp[q].assume_init(),
                self.fp[q].assume_init(),
                self.at[q].assume_init(),
                self.ra[q].assume_init(),
                self.slot[q].assume_init(),
                self.rbp_cfa & (1 << q) != 0,
            )
        }
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

/// The rule cache, or null (no memory: every frame takes the slow path).
fn rules_table() -> *const AtomicU64 {
    arena::shared_table(&RULES, SLOTS)
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
    // Where the mapped memory holding `at` ends: the module's span, or for the main
    // program, whose span glibc gives as its text segment alone, the end of the segment
    // holding `at` (a non-PIE executable linked with `-z separate-code` has `.eh_frame_hdr`
    // and `.eh_frame` in a read-only segment after its text; node is one).
    let mapped_to = |at: u64| {
        if start <= at && at < end {
            Some(end)
        } else {
            main_program_segment_end(at)
        }
    };
    let Some(hdr_end) = mapped_to(hdr) else {
        return Rule::unsupported();
    };
    // SAFETY: the module is mapped from `start` to `end` (glibc keeps the whole span
    // reserved while it is loaded), or the main program's segment is (for the life of the
    // process), up to `hdr_end`; gimli reads only what the well-formed CFI there
    // describes, bounds-checked against this span.
    let hdr_data =
        unsafe { core::slice::from_raw_parts(hdr as *const u8, (hdr_end - hdr) as usize) };
    let mut bases = BaseAddresses::default()
        .set_eh_frame_hdr(hdr)
        .set_text(start);
    let Ok(parsed) = EhFrameHdr::new(hdr_data, NativeEndian).parse(&bases, 8) else {
        return Rule::unsupported();
    };
    let Pointer::Direct(eh_frame) = parsed.eh_frame_ptr() else {
        return Rule::unsupported();
    };
    let Some(frame_end) = mapped_to(eh_frame) else {
        return Rule::unsupported();
    };
    // SAFETY: as above, for `.eh_frame`.
    let frame_data = unsafe {
        core::slice::from_raw_parts(eh_frame as *const u8, (frame_end - eh_frame) as usize)
    };
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

/// The end of the main program's loaded segment that holds `at`, from its program headers
/// (`AT_PHDR`); `None` when no segment of it does.
fn main_program_segment_end(at: u64) -> Option<u64> {
    // SAFETY: getauxval reads the auxiliary vector the kernel gave the process.
    let (phdr, phnum) = unsafe {
        (
            libc::getauxval(libc::AT_PHDR),
            libc::getauxval(libc::AT_PHNUM),
        )
    };
    if phdr == 0 || phnum == 0 || phnum > 1024 {
        return None;
    }
    // SAFETY: the kernel maps the program headers AT_PHDR names, as part of the program's
    // first segment, for the life of the process.
    let headers =
        unsafe { core::slice::from_raw_parts(phdr as *const libc::Elf64_Phdr, phnum as usize) };
    // The load bias, from where the headers are against where they say they are.
    let bias = headers
        .iter()
        .find(|h| h.p_type == libc::PT_PHDR)
        .map(|h| phdr.wrapping_sub(h.p_vaddr))?;
    headers
        .iter()
        .filter(|h| h.p_type == libc::PT_LOAD)
        .map(|h| {
            let lo = bias.wrapping_add(h.p_vaddr);
            (lo, lo.wrapping_add(h.p_filesz))
        })
        .find(|&(lo, hi)| lo <= at && at < hi)
        .map(|(_, hi)| hi)
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
