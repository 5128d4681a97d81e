//! `fencepost`: the command line. Thin glue over the analyzer library and the shim.

mod cpus;
mod findings;
mod ring;
mod session;
mod target;
mod valgrind_args;

use clap::{Args, Parser, Subcommand};
use fencepost_analyzer::{
    render_text, AnalyzerOptions, LeakCheck, LeakKind, Report, Symbolizer, TextOptions,
};
use session::{MainStatus, RunConfig};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "fencepost",
    version,
    about = "Finds heap errors and leaks in unmodified Linux x86-64 programs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a program and report its heap errors and leaks.
    Run {
        #[command(flatten)]
        trace: TraceArgs,
        #[command(flatten)]
        report: ReportArgs,
        /// The program and its arguments.
        #[arg(required = true, trailing_var_arg = true, value_name = "PROG [ARGS]")]
        program: Vec<String>,
    },
    /// Run a program and keep its event stream in a trace file (read it with `report`).
    Record {
        /// The trace file to write.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
        #[command(flatten)]
        trace: TraceArgs,
        #[command(flatten)]
        report: ReportArgs,
        #[arg(required = true, trailing_var_arg = true, value_name = "PROG [ARGS]")]
        program: Vec<String>,
    },
    /// Make the report of a trace file written by `record`.
    Report {
        /// The trace file.
        trace_file: PathBuf,
        #[command(flatten)]
        report: ReportArgs,
    },
}

#[derive(Args, Clone)]
struct TraceArgs {
    /// Follow programs started with exec (forked processes are always followed).
    #[arg(long, value_name = "yes|no", default_value = "no", value_parser = yes_no, action = clap::ArgAction::Set)]
    trace_children: bool,
    /// guard: every block against a guard page (finds bad reads and writes); fast: glibc's
    /// heap, recording only (leaks, bad frees, and writes just past or before a block,
    /// found when it is freed; for big programs); sampled: fast mode, with each call site's
    /// first blocks and then one in --sample-rate against a guard page.
    #[arg(long, value_name = "guard|fast|sampled", default_value = "guard", value_parser = ["guard", "fast", "sampled"])]
    mode: String,
    /// Sampled mode: blocks guarded at each call site (an allocation's first three frames)
    /// before the rate applies, at most 255.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=255))]
    sample_first: u32,
    /// Sampled mode: then one block in N is guarded, on average.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    sample_rate: u32,
    /// Put the guard page below each block (finds underflows at the instruction) instead of
    /// after it.
    #[arg(long)]
    protect_below: bool,
    /// Give every block at least this alignment (16 for programs that assume glibc's), or
    /// `standard`: what the C standard promises malloc (16 for 16 bytes and more; the
    /// default for Rust programs).
    #[arg(long, value_name = "N|standard", value_parser = alignment)]
    alignment: Option<String>,
    /// Memory the guarded blocks may use, in MiB (default: a quarter of physical memory);
    /// past it, blocks get canaries only.
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u64).range(1..))]
    guard_budget_mb: Option<u64>,
    /// Guard mode: bytes of freed blocks kept inaccessible before their memory is reused, in
    /// MiB.
    #[arg(long, value_name = "MB", default_value_t = 256)]
    quarantine_mb: u64,
    /// Fast and sampled modes: bytes of freed blocks held back from reuse (memcheck's
    /// --freelist-vol, with its default). Less is faster for allocation-heavy threads, but a
    /// freed address then comes back sooner, and a dangling pointer to it can hide a leak or
    /// a double free that memcheck reports.
    #[arg(long, value_name = "BYTES", default_value_t = 20_000_000)]
    freelist_vol: u64,
    /// Run the program's threads on one CPU: auto (in guard mode, while a process frees so
    /// fast that its threads' CPUs keep interrupting each other to drop freed pages), yes
    /// (from the start, as memcheck runs threads one at a time) or no.
    #[arg(long, value_name = "auto|yes|no", default_value = "auto", value_parser = ["auto", "yes", "no"])]
    one_cpu: String,
    /// Stop the program at the first bad access.
    #[arg(long)]
    halt_on_error: bool,
    /// Stacks kept per block: alloc, or alloc-and-free (use-after-free and double-free
    /// reports show where the block was freed). Default: alloc-and-free in guard mode,
    /// alloc in fast and sampled modes (sampled mode keeps both for its guarded blocks).
    #[arg(long, value_name = "alloc|alloc-and-free", value_parser = ["alloc", "alloc-and-free"])]
    keep_stacktraces: Option<String>,
    /// How guard pages are made: madvise (MADV_GUARD_INSTALL, Linux 6.13+, no extra
    /// mappings) or mprotect (older kernels; limited by vm.max_map_count). Default: madvise
    /// where the kernel has it.
    #[arg(long, value_name = "madvise|mprotect", value_parser = ["madvise", "mprotect"])]
    guards: Option<String>,
    /// Size of the event ring shared with the program, in MiB. The default is small on
    /// purpose: a ring that stays in the caches makes every record cheaper to write and to
    /// read (a 64 MiB ring ran allocation-heavy programs 5-19% slower); a full ring only
    /// makes the program wait.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=4096))]
    ring_mb: u32,
}

