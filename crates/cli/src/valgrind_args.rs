//! fencepost as a drop-in for valgrind: `fencepost [valgrind options] PROG [ARGS]` (no
//! subcommand), or fencepost installed or linked as `valgrind`. CI scripts, ctest's memory
//! checker and IDE integrations call valgrind with memcheck's options and parse its text or
//! XML; this module turns such a command line into `fencepost run … -- PROG ARGS`, so both
//! entry points share one run path, and writes memcheck's formats at the end.
//!
//! memcheck's options are mapped onto fencepost's; those that only tune what fencepost does
//! not do (uninitialised values, origins, demangling switches) are accepted and ignored;
//! fencepost's own options (`--mode=fast`, `--json=F`, …) work here too. Anything else is
//! one clear error line, as valgrind does.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory};
use fencepost_analyzer::{
    render_memcheck_text, render_xml, MemcheckTextOptions, Report, TextOptions, XmlOptions,
};

/// Options of memcheck's output formats, on `run`/`record`/`report` as on the drop-in.
#[derive(Args, Clone, Debug, Default)]
pub struct MemcheckArgs {
    /// Write the text report in valgrind memcheck's format (`==PID==` prefixes, memcheck's
    /// wording and summaries) for tools that parse it. Implied when fencepost runs as
    /// `valgrind`.
    #[arg(long)]
    pub valgrind_compat: bool,
    /// Write valgrind's XML (protocol 4, as memcheck writes it) to FILE. `%p` is the main
    /// process's pid, `%q{VAR}` the environment variable VAR; with `%p`, each process gets
    /// its own file, as under valgrind.
    #[arg(long, value_name = "FILE")]
    pub xml_file: Option<PathBuf>,
    /// With --valgrind-compat: only the errors and loss records, no header or summaries
    /// (memcheck's -q).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// With --valgrind-compat and XML: say nothing about forked children.
    #[arg(long, value_name = "yes|no", default_value = "no", value_parser = crate::yes_no, action = clap::ArgAction::Set)]
    pub child_silent_after_fork: bool,
}

/// What the command line asks for: argv for clap (rewritten for the drop-in), or an exit.
pub enum Parsed {
    Argv(Vec<OsString>),
    Exit(ExitCode),
}

const SUBCOMMANDS: &[&str] = &["run", "record", "report", "help"];

/// Rewrites a valgrind-style command line as `fencepost run … -- PROG ARGS`; any other
/// command line is returned unchanged for clap.
pub fn translate(argv: Vec<OsString>) -> Parsed {
    let as_valgrind = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n == "valgrind");
    let first = argv.get(1).and_then(|a| a.to_str());
    let drop_in = match first {
        None => as_valgrind,
        Some(a) if SUBCOMMANDS.contains(&a) => false,
        Some("-h" | "--help" | "-V" | "--version") => as_valgrind,
        Some(_) => true,
    };
    if !drop_in {
        return Parsed::Argv(argv);
    }
    match rewrite(&argv[1..], as_valgrind) {
        Ok(Rewritten::Run(args)) => {
            let mut out = vec![argv[0].clone(), OsString::from("run")];
            out.extend(args);
            Parsed::Argv(out)
        }
        Ok(Rewritten::Help) => {
            print!("{DROP_IN_HELP}");
            Parsed::Exit(ExitCode::SUCCESS)
        }
        Ok(Rewritten::Version) => {
            println!(
                "fencepost {} (valgrind-compatible command line, memcheck only)",
                env!("CARGO_PKG_VERSION")
            );
            Parsed::Exit(ExitCode::SUCCESS)
        }
        Err(msg) => {
            eprintln!("fencepost: {msg}");
            Parsed::Exit(ExitCode::from(1))
        }
    }
}

