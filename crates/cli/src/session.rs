//! One traced run: the ring, the program, the consumer that feeds the analyzer (and the
//! trace file for `record`), and the reaping of every process the program starts.

use crate::cpus::{self, OneCpu, Pinning};
use crate::ring::{Ring, RingError};
use crate::target;
use fencepost_analyzer::decode::{self, encode_record};
use fencepost_analyzer::wire::{self, kind};
use fencepost_analyzer::{Analyzer, AnalyzerOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct RunConfig {
    pub program: Vec<String>,
    pub shim: PathBuf,
    pub ring_bytes: usize,
    /// What the shim is told, as `key=value,…` (`FENCEPOST_OPTIONS`).
    pub shim_options: String,
    pub analyzer: AnalyzerOptions,
    /// `record`: where the trace goes.
    pub trace_out: Option<PathBuf>,
    /// `--one-cpu`, and whether blocks are guarded (`auto` only acts in guard mode).
    pub one_cpu: OneCpu,
    pub guard_mode: bool,
}

/// How the main program ended.
#[derive(Clone, Copy, Debug)]
pub enum MainStatus {
    Code(i32),
    Signal(i32),
}

pub struct Outcome {
    pub analyzer: Analyzer,
    pub status: MainStatus,
    pub warnings: Vec<String>,
    /// What fencepost did to the run that the user should know of (`--one-cpu`).
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Target(#[from] target::TargetError),
    #[error(transparent)]
    Ring(#[from] RingError),
    #[error("cannot start '{0}': {1}")]
    Spawn(String, std::io::Error),
    #[error("cannot write the trace file '{0}': {1}")]
    Trace(String, std::io::Error),
}

static MAIN_PID: AtomicI32 = AtomicI32::new(0);
/// A signal that arrived after the program started but before its pid was stored (the
/// program can run and print before `spawn` returns to us); delivered right after.
static PENDING_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Signals sent to fencepost itself (not the terminal's, which reach the program directly)
/// are passed on to the program, so `kill -INT` still ends in a report.
extern "C" fn forward_signal(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    _ctx: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    let pid = MAIN_PID.load(Ordering::Relaxed);
    if code == libc::SI_KERNEL {
        return;
    }
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    } else {
        PENDING_SIGNAL.store(sig, Ordering::Relaxed);
    }
}

fn install_forwarding() {
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        // SAFETY: installing a handler that only calls async-signal-safe functions.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward_signal as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// The shim's LD_PRELOAD entry comes first; the user's own preloads follow.
fn preload_value(shim: &Path) -> String {
    match std::env::var("LD_PRELOAD") {
        Ok(old) if !old.trim().is_empty() => format!("{}:{}", shim.display(), old),
        _ => shim.display().to_string(),
    }
}

pub fn run(cfg: RunConfig) -> Result<Outcome, SessionError> {
    let prog_path = target::resolve(&cfg.program[0])?;
    let ring = Ring::create(cfg.ring_bytes)?;
    let mut trace = match &cfg.trace_out {
        Some(path) => {
            let f = std::fs::File::create(path)
                .map_err(|e| SessionError::Trace(path.display().to_string(), e))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            let mut header = Vec::with_capacity(wire::TRACE_HEADER_LEN);
            header.extend_from_slice(&wire::TRACE_MAGIC);
            header.extend_from_slice(&wire::VERSION.to_le_bytes());
            header.extend_from_slice(&0u32.to_le_bytes());
            w.write_all(&header)
                .map_err(|e| SessionError::Trace(path.display().to_string(), e))?;
            Some((path.clone(), w))
        }
        None => None,
    };

    // Orphaned grandchildren are re-parented to us, so we can wait for every process.
    // SAFETY: prctl with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    install_forwarding();

    let mut analyzer = Analyzer::new(cfg.analyzer.clone());
    let mut argv_rec = Vec::new();
    for a in &cfg.program {
        argv_rec.extend_from_slice(a.as_bytes());
        argv_rec.push(0);
    }
    let command = encode_record(kind::COMMAND, &argv_rec);
    analyzer.feed_record(&command, 0).ok();
    if let Some((path, w)) = trace.as_mut() {
        w.write_all(&command)
            .map_err(|e| SessionError::Trace(path.display().to_string(), e))?;
    }

    let ring_fd = ring.fd();
    let mut cmd = std::process::Command::new(&prog_path);
    cmd.arg0(&cfg.program[0])
        .args(&cfg.program[1..])
        .env("LD_PRELOAD", preload_value(&cfg.shim))
        .env("FENCEPOST_RING_FD", ring_fd.to_string())
        .env("FENCEPOST_OPTIONS", &cfg.shim_options);
    let start_cpu = match cfg.one_cpu {
        OneCpu::Yes => cpus::one_cpu_for_start(),
        _ => None,
    };
    // SAFETY: the closure runs between fork and exec and only calls fcntl and
    // sched_setaffinity, which are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(ring_fd, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(set) = &start_cpu {
                // Best effort: the program runs all the same on every CPU.
                let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), set);
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| SessionError::Spawn(cfg.program[0].clone(), e))?;
    let main_pid = child.id() as i32;
    MAIN_PID.store(main_pid, Ordering::Relaxed);
    let pending = PENDING_SIGNAL.swap(0, Ordering::Relaxed);
    if pending != 0 {
        // SAFETY: plain kill of our own child.
        unsafe { libc::kill(main_pid, pending) };
    }

    let all_gone = Arc::new(AtomicBool::new(false));
    let consumer = {
        let all_gone = all_gone.clone();
        let pinning = Pinning::new(cfg.one_cpu, cfg.guard_mode);
        std::thread::spawn(move || consume(ring, analyzer, trace, all_gone, pinning))
    };

    let status = reap_all(main_pid);
    all_gone.store(true, Ordering::Release);
    let (mut analyzer, trace, mut warnings, notes) = consumer.join().unwrap_or_else(|_| {
        // The consumer never panics by design; if it did, say so rather than hide it.
        eprintln!("fencepost: internal error: the event consumer stopped");
        std::process::exit(70)
    })?;

    let (how, value) = match status {
        MainStatus::Code(c) => (0u32, c),
        MainStatus::Signal(s) => (1u32, s),
    };
    let mut payload = Vec::with_capacity(wire::MAIN_EXIT_LEN);
    payload.extend_from_slice(&(main_pid as u32).to_le_bytes());
    payload.extend_from_slice(&how.to_le_bytes());
    payload.extend_from_slice(&value.to_le_bytes());
    payload.extend_from_slice(&0u32.to_le_bytes());
    let exit_rec = encode_record(kind::MAIN_EXIT, &payload);
    analyzer.feed_record(&exit_rec, 0).ok();
    if let Some((path, mut w)) = trace {
        w.write_all(&exit_rec)
            .and_then(|_| w.flush())
            .map_err(|e| SessionError::Trace(path.display().to_string(), e))?;
    }
    warnings.dedup();
    Ok(Outcome {
        analyzer,
        status,
        warnings,
        notes,
    })
}

/// Waits for the main program and every descendant (we are their subreaper).
fn reap_all(main_pid: i32) -> MainStatus {
    let mut main_status = MainStatus::Code(0);
    loop {
        let mut st = 0;
        // SAFETY: waitpid with a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut st, 0) };
        if pid < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break; // ECHILD: nobody is left
        }
        if pid == main_pid {
            main_status = if libc::WIFSIGNALED(st) {
                MainStatus::Signal(libc::WTERMSIG(st))
            } else {
                MainStatus::Code(libc::WEXITSTATUS(st))
            };
            MAIN_PID.store(0, Ordering::Relaxed);
        }
    }
    main_status
}