#[derive(Args, Clone)]
struct ReportArgs {
    /// How much to say about leaks.
    #[arg(long, value_name = "no|summary|full", default_value = "full", value_parser = leak_check)]
    leak_check: LeakCheck,
    /// Which loss records to print in full: definite,indirect,possible,reachable,unreleased, all or none.
    /// (`unreleased`: blocks of a process that died without exiting; memcheck has no such kind.)
    #[arg(long, value_name = "KINDS", default_value = "definite,possible,unreleased", value_parser = leak_kinds)]
    show_leak_kinds: LeakKindSet,
    /// Which loss records count as errors.
    #[arg(long, value_name = "KINDS", default_value = "definite,possible", value_parser = leak_kinds)]
    errors_for_leak_kinds: LeakKindSet,
    /// Exit with N when errors were found.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    error_exitcode: Option<u8>,
    /// Frames recorded and shown per stack.
    #[arg(long, value_name = "N", default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=256))]
    num_callers: u32,
    /// Keep the C runtime's frames below main in stacks.
    #[arg(long, value_name = "yes|no", default_value = "no", value_parser = yes_no, action = clap::ArgAction::Set)]
    show_below_main: bool,
    /// Write the text report to FILE instead of stderr.
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// Write the JSON report (docs/report-format.md) to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// valgrind suppression files (several allowed); read by the suppressions module.
    #[arg(long = "suppressions", value_name = "FILE")]
    suppressions: Vec<PathBuf>,
    /// Print suppressions for the findings: no, yes or all (memcheck's
    /// --gen-suppressions); read by the suppressions module.
    #[arg(long, value_name = "no|yes|all", default_value = "no", value_parser = ["no", "yes", "all"])]
    gen_suppressions: String,
    /// Apply the built-in suppressions of known runtime noise (docs/suppressions.md).
    #[arg(long, value_name = "yes|no", default_value = "yes", value_parser = yes_no, action = clap::ArgAction::Set)]
    default_suppressions: bool,
    /// An earlier JSON report: its findings are known, reported as a count and not
    /// counted as errors (docs/baselines.md).
    #[arg(long, value_name = "OLD.json")]
    baseline: Option<PathBuf>,
    /// Write the findings as SARIF 2.1.0 to FILE (docs/sarif.md).
    #[arg(long, value_name = "FILE")]
    sarif: Option<PathBuf>,
    /// One GitHub Actions `::error file=…,line=…::` line per finding, on stderr.
    #[arg(long)]
    github_annotations: bool,
    /// Write a self-contained HTML report to FILE (docs/html-report.md).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// After each error and loss record of the text report, explain what it means, its
    /// usual cause and how to fix it.
    #[arg(long)]
    explain: bool,
    /// memcheck's text format and XML (crates/cli/src/valgrind_args.rs).
    #[command(flatten)]
    memcheck: valgrind_args::MemcheckArgs,
}