const DROP_IN_HELP: &str = "\
usage: fencepost [valgrind options] PROG [ARGS]     (valgrind's command line, memcheck only)
       fencepost run [OPTIONS] -- PROG [ARGS]       (fencepost's own; see fencepost --help)

memcheck options understood:
  --tool=memcheck  -q  -v  --leak-check=no|summary|full|yes  --show-leak-kinds=KINDS
  --show-reachable=yes|no  --errors-for-leak-kinds=KINDS  --error-exitcode=N
  --num-callers=N  --suppressions=FILE  --gen-suppressions=no|yes|all
  --log-file=FILE (%p: pid, %q{VAR}: environment variable)  --xml=yes --xml-file=FILE
  --trace-children=yes|no  --child-silent-after-fork=yes|no  --show-below-main=yes|no
accepted and ignored: --track-origins --undef-value-errors --leak-check-heuristics
  --demangle --leak-resolution --keep-debuginfo --read-var-info --error-limit
fencepost's own run options work too (--mode=fast, --json=FILE, --valgrind-compat, ...).
";

enum Rewritten {
    Run(Vec<OsString>),
    Help,
    Version,
}

/// memcheck options that tune what fencepost does not do: accepted, no effect.
const IGNORED: &[&str] = &[
    "--undef-value-errors",
    "--leak-check-heuristics",
    "--demangle",
    "--leak-resolution",
    "--keep-debuginfo",
    "--read-var-info",
    "--error-limit",
    "--partial-loads-ok",
    "--expensive-definedness-checks",
    "--show-mismatched-frees",
];

/// Sets a single-valued option (the last one wins, as in valgrind); `--suppressions`
/// accumulates.
fn set(options: &mut Vec<(String, Option<OsString>)>, name: &str, value: Option<OsString>) {
    options.retain(|(n, _)| n != name || name == "--suppressions");
    options.push((name.to_string(), value));
}

fn rewrite(args: &[OsString], as_valgrind: bool) -> Result<Rewritten, String> {
    let run = crate::Cli::command();
    let run = run
        .find_subcommand("run")
        .ok_or("internal error: no run subcommand")?
        .clone();
    // Single-valued options: the last one wins, as in valgrind.
    let mut options: Vec<(String, Option<OsString>)> = Vec::new();
    let mut xml = false;
    let mut xml_file: Option<OsString> = None;
    let mut told_origins = false;
    if as_valgrind {
        set(&mut options, "--valgrind-compat", None);
    }
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(text) = arg.to_str() else {
            if arg.as_encoded_bytes().starts_with(b"-") {
                return Err(format!("unknown option '{}'", arg.to_string_lossy()));
            }
            i -= 1;
            break; // the program
        };
        if text == "--" {
            break;
        }
        if !text.starts_with('-') || text == "-" {
            i -= 1;
            break;
        }
        let (name, value) = match text.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (text, None),
        };
        let need = |v: Option<&str>| -> Result<String, String> {
            v.map(str::to_string)
                .ok_or_else(|| format!("option '{name}' needs a value ({name}=...)"))
        };
        match name {
            "-h" | "--help" => return Ok(Rewritten::Help),
            "--version" => return Ok(Rewritten::Version),
            "--tool" => {
                let tool = need(value)?;
                if tool != "memcheck" {
                    return Err(format!(
                        "--tool={tool} is not supported: fencepost is a memory error detector \
                         and only stands in for --tool=memcheck"
                    ));
                }
            }
            "-q" | "--quiet" => set(&mut options, "--quiet", None),
            "-v" | "--verbose" => {}
            "--show-reachable" => {
                let kinds = match need(value)?.as_str() {
                    "yes" => "all",
                    "no" => "definite,possible,unreleased",
                    _ => return Err("--show-reachable expects yes or no".into()),
                };
                set(&mut options, "--show-leak-kinds", Some(kinds.into()));
            }
            "--error-exitcode" => {
                let n = need(value)?;
                if n == "0" {
                    // memcheck's "0: return the program's own status", fencepost's default.
                    options.retain(|(o, _)| o != "--error-exitcode");
                } else {
                    set(&mut options, name, Some(n.into()));
                }
            }
            "--num-callers" => {
                let n: u32 = need(value)?
                    .parse()
                    .map_err(|_| "--num-callers expects a number".to_string())?;
                // memcheck allows up to 500; fencepost records at most 256 frames.
                set(&mut options, name, Some(n.clamp(1, 256).to_string().into()));
            }
            "--xml" => {
                xml = match need(value)?.as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err("--xml expects yes or no".into()),
                }
            }
            "--xml-file" => xml_file = Some(need(value)?.into()),
            "--track-origins" => {
                if need(value)? == "yes" && !told_origins {
                    eprintln!(
                        "fencepost: --track-origins is not supported (fencepost does not track \
                         uninitialised values); ignored"
                    );
                    told_origins = true;
                }
            }
            _ if IGNORED.contains(&name) => {}
            _ => {
                // memcheck's options spelled as fencepost's, and fencepost's own options.
                let Some(long) = name.strip_prefix("--") else {
                    return Err(format!("unknown option '{name}'"));
                };
                let Some(opt) = run.get_arguments().find(|a| a.get_long() == Some(long)) else {
                    return Err(format!(
                        "unknown option '{name}' (memcheck's options: fencepost --tool=memcheck --help; \
                         fencepost's own: fencepost run --help)"
                    ));
                };
                if opt.get_action().takes_values() {
                    let v = match value {
                        Some(v) => OsString::from(v),
                        None if i < args.len() => {
                            i += 1;
                            args[i - 1].clone()
                        }
                        None => return Err(format!("option '{name}' needs a value")),
                    };
                    set(&mut options, name, Some(v));
                } else if value.is_some() {
                    return Err(format!("option '{name}' takes no value"));
                } else {
                    set(&mut options, name, None);
                }
            }
        }
    }
    let program = &args[i..];
    if program.is_empty() {
        return Err("no program to run (usage: fencepost [valgrind options] PROG [ARGS])".into());
    }
    if xml {
        match xml_file {
            Some(f) => set(&mut options, "--xml-file", Some(f)),
            None => {
                return Err(
                    "--xml=yes needs an output file: add --xml-file=FILE (fencepost does not \
                     write XML to a file descriptor or socket)"
                        .into(),
                )
            }
        }
    }
    let mut out = Vec::new();
    for (name, value) in options {
        match value {
            Some(v) => {
                let mut o = OsString::from(format!("{name}="));
                o.push(v);
                out.push(o);
            }
            None => out.push(name.into()),
        }
    }
    out.push("--".into());
    out.extend(program.iter().cloned());
    Ok(Rewritten::Run(out))
}

