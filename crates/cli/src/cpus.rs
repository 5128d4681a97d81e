//! Running a traced program's threads on one CPU while its guarded frees would make them
//! interrupt each other (`--one-cpu`).
//!
//! In guard mode a free guards the block's pages at once, so that the next access to them,
//! from any thread, faults as a use after free. When a process loses a page, every other
//! CPU that is running one of its threads must drop the page from its TLB: the kernel
//! interrupts each of them and waits for the answer (a TLB shootdown), at every free. On a
//! virtual machine an interrupt between CPUs is an exit to the hypervisor: with the
//! benchmark's two threads churning blocks, two thirds of a guard-mode run went to
//! sending them (perf: `native_write_msr`, `smp_call_function_many_cond`). With the
//! program's threads on one CPU no other CPU runs them and no shootdown is sent: the same
//! run took 11.2 s under `taskset` instead of 34.8 s, and 12.0 s with `auto` below (which
//! moves the threads after its first look at their rate).
//!
//! memcheck always runs one thread at a time. fencepost does it only while it pays: in
//! guard mode, `auto` (the default) watches how fast each process frees, and moves all
//! its threads to one CPU when it frees more than [`PIN_RATE`] blocks a second with two
//! threads or more. Whether that paid is then measured, not assumed: if over [`TRIAL`] on
//! one CPU the process freed no faster than [`GAIN`] times its rate before, the threads
//! get their CPUs back and are not moved again for [`BACKOFF`] (where interrupts are cheap,
//! as on most physical machines, parallel threads are worth more). Otherwise they stay
//! until the rate has been under [`UNPIN_RATE`] for [`QUIET`], and each gets its own CPU
//! mask back. A thread whose mask the program changed meanwhile is left as the program
//! set it. `yes` starts the program on one CPU; `no` never moves it. Fast mode guards
//! nothing, so `auto` does nothing there.

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// `--one-cpu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OneCpu {
    Auto,
    Yes,
    No,
}

/// Frees a second (of one process, with two threads or more) from which its threads are
/// moved to one CPU. At the cost measured here (about 9 us of interrupts a free), that is
/// nearly half a CPU's time spent on shootdowns, about what the move can cost a program
/// with two busy threads.
pub const PIN_RATE: f64 = 50_000.0;
/// Frees a second under which the threads get their CPUs back, after [`QUIET`].
pub const UNPIN_RATE: f64 = 10_000.0;
pub const QUIET: Duration = Duration::from_secs(1);
/// How long the threads are on one CPU before the move is judged.
pub const TRIAL: Duration = Duration::from_millis(400);
/// How much faster than before the move a process must free on one CPU to stay there.
pub const GAIN: f64 = 1.2;
/// After a move that did not pay, how long before another is tried.
pub const BACKOFF: Duration = Duration::from_secs(10);
/// How often the rates are looked at.
const TICK: Duration = Duration::from_millis(100);

/// A process's threads as the system shows them: what [`Pinning`] looks at and moves.
/// ([`Os`]; the tests put a model in its place.)
pub trait Threads {
    fn count(&mut self, pid: u32) -> usize;
    /// Moves every thread of `pid` to one CPU: the move, and the CPU.
    fn pin(&mut self, pid: u32, now: Instant) -> Option<(Pin, usize)>;
    /// Moves the threads of `pid` started since.
    fn sweep(&mut self, pid: u32, p: &mut Pin);
    /// Gives the threads of `pid` their CPUs back.
    fn unpin(&mut self, pid: u32, p: &Pin);
    fn name(&mut self, pid: u32) -> String;
}

/// The threads of real processes: `/proc` and `sched_setaffinity`.
pub struct Os;

impl Threads for Os {
    fn count(&mut self, pid: u32) -> usize {
        tasks(pid).len()
    }
    fn pin(&mut self, pid: u32, now: Instant) -> Option<(Pin, usize)> {
        pin(pid, now)
    }
    fn sweep(&mut self, pid: u32, p: &mut Pin) {
        sweep(pid, p)
    }
    fn unpin(&mut self, pid: u32, p: &Pin) {
        unpin(pid, p)
    }
    fn name(&mut self, pid: u32) -> String {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default()
    }
}