fn yes_no(s: &str) -> Result<bool, String> {
    match s {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("expected yes or no".into()),
    }
}

fn alignment(s: &str) -> Result<String, String> {
    match s.parse::<u32>() {
        _ if s == "standard" => Ok(s.to_string()),
        Ok(n) if n.is_power_of_two() && (1..=4096).contains(&n) => Ok(n.to_string()),
        _ => Err("expected a power of two from 1 to 4096, or standard".into()),
    }
}

fn leak_check(s: &str) -> Result<LeakCheck, String> {
    match s {
        "no" => Ok(LeakCheck::No),
        "summary" => Ok(LeakCheck::Summary),
        "full" | "yes" => Ok(LeakCheck::Full),
        _ => Err("expected no, summary or full".into()),
    }
}

/// A comma list of leak kinds, as memcheck spells them (`all` and `none` too).
fn leak_kinds(s: &str) -> Result<LeakKindSet, String> {
    LeakKind::parse_set(s).map(LeakKindSet)
}

#[derive(Clone)]
struct LeakKindSet(Vec<LeakKind>);

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("fencepost: {msg}");
    ExitCode::from(1)
}

fn main() -> ExitCode {
    // `fencepost [valgrind options] PROG` and fencepost run as `valgrind` become `run`.
    let argv = match valgrind_args::translate(std::env::args_os().collect()) {
        valgrind_args::Parsed::Argv(argv) => argv,
        valgrind_args::Parsed::Exit(code) => return code,
    };
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::from(
                    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                        2
                    } else {
                        0
                    },
                );
            }
            eprintln!(
                "fencepost: {} (see fencepost --help)",
                one_line(&e.to_string())
            );
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Run {
            trace,
            report,
            program,
        } => run(program, trace, report, None),
        Command::Record {
            output,
            trace,
            report,
            program,
        } => run(program, trace, report, Some(output)),
        Command::Report { trace_file, report } => replay(trace_file, report),
    }
}

/// clap's message on one line: the text before its usage block, lines joined.
fn one_line(text: &str) -> String {
    text.lines()
        .take_while(|l| !l.starts_with("Usage:"))
        .map(|l| l.trim())
        .filter(|l| {
            !l.is_empty() && !l.starts_with("tip:") && !l.starts_with("For more information")
        })
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_string()
}