/// The text report in memcheck's format, if asked for (`None`: fencepost's own).
pub fn memcheck_text(rep: &Report, m: &MemcheckArgs, text: &TextOptions) -> Option<String> {
    m.valgrind_compat.then(|| {
        render_memcheck_text(
            rep,
            &MemcheckTextOptions {
                text: text.clone(),
                quiet: m.quiet,
                child_silent_after_fork: m.child_silent_after_fork,
            },
        )
    })
}

/// Writes the XML report(s) asked for by `--xml-file`: one document, or with `%p` in the
/// name one per process, as valgrind writes them.
pub fn write_xml(rep: &Report, m: &MemcheckArgs, text: &TextOptions) -> Result<(), String> {
    let Some(template) = &m.xml_file else {
        return Ok(());
    };
    let opts = XmlOptions {
        text: text.clone(),
        vargv: std::env::args().collect(),
    };
    let per_process = template.to_string_lossy().contains("%p");
    let mut pids: Vec<u32> = Vec::new();
    for p in &rep.processes {
        let silent = m.child_silent_after_fork
            && p.start == fencepost_analyzer::report::ProcessStartKind::Fork;
        if !pids.contains(&p.pid) && !silent {
            pids.push(p.pid);
        }
    }
    let groups: Vec<(u32, Vec<u32>)> = if per_process {
        pids.iter().map(|&p| (p, vec![p])).collect()
    } else {
        vec![(main_pid(rep), pids)]
    };
    for (pid, members) in groups {
        let path = expand_file_name(template, pid)?;
        let xml = render_xml(rep, &opts, Some(&members));
        std::fs::write(&path, xml)
            .map_err(|e| format!("cannot write the XML report '{}': {e}", path.display()))?;
    }
    Ok(())
}

/// The pid of the process fencepost started (0 when the report has none).
pub fn main_pid(rep: &Report) -> u32 {
    use fencepost_analyzer::report::ProcessStartKind;
    rep.processes
        .iter()
        .find(|p| p.start == ProcessStartKind::Main)
        .or(rep.processes.first())
        .map_or(0, |p| p.pid)
}