type ConsumerResult = Result<
    (
        Analyzer,
        Option<(PathBuf, std::io::BufWriter<std::fs::File>)>,
        Vec<String>,
        Vec<String>,
    ),
    SessionError,
>;

/// The consumer's shortest and longest sleep when the ring is empty.
const NAP_MIN: Duration = Duration::from_micros(50);
const NAP_MAX: Duration = Duration::from_millis(4);

fn consume(
    mut ring: Ring,
    mut analyzer: Analyzer,
    mut trace: Option<(PathBuf, std::io::BufWriter<std::fs::File>)>,
    all_gone: Arc<AtomicBool>,
    mut pinning: Pinning,
) -> ConsumerResult {
    // Records are taken in batches: one copy, one clear and one tail update for many.
    const BATCH: usize = 1 << 20;
    let mut batch = Vec::with_capacity(BATCH + wire::MAX_RECORD_LEN);
    let mut warnings = Vec::new();
    let mut offset = 0u64;
    let mut idle = 0u32;
    // How long to sleep when the ring is empty, and how much was drained since the last
    // sleep: see the end of the loop.
    let mut nap = NAP_MIN;
    let mut drained = 0u64;
    let cap = ring.capacity();
    'drain: loop {
        pinning.tick(analyzer.running_processes());
        match ring.next_batch(&mut batch, BATCH) {
            Ok(true) => {
                idle = 0;
                drained += batch.len() as u64;
                let mut pos = 0;
                while pos < batch.len() {
                    let record = &batch[pos..];
                    // The ring checked every header before copying; one that reads
                    // differently now was rewritten meanwhile by the program.
                    let len = match decode::record_at(record, offset) {
                        Ok((_, r)) => r.len(),
                        Err(e) => {
                            warnings.push(format!("{e}; events after this point were lost"));
                            ring.close();
                            break 'drain;
                        }
                    };
                    if let Err(e) = analyzer.feed_record(&record[..len], offset) {
                        warnings.push(format!("skipped a malformed event: {e}"));
                    }
                    pos += len;
                    offset += len as u64;
                }
                if let Some((path, w)) = trace.as_mut() {
                    if let Err(e) = w.write_all(&batch) {
                        ring.close();
                        return Err(SessionError::Trace(path.display().to_string(), e));
                    }
                }
                continue;
            }
            Ok(false) => {}
            Err(e) => {
                // The program overwrote the ring: keep what we have, say so, stop reading.
                warnings.push(format!("{e}; events after this point were lost"));
                ring.close();
                break;
            }
        }
        if all_gone.load(Ordering::Acquire) {
            // Every process is gone: what is left is complete, or a hole left by a process
            // killed between reserving and publishing a record.
            if !ring.pending() {
                break;
            }
            if !ring.skip_dead_hole() {
                idle += 1;
                if idle > 100 {
                    warnings
                        .push("a process died while writing an event; that event was lost".into());
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            continue;
        }
        // Nothing published: sleep rather than spin, so that the next batch is a big one.
        // Chasing the producers record by record costs a cache miss (theirs and ours) per
        // record and a core the program may want. How long: each wake-up takes a core from
        // a program whose threads want both (a two-thread churn ran 15 % slower waking every
        // 100 us), so the nap doubles while little arrives between naps, up to NAP_MAX, and
        // halves when a nap let more than an eighth of the ring fill up; a producer that
        // finds the ring full waits for us, so a small --ring-mb stays correct either way.
        if drained > cap / 8 {
            nap = (nap / 2).max(NAP_MIN);
        } else if drained < cap / 32 {
            nap = (nap * 2).min(NAP_MAX);
        }
        drained = 0;
        std::thread::sleep(nap);
    }
    let dropped = ring.dropped();
    if dropped > 0 {
        warnings.push(format!("{dropped} events could not be recorded"));
    }
    ring.close();
    Ok((analyzer, trace, warnings, pinning.into_notes()))
}