/// Watches the running processes' frees and moves their threads (`auto`).
pub struct Pinning<T: Threads = Os> {
    threads: T,
    watch: bool,
    last_tick: Instant,
    procs: HashMap<u32, Watched>,
    /// One line per process that ran on one CPU, for the end of the run.
    notes: Vec<String>,
}

#[derive(Default)]
struct Watched {
    frees: u64,
    /// The process's mask allows one CPU only, or cannot be read: nothing to do.
    settled: bool,
    pinned: Option<Pin>,
    /// Time on one CPU in the stretches that ended.
    earlier: Duration,
    /// The CPU and command name of the last stretch, for the note.
    cpu: usize,
    exe: String,
    /// Frees a second before and during the last move that paid, for the note.
    rates: Option<(f64, f64)>,
    /// Moves that did not pay, and when the next may be tried.
    undone: u32,
    backoff_until: Option<Instant>,
}

impl Watched {
    fn total(&self, now: Instant) -> Duration {
        self.earlier
            + self
                .pinned
                .as_ref()
                .map_or(Duration::ZERO, |p| now - p.since)
    }
}

pub struct Pin {
    set: CpuSet,
    /// The process's mask when it was moved: for threads born since.
    original: CpuSet,
    /// Threads moved, with the mask each had.
    saved: HashMap<i32, CpuSet>,
    /// Every thread looked at (moved or not): each is looked at once.
    seen: HashSet<i32>,
    since: Instant,
    quiet_since: Option<Instant>,
    /// The rate that triggered the move, and the frees counted then.
    rate_before: f64,
    frees_at_pin: u64,
    /// Whether the trial is over (the move paid).
    judged: bool,
    /// The process's start time, checked before its threads are touched again.
    started: Option<u64>,
}

impl Pinning<Os> {
    /// `auto` in guard mode watches; anything else does nothing here (`yes` is applied
    /// when the program starts, see [`one_cpu_for_start`]).
    pub fn new(mode: OneCpu, guard_mode: bool) -> Self {
        let watch = mode == OneCpu::Auto && guard_mode && online_cpus() > 1;
        Pinning::with(Os, watch, Instant::now())
    }
}

impl Pin {
    fn new(set: CpuSet, original: CpuSet, now: Instant) -> Self {
        Pin {
            set,
            original,
            saved: HashMap::new(),
            seen: HashSet::new(),
            since: now,
            quiet_since: None,
            rate_before: 0.0,
            frees_at_pin: 0,
            judged: false,
            started: None,
        }
    }
}

impl<T: Threads> Pinning<T> {
    fn with(threads: T, watch: bool, now: Instant) -> Self {
        Pinning {
            threads,
            watch,
            last_tick: now,
            procs: HashMap::new(),
            notes: Vec::new(),
        }
    }

    /// Looks at the processes' rates when a tick is due. `running`: every running
    /// process and the frees it has recorded so far.
    pub fn tick(&mut self, running: impl Iterator<Item = (u32, u64)>) {
        if self.watch {
            self.tick_at(Instant::now(), running);
        }
    }

    fn tick_at(&mut self, now: Instant, running: impl Iterator<Item = (u32, u64)>) {
        let dt = now.duration_since(self.last_tick);
        if dt < TICK {
            return;
        }
        self.last_tick = now;
        let mut alive = HashSet::new();
        for (pid, frees) in running {
            alive.insert(pid);
            let w = self.procs.entry(pid).or_insert_with(|| Watched {
                frees,
                ..Watched::default()
            });
            // A smaller count is a new image (exec): start counting again.
            let delta = frees.saturating_sub(w.frees);
            w.frees = frees;
            if !w.settled {
                let rate = delta as f64 / dt.as_secs_f64();
                w.step(pid, rate, frees, now, &mut self.threads);
            }
        }
        let gone: Vec<u32> = self
            .procs
            .keys()
            .filter(|pid| !alive.contains(pid))
            .copied()
            .collect();
        for pid in gone {
            if let Some(w) = self.procs.remove(&pid) {
                // Usually the process is gone with its threads. It may also have exec'd a
                // program that is not traced: that one gets its CPUs back now.
                if let Some(p) = &w.pinned {
                    self.threads.unpin(pid, p);
                }
                self.note(pid, &w, now);
            }
        }
    }