/// valgrind's file-name escapes: `%p` the pid, `%q{VAR}` the environment variable VAR
/// (an error when unset, as in valgrind), `%%` a `%`.
pub fn expand_file_name(path: &Path, pid: u32) -> Result<PathBuf, String> {
    let Some(text) = path.to_str() else {
        return Ok(path.to_path_buf()); // not UTF-8: no escapes to expand
    };
    if !text.contains('%') {
        return Ok(path.to_path_buf());
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(r) = after.strip_prefix('p') {
            out.push_str(&pid.to_string());
            rest = r;
        } else if let Some(r) = after.strip_prefix('%') {
            out.push('%');
            rest = r;
        } else if let Some(r) = after.strip_prefix("q{") {
            let end = r
                .find('}')
                .ok_or_else(|| format!("'{text}': %q{{ without a closing }}"))?;
            let var = &r[..end];
            let value = std::env::var(var).map_err(|_| {
                format!("'{text}': environment variable {var} (named by %q{{{var}}}) is not set")
            })?;
            out.push_str(&value);
            rest = &r[end + 1..];
        } else {
            return Err(format!(
                "'{text}': '%' must be followed by p, q{{VAR}} or % (as in valgrind)"
            ));
        }
    }
    out.push_str(rest);
    Ok(PathBuf::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(args: &[&str]) -> Vec<String> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        match rewrite(&args, false) {
            Ok(Rewritten::Run(v)) => v.into_iter().map(|s| s.into_string().unwrap()).collect(),
            Ok(_) => panic!("help or version"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn memcheck_options_map_onto_run_options() {
        assert_eq!(
            rewritten(&[
                "-q",
                "--tool=memcheck",
                "--leak-check=yes",
                "--show-reachable=yes",
                "--num-callers=50",
                "--log-file=/t/MemoryChecker.1.log",
                "./prog",
                "-x",
            ]),
            [
                "--quiet",
                "--leak-check=yes",
                "--show-leak-kinds=all",
                "--num-callers=50",
                "--log-file=/t/MemoryChecker.1.log",
                "--",
                "./prog",
                "-x"
            ]
        );
    }

    #[test]
    fn the_last_single_option_wins_and_suppressions_accumulate() {
        assert_eq!(
            rewritten(&[
                "--leak-check=no",
                "--suppressions=a.supp",
                "--leak-check=full",
                "--suppressions=b.supp",
                "--mode",
                "fast",
                "prog",
            ]),
            [
                "--suppressions=a.supp",
                "--leak-check=full",
                "--suppressions=b.supp",
                "--mode=fast",
                "--",
                "prog"
            ]
        );
    }

    #[test]
    fn unknown_options_other_tools_and_a_missing_program_are_errors() {
        let err = |a: &[&str]| {
            let a: Vec<OsString> = a.iter().map(OsString::from).collect();
            match rewrite(&a, false) {
                Err(e) => e,
                Ok(_) => panic!("accepted {a:?}"),
            }
        };
        assert!(err(&["--bogus", "prog"]).contains("unknown option '--bogus'"));
        assert!(err(&["--tool=helgrind", "prog"]).contains("--tool=helgrind"));
        assert!(err(&["--leak-check=full"]).contains("no program"));
        assert!(err(&["--xml=yes", "prog"]).contains("--xml-file"));
    }

    #[test]
    fn file_names_expand_pid_and_environment() {
        std::env::set_var("FP_TEST_DIR", "/tmp/x");
        assert_eq!(
            expand_file_name(Path::new("%q{FP_TEST_DIR}/vg.%p.log"), 42).unwrap(),
            PathBuf::from("/tmp/x/vg.42.log")
        );
        assert_eq!(
            expand_file_name(Path::new("a%%b"), 1).unwrap(),
            PathBuf::from("a%b")
        );
        assert!(expand_file_name(Path::new("%q{FP_SURELY_UNSET_VAR}"), 1).is_err());
        assert!(expand_file_name(Path::new("%z"), 1).is_err());
    }
}