/// Checks, before the program runs, that every report file can be written, without
/// creating any: an existing file must open for writing, a new one needs a writable
/// directory. `%p` and `%q{VAR}` are expanded as they will be after the run (with our own
/// pid standing in for the program's: only the directory is checked then).
fn check_outputs(r: &ReportArgs) -> Result<(), String> {
    let outputs = [
        ("log file", &r.log_file),
        ("JSON report", &r.json),
        ("SARIF report", &r.sarif),
        ("HTML report", &r.html),
        ("XML report", &r.memcheck.xml_file),
    ];
    for (what, path) in outputs {
        let Some(path) = path else { continue };
        let shown = path.display();
        // %q{VAR} can be expanded now; %p stands for a pid of the same length class, and
        // only the directory matters for it.
        let expanded = valgrind_args::expand_file_name(path, std::process::id())
            .map_err(|e| format!("{what}: {e}"))?;
        let path = &expanded;
        if path.is_file() {
            std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot write the {what} '{shown}': {e}"))?;
            continue;
        }
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !dir.is_dir() {
            return Err(format!(
                "cannot write the {what} '{shown}': no directory '{}'",
                dir.display()
            ));
        }
        let c_dir = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
            .map_err(|_| format!("cannot write the {what} '{shown}': a NUL in the path"))?;
        // SAFETY: access() with a NUL-terminated path reads nothing else.
        if unsafe { libc::access(c_dir.as_ptr(), libc::W_OK) } != 0 {
            return Err(format!(
                "cannot write the {what} '{shown}': {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// The shim next to our own executable, or `FENCEPOST_SHIM`.
fn find_shim() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("FENCEPOST_SHIM") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            std::fs::canonicalize(&p).map_err(|e| format!("FENCEPOST_SHIM: {e}"))
        } else {
            Err(format!(
                "FENCEPOST_SHIM names '{}', which does not exist",
                p.display()
            ))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
    let dir = exe.parent().ok_or("cannot find my own directory")?;
    let shim = dir.join("libfencepost_shim.so");
    if shim.is_file() {
        Ok(shim)
    } else {
        Err(format!(
            "cannot find libfencepost_shim.so next to {} (build it with cargo build --release, or set FENCEPOST_SHIM)",
            exe.display()
        ))
    }
}

/// The options the shim reads from `FENCEPOST_OPTIONS`.
fn shim_options(t: &TraceArgs, r: &ReportArgs) -> String {
    let mut o = format!(
        "num_callers={},trace_children={},mode={},protect_below={},halt_on_error={},quarantine_mb={},freelist_vol={}",
        r.num_callers, t.trace_children as u8, t.mode, t.protect_below as u8, t.halt_on_error as u8, t.quarantine_mb, t.freelist_vol
    );
    if let Some(a) = &t.alignment {
        o.push_str(&format!(",alignment={a}"));
    }
    if let Some(g) = &t.guards {
        o.push_str(&format!(",guards={g}"));
    }
    let free_stacks = match t.keep_stacktraces.as_deref() {
        Some(k) => k == "alloc-and-free",
        None => t.mode == "guard",
    };
    o.push_str(&format!(",free_stacks={}", free_stacks as u8));
    if t.mode == "sampled" {
        o.push_str(&format!(
            ",sample_first={},sample_rate={}",
            t.sample_first, t.sample_rate
        ));
    }
    if let Some(b) = t.guard_budget_mb {
        o.push_str(&format!(",guard_budget_mb={b}"));
    }
    o
}

fn analyzer_options(r: &ReportArgs, filters: &findings::Filters) -> AnalyzerOptions {
    // JSON and HTML list every loss record; the text, XML and SARIF reports those shown or
    // counted as errors. No other record's stack is read, so none is symbolized.
    let every_record = r.json.is_some() || r.html.is_some() || filters.read_leak_stacks();
    AnalyzerOptions {
        num_callers: r.num_callers as usize,
        show_below_main: r.show_below_main,
        symbolized_leak_kinds: (!every_record).then(|| findings::finding_leak_kinds(r)),
    }
}

fn text_options(r: &ReportArgs) -> TextOptions {
    TextOptions {
        leak_check: r.leak_check,
        show_leak_kinds: r.show_leak_kinds.0.clone(),
        errors_for_leak_kinds: r.errors_for_leak_kinds.0.clone(),
        num_callers: r.num_callers as usize,
        gen_suppressions: r.gen_suppressions != "no",
        explain: r.explain,
    }
}

fn html_options(r: &ReportArgs) -> fencepost_analyzer::HtmlOptions {
    fencepost_analyzer::HtmlOptions {
        num_callers: r.num_callers as usize,
        ..Default::default()
    }
}

fn run(
    program: Vec<String>,
    trace: TraceArgs,
    report: ReportArgs,
    output: Option<PathBuf>,
) -> ExitCode {
    let shim = match find_shim() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    // A bad suppression file or baseline is found before the program runs.
    let filters = match findings::Filters::load(&report) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    // So is an output that cannot be written: the run's findings must not be lost after it.
    if let Err(e) = check_outputs(&report) {
        return fail(e);
    }
    let cfg = RunConfig {
        program,
        shim,
        ring_bytes: trace.ring_mb as usize * 1024 * 1024,
        shim_options: shim_options(&trace, &report),
        analyzer: analyzer_options(&report, &filters),
        trace_out: output,
        one_cpu: match trace.one_cpu.as_str() {
            "yes" => cpus::OneCpu::Yes,
            "no" => cpus::OneCpu::No,
            _ => cpus::OneCpu::Auto,
        },
        guard_mode: trace.mode == "guard",
    };
    let outcome = match session::run(cfg) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    for w in &outcome.warnings {
        eprintln!("fencepost: warning: {w}");
    }
    for n in &outcome.notes {
        eprintln!("fencepost: note: {n}");
    }
    let mut symbols = Symbolizer::new();
    let rep = outcome.analyzer.finish(&mut symbols);
    let code = match outcome.status {
        MainStatus::Code(c) => c,
        MainStatus::Signal(s) => 128 + s,
    };
    emit(&filters.apply(rep, &report), &report, code)
}

fn replay(path: PathBuf, report: ReportArgs) -> ExitCode {
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot read '{}': {e}", path.display())),
    };
    let filters = match findings::Filters::load(&report) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let mut analyzer = fencepost_analyzer::Analyzer::new(analyzer_options(&report, &filters));
    // Streamed: a trace of gigabytes is read a buffer at a time, never held whole.
    match analyzer.feed_trace_from(file) {
        Ok(()) => {}
        Err(fencepost_analyzer::TraceError::Io(e)) => {
            return fail(format!("cannot read '{}': {e}", path.display()))
        }
        Err(e) => return fail(format!("'{}': {e}", path.display())),
    }
    let mut symbols = Symbolizer::new();
    let rep = analyzer.finish(&mut symbols);
    let code = match rep.exit {
        Some(fencepost_analyzer::report::ExitStatus::Code(c)) => c,
        Some(fencepost_analyzer::report::ExitStatus::Signal(s)) => 128 + s,
        None => 0,
    };
    emit(&filters.apply(rep, &report), &report, code)
}

/// Writes the text and JSON reports and picks the exit status.
fn emit(rep: &Report, args: &ReportArgs, program_code: i32) -> ExitCode {
    let text = valgrind_args::memcheck_text(rep, &args.memcheck, &text_options(args))
        .unwrap_or_else(|| render_text(rep, &text_options(args)));
    if let Err(e) = valgrind_args::write_xml(rep, &args.memcheck, &text_options(args)) {
        return fail(e);
    }
    match &args.log_file {
        Some(path) => {
            // valgrind's %p / %q{VAR} escapes.
            let path = match valgrind_args::expand_file_name(path, valgrind_args::main_pid(rep)) {
                Ok(p) => p,
                Err(e) => return fail(format!("--log-file: {e}")),
            };
            if let Err(e) = std::fs::write(&path, &text) {
                return fail(format!(
                    "cannot write the log file '{}': {e}",
                    path.display()
                ));
            }
        }
        None => eprint!("{text}"),
    }
    if let Some(path) = &args.json {
        if let Err(e) = std::fs::write(path, rep.to_json()) {
            return fail(format!(
                "cannot write the JSON report '{}': {e}",
                path.display()
            ));
        }
    }
    if let Err(e) = findings::write_sarif_and_annotations(rep, args) {
        return fail(e);
    }
    if let Some(path) = &args.html {
        let html = fencepost_analyzer::render_html(rep, &html_options(args));
        if let Err(e) = std::fs::write(path, html) {
            return fail(format!(
                "cannot write the HTML report '{}': {e}",
                path.display()
            ));
        }
    }
    // With --leak-check=no, leaks are not looked at, so they are not errors either.
    let leak_errors: &[LeakKind] = match args.leak_check {
        LeakCheck::No => &[],
        _ => &args.errors_for_leak_kinds.0,
    };
    let errors = rep.error_count(leak_errors);
    match args.error_exitcode {
        Some(n) if errors > 0 => ExitCode::from(n),
        _ => ExitCode::from((program_code & 0xff) as u8),
    }
}