    fn note(&mut self, pid: u32, w: &Watched, now: Instant) {
        let name = if w.exe.is_empty() {
            String::new()
        } else {
            format!(" ({})", w.exe)
        };
        let total = w.total(now);
        if total.is_zero() {
            if w.undone > 0 {
                self.notes.push(format!(
                    "pid {pid}{name} freed guarded blocks fast with several threads, but no \
                     faster with them on one CPU: they kept all their CPUs"
                ));
            }
            return;
        }
        let rates = match w.rates {
            Some((before, on_one)) => format!(
                " (it freed {} blocks a second on all its CPUs, {} on one)",
                thousands(before),
                thousands(on_one)
            ),
            None => String::new(),
        };
        self.notes.push(format!(
            "pid {pid}{name} ran on CPU {} alone for {:.1} s{rates}: taking the pages of \
             the blocks it freed from every CPU its threads ran on cost more than the threads \
             gained (--one-cpu=no keeps them on every CPU)",
            w.cpu,
            total.as_secs_f64()
        ));
    }

    /// The notes for the end of the run; processes still on one CPU count until now.
    pub fn into_notes(self) -> Vec<String> {
        self.into_notes_at(Instant::now())
    }

    fn into_notes_at(mut self, now: Instant) -> Vec<String> {
        let mut left: Vec<(u32, Watched)> = self.procs.drain().collect();
        left.sort_by_key(|(pid, _)| *pid);
        for (pid, w) in left {
            self.note(pid, &w, now);
        }
        self.notes
    }
}

impl Watched {
    /// One tick of one process freeing at `rate` blocks a second, `frees` so far.
    fn step(&mut self, pid: u32, rate: f64, frees: u64, now: Instant, os: &mut impl Threads) {
        match &mut self.pinned {
            None => {
                if self.backoff_until.is_some_and(|t| now < t) {
                    return;
                }
                if rate >= PIN_RATE && os.count(pid) >= 2 {
                    match os.pin(pid, now) {
                        Some((mut p, cpu)) => {
                            p.rate_before = rate;
                            p.frees_at_pin = frees;
                            self.pinned = Some(p);
                            self.cpu = cpu;
                            self.exe = os.name(pid);
                        }
                        None => self.settled = true,
                    }
                }
            }
            Some(p) => {
                os.sweep(pid, p);
                let on_one_cpu = now - p.since;
                if !p.judged && on_one_cpu >= TRIAL {
                    let rate_on_one =
                        frees.saturating_sub(p.frees_at_pin) as f64 / on_one_cpu.as_secs_f64();
                    if rate_on_one < p.rate_before * GAIN {
                        // No faster: interrupts are cheap here, or the threads had other
                        // work. They get their CPUs back, and this stretch does not count.
                        os.unpin(pid, p);
                        self.pinned = None;
                        self.undone += 1;
                        self.backoff_until = Some(now + BACKOFF);
                        return;
                    }
                    p.judged = true;
                    self.rates = Some((p.rate_before, rate_on_one));
                }
                if rate >= UNPIN_RATE {
                    p.quiet_since = None;
                } else if now.duration_since(*p.quiet_since.get_or_insert(now)) >= QUIET {
                    os.unpin(pid, p);
                    self.earlier += on_one_cpu;
                    self.pinned = None;
                }
            }
        }
    }
}

/// 1234567.0 as "1,234,567" (rounded to a thousand above 10,000).
fn thousands(rate: f64) -> String {
    let mut n = rate.round() as u64;
    if n >= 10_000 {
        n = (n + 500) / 1000 * 1000;
    }
    fencepost_analyzer::text::thousands(n)
}

/// The CPU a program started with `--one-cpu=yes` runs on: the last one fencepost may use
/// (the first ones tend to take the machine's interrupts). None when there is one only.
pub fn one_cpu_for_start() -> Option<CpuSet> {
    let mask = sched_getaffinity(Pid::from_raw(0)).ok()?;
    let cpus = cpus_of(&mask);
    if cpus.len() < 2 {
        return None;
    }
    let mut set = CpuSet::new();
    set.set(*cpus.last()?).ok()?;
    Some(set)
}

