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
//! guard mode, `auto` (the default) watches how fast each process frees, moves all its
//! threads to one CPU while it frees more than [`PIN_RATE`] blocks a second with two
//! threads or more, and gives each thread back its own CPU mask once the rate has stayed
//! under [`UNPIN_RATE`] for [`QUIET`]. A thread whose mask the program changed meanwhile
//! is left as the program set it. `yes` starts the program on one CPU; `no` never moves
//! it. Fast mode guards nothing, so `auto` does nothing there.

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
/// How often the rates are looked at.
const TICK: Duration = Duration::from_millis(100);

/// Watches the running processes' frees and moves their threads (`auto`).
pub struct Pinning {
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

struct Pin {
    set: CpuSet,
    /// The process's mask when it was moved: for threads born since.
    original: CpuSet,
    /// Threads moved, with the mask each had.
    saved: HashMap<i32, CpuSet>,
    /// Every thread looked at (moved or not): each is looked at once.
    seen: HashSet<i32>,
    since: Instant,
    quiet_since: Option<Instant>,
}

impl Pinning {
    /// `auto` in guard mode watches; anything else does nothing here (`yes` is applied
    /// when the program starts, see [`one_cpu_for_start`]).
    pub fn new(mode: OneCpu, guard_mode: bool) -> Self {
        Pinning {
            watch: mode == OneCpu::Auto && guard_mode && online_cpus() > 1,
            last_tick: Instant::now(),
            procs: HashMap::new(),
            notes: Vec::new(),
        }
    }

    /// Looks at the processes' rates when a tick is due. `running`: every running
    /// process and the frees it has recorded so far.
    pub fn tick(&mut self, running: impl Iterator<Item = (u32, u64)>) {
        if !self.watch {
            return;
        }
        let now = Instant::now();
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
                w.step(pid, rate, now);
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
                    unpin(pid, p);
                }
                self.note(pid, &w, now);
            }
        }
    }

    fn note(&mut self, pid: u32, w: &Watched, now: Instant) {
        let total = w.total(now);
        if total.is_zero() {
            return;
        }
        let name = if w.exe.is_empty() {
            String::new()
        } else {
            format!(" ({})", w.exe)
        };
        self.notes.push(format!(
            "pid {pid}{name} ran on CPU {} alone for {:.1} s: it freed guarded blocks so \
             fast that taking their pages from every CPU its threads ran on cost more than \
             the threads gained (--one-cpu=no keeps them on every CPU)",
            w.cpu,
            total.as_secs_f64()
        ));
    }

    /// The notes for the end of the run; processes still on one CPU count until now.
    pub fn into_notes(mut self) -> Vec<String> {
        let now = Instant::now();
        let mut left: Vec<(u32, Watched)> = self.procs.drain().collect();
        left.sort_by_key(|(pid, _)| *pid);
        for (pid, w) in left {
            self.note(pid, &w, now);
        }
        self.notes
    }
}

impl Watched {
    /// One tick of one process freeing at `rate` blocks a second.
    fn step(&mut self, pid: u32, rate: f64, now: Instant) {
        match &mut self.pinned {
            None => {
                if rate >= PIN_RATE && thread_count(pid) >= 2 {
                    match pin(pid, now) {
                        Some((p, cpu)) => {
                            self.pinned = Some(p);
                            self.cpu = cpu;
                            self.exe = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                                .map(|s| s.trim_end().to_string())
                                .unwrap_or_default();
                        }
                        None => self.settled = true,
                    }
                }
            }
            Some(p) => {
                sweep(pid, p);
                if rate >= UNPIN_RATE {
                    p.quiet_since = None;
                } else if now.duration_since(*p.quiet_since.get_or_insert(now)) >= QUIET {
                    unpin(pid, p);
                    self.earlier += now - p.since;
                    self.pinned = None;
                }
            }
        }
    }
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

fn thread_count(pid: u32) -> usize {
    tasks(pid).len()
}

/// The CPU a thread last ran on (`/proc/PID/stat`, field 39).
fn last_cpu(pid: u32) -> Option<usize> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields from the third (state) on follow the command's closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(39 - 3)?.parse().ok()
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
    let mut p = Pin {
        set,
        original,
        saved: HashMap::new(),
        seen: HashSet::new(),
        since: now,
        quiet_since: None,
    };
    sweep(pid, &mut p);
    Some((p, cpu))
}

/// Moves the threads of `pid` not looked at yet. A thread started by a moved thread is on
/// the CPU already. Threads started while the list is read are found by the next pass.
fn sweep(pid: u32, p: &mut Pin) {
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