fn online_cpus() -> usize {
    sched_getaffinity(Pid::from_raw(0))
        .map(|m| cpus_of(&m).len())
        .unwrap_or(1)
}

fn cpus_of(mask: &CpuSet) -> Vec<usize> {
    (0..CpuSet::count())
        .filter(|&c| mask.is_set(c).unwrap_or(false))
        .collect()
}

fn tasks(pid: u32) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The CPU a thread last ran on (`/proc/PID/stat`, field 39).
fn last_cpu(pid: u32) -> Option<usize> {
    stat_field(pid, 39)?.parse().ok()
}

/// When the process started (`/proc/PID/stat`, field 22, in clock ticks since boot): with
/// the pid, it names one process, where a pid alone may be reused once it is gone.
fn start_time(pid: u32) -> Option<u64> {
    stat_field(pid, 22)?.parse().ok()
}

/// Field `n` (counted from 1, as proc(5) does) of `/proc/PID/stat`.
fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields from the third (state) on follow the command's closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace()
        .nth(n.checked_sub(3)?)
        .map(str::to_owned)
}

/// Moves every thread of `pid` to one CPU of its mask (the one its main thread last ran
/// on), which it returns. None when there is nothing to do: a mask of one CPU, or a
/// process gone.
fn pin(pid: u32, now: Instant) -> Option<(Pin, usize)> {
    let original = sched_getaffinity(Pid::from_raw(pid as i32)).ok()?;
    let cpus = cpus_of(&original);
    if cpus.len() < 2 {
        return None;
    }
    let cpu = last_cpu(pid)
        .filter(|c| cpus.contains(c))
        .unwrap_or(cpus[0]);
    let mut set = CpuSet::new();
    set.set(cpu).ok()?;
    let mut p = Pin::new(set, original, now);
    p.started = start_time(pid);
    sweep(pid, &mut p);
    Some((p, cpu))
}

/// Moves the threads of `pid` not looked at yet. A thread started by a moved thread is on
/// the CPU already. Threads started while the list is read are found by the next pass.
fn sweep(pid: u32, p: &mut Pin) {
    if p.started.is_none() || start_time(pid) != p.started {
        return; // gone, as in `unpin`
    }
    for _ in 0..4 {
        let mut found = false;
        for tid in tasks(pid) {
            if !p.seen.insert(tid) {
                continue;
            }
            found = true;
            let Ok(mask) = sched_getaffinity(Pid::from_raw(tid)) else {
                continue;
            };
            if mask != p.set && sched_setaffinity(Pid::from_raw(tid), &p.set).is_ok() {
                p.saved.insert(tid, mask);
            }
        }
        if !found {
            break;
        }
    }
}

/// Gives the threads of `pid` that are still on the pinned CPU their masks back.
fn unpin(pid: u32, p: &Pin) {
    if p.started.is_none() || start_time(pid) != p.started {
        // Gone (a process killed without a word keeps looking alive to the analyzer),
        // and its pid may be another process's now: nothing of ours to give back.
        return;
    }
    for tid in tasks(pid) {
        let Ok(mask) = sched_getaffinity(Pid::from_raw(tid)) else {
            continue;
        };
        if mask == p.set {
            let back = p.saved.get(&tid).unwrap_or(&p.original);
            let _ = sched_setaffinity(Pid::from_raw(tid), back);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Processes with a number of threads each; the moves asked for are logged.
    #[derive(Default)]
    struct Model {
        threads: HashMap<u32, usize>,
        log: Vec<String>,
    }

    impl Threads for Model {
        fn count(&mut self, pid: u32) -> usize {
            self.threads.get(&pid).copied().unwrap_or(0)
        }
        fn pin(&mut self, pid: u32, now: Instant) -> Option<(Pin, usize)> {
            self.log.push(format!("pin {pid}"));
            Some((Pin::new(CpuSet::new(), CpuSet::new(), now), 3))
        }
        fn sweep(&mut self, _pid: u32, _p: &mut Pin) {}
        fn unpin(&mut self, pid: u32, _p: &Pin) {
            self.log.push(format!("unpin {pid}"));
        }
        fn name(&mut self, _pid: u32) -> String {
            "churn".into()
        }
    }

    /// Drives a `Pinning` tick by tick (100 ms apart), one process (pid 7) freeing at the
    /// given rates (frees a second, one per tick). The first tick that sees a process
    /// only counts its frees so far.
    struct Run {
        pinning: Pinning<Model>,
        now: Instant,
        frees: u64,
    }

    impl Run {
        fn new(threads: usize) -> Self {
            let mut model = Model::default();
            model.threads.insert(7, threads);
            let now = Instant::now();
            Run {
                pinning: Pinning::with(model, true, now),
                now,
                frees: 0,
            }
        }

        fn ticks(&mut self, rates: &[u64]) {
            for &rate in rates {
                self.now += TICK;
                self.frees += rate / 10;
                let frees = self.frees;
                self.pinning.tick_at(self.now, [(7, frees)].into_iter());
            }
        }

        fn log(&self) -> Vec<&str> {
            self.pinning
                .threads
                .log
                .iter()
                .map(String::as_str)
                .collect()
        }

        fn notes(self) -> Vec<String> {
            let now = self.now;
            self.pinning.into_notes_at(now)
        }
    }

    #[test]
    fn a_process_freeing_fast_with_threads_is_moved_while_it_pays() {
        let mut run = Run::new(2);
        run.ticks(&[40_000, 60_000]);
        assert_eq!(run.log(), ["pin 7"]);
        // Five times as fast on one CPU: the trial (400 ms) keeps the move.
        run.ticks(&[300_000; 6]);
        assert_eq!(run.log(), ["pin 7"]);
        // The frees stop: the CPUs come back after a quiet second, not before.
        run.ticks(&[0; 9]);
        assert_eq!(run.log(), ["pin 7"]);
        run.ticks(&[0; 2]);
        assert_eq!(run.log(), ["pin 7", "unpin 7"]);
        let notes = run.notes();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with(
                "pid 7 (churn) ran on CPU 3 alone for 1.7 s (it freed 60,000 blocks a second \
                 on all its CPUs, 300,000 on one)"
            ),
            "{}",
            notes[0]
        );
    }

    #[test]
    fn a_move_that_does_not_pay_is_undone_and_not_tried_again_for_a_while() {
        let mut run = Run::new(4);
        run.ticks(&[80_000, 80_000]);
        assert_eq!(run.log(), ["pin 7"]);
        // No faster on one CPU (less than GAIN times): undone at the end of the trial.
        run.ticks(&[90_000; 4]);
        assert_eq!(run.log(), ["pin 7", "unpin 7"]);
        // Not moved again before BACKOFF, however fast it frees.
        run.ticks(&[80_000; 99]);
        assert_eq!(run.log(), ["pin 7", "unpin 7"]);
        run.ticks(&[80_000]);
        assert_eq!(run.log(), ["pin 7", "unpin 7", "pin 7"]);
        run.ticks(&[80_000; 4]);
        assert_eq!(run.log(), ["pin 7", "unpin 7", "pin 7", "unpin 7"]);
        let notes = run.notes();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("no faster with them on one CPU"),
            "{}",
            notes[0]
        );
    }

    #[test]
    fn one_thread_or_slow_frees_are_never_moved() {
        let mut one = Run::new(1);
        one.ticks(&[500_000; 20]);
        assert!(one.log().is_empty());
        assert!(one.notes().is_empty());
        let mut slow = Run::new(8);
        slow.ticks(&[49_000; 20]);
        assert!(slow.log().is_empty());
    }

    #[test]
    fn a_process_that_leaves_while_moved_gets_its_cpus_back() {
        let mut run = Run::new(2);
        run.ticks(&[100_000, 100_000, 300_000, 300_000, 300_000, 300_000]);
        assert_eq!(run.log(), ["pin 7"]);
        run.now += TICK;
        let now = run.now;
        run.pinning.tick_at(now, std::iter::empty());
        assert_eq!(run.log(), ["pin 7", "unpin 7"]);
        let notes = run.notes();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("alone for 0.5 s"), "{}", notes[0]);
    }

    #[test]
    fn rates_read_in_thousands() {
        assert_eq!(thousands(950.0), "950");
        assert_eq!(thousands(9_999.4), "9,999");
        assert_eq!(thousands(96_321.0), "96,000");
        assert_eq!(thousands(1_234_567.0), "1,235,000");
    }
}
