//! Building the programs of `testprogs/` with gcc, g++ and rustc, once per test binary.
//!
//! Each test binary gets its own directory `target/testprogs/<binary>-<pid>/`; inside it
//! every program is built at most once (a `OnceLock` per program), however many test
//! threads ask for it at the same time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use super::{repo_root, target_dir};

/// How one test program is built.
struct Recipe {
    /// The file name of the output (a program, or a shared library).
    output: &'static str,
    /// The source, relative to `testprogs/`.
    source: String,
    /// The compiler and its flags; `-g` everywhere: the tests check file and line.
    compiler: &'static str,
    flags: &'static [&'static str],
}

const C_FLAGS: &[&str] = &["-g", "-O0", "-pthread"];
const CXX_FLAGS: &[&str] = &["-g", "-O0", "-std=c++17", "-pthread"];

fn recipes() -> Vec<Recipe> {
    let c = |name: &'static str| Recipe {
        output: name,
        source: format!("c/{name}.c"),
        compiler: "gcc",
        flags: C_FLAGS,
    };
    let cxx = |name: &'static str| Recipe {
        output: name,
        source: format!("cpp/{name}.cpp"),
        compiler: "g++",
        flags: CXX_FLAGS,
    };
    vec![
        c("leak_definite"),
        c("leak_list"),
        c("reachable_global"),
        c("possible_leak"),
        c("threads_leak"),
        c("exited_threads"),
        // -O2: the block's only pointer goes straight from malloc into a register.
        Recipe {
            output: "blocked_read",
            source: "c/blocked_read.c".into(),
            compiler: "gcc",
            flags: &["-g", "-O2", "-pthread"],
        },
        c("threads_stress"),
        // Issue 6 (reliability): real-program findings, processes, threads and signals.
        c("flex_member"),
        c("fork_threads"),
        c("vfork_exec"),
        c("spawn_child"),
        c("system_call"),
        c("exec_self"),
        c("daemon_double_fork"),
        c("threads_cross_free"),
        c("threads_realloc"),
        c("threads_one_cpu"),
        c("many_live"),
        c("sampled_sites"),
        c("freelist_vol"),
        c("arena_boundary"),
        c("beside_shim"),
        c("tls_destructors"),
        cxx("thread_local_dtor"),
        c("ends"),
        c("outlive_analyzer"),
        c("sigkill_wait"),
        c("fork_leak"),
        c("fork_quarantine"),
        c("dlopen_leak"),
        Recipe {
            output: "libleaky.so",
            source: "c/libleaky.c".into(),
            compiler: "gcc",
            flags: &["-g", "-O0", "-fPIC", "-shared"],
        },
        c("double_free"),
        c("free_stack"),
        c("free_middle"),
        c("clean"),
        c("null_deref"),
        c("abort_live"),
        c("exec_true"),
        // Statically linked (no PT_INTERP): LD_PRELOAD cannot reach it, so fencepost must
        // refuse it. Needs glibc's static libc.a (libc6-dev).
        Recipe {
            output: "clean_static",
            source: "c/clean.c".into(),
            compiler: "gcc",
            flags: &["-g", "-O0", "-pthread", "-static"],
        },
        // Guard mode: one bad access (or crash, or recovery) each; see tests/guard_errors.rs.
        c("overrun_read"),
        c("int_array_write"),
        c("strcpy_overflow"),
        c("realloc_shrink"),
        c("malloc_zero"),
        c("use_after_free"),
        c("underflow"),
        c("underflow_wide"),
        c("underflow_kept"),
        c("own_segv_handler"),
        c("huge_alloc"),
        c("sse_aligned"),
        c("past_budget"),
        // Suppressions and baselines (tests/suppressions_and_baselines.rs).
        c("known_findings"),
        cxx("geometry_clone"),
        cxx("delete_array"),
        // operator new failing: bad_alloc, nothrow, the new-handler (tests/leak_reports.rs).
        cxx("new_failure"),
        Recipe {
            output: "clean_cpp",
            source: "cpp/clean.cpp".into(),
            compiler: "g++",
            flags: CXX_FLAGS,
        },
        // Optimised, without frame pointers: only a CFI unwinder gets back to main.
        Recipe {
            output: "vector_reserve_O2",
            source: "cpp/vector_reserve_O2.cpp".into(),
            compiler: "g++",
            flags: &["-g", "-O2", "-fomit-frame-pointer", "-std=c++17"],
        },
        // The unwinder's memo (tests/unwinding.rs): rbp-based frames at -O0, none at -O2.
        c("unwind_mix"),
        // The exit scan around untouched pages of big blocks (tests/leak_reports.rs).
        c("sparse_blocks"),
        // Runs a command with process_madvise refused (tests/guard_errors.rs).
        Recipe {
            output: "deny_process_madvise",
            source: "c/deny_process_madvise.c".into(),
            compiler: "gcc",
            flags: &["-O2"],
        },
        // Not position-independent, its text a megabyte past its other code: segments with
        // a gap between them, as node's have (tests/unwinding.rs).
        Recipe {
            output: "unwind_mix_nopie",
            source: "c/unwind_mix.c".into(),
            compiler: "gcc",
            flags: &[
                "-g",
                "-O0",
                "-pthread",
                "-no-pie",
                "-Wl,--section-start=.text=0x500000",
            ],
        },
        Recipe {
            output: "unwind_mix_O2",
            source: "c/unwind_mix.c".into(),
            compiler: "gcc",
            flags: &["-g", "-O2", "-pthread"],
        },
        Recipe {
            output: "hash_table",
            source: "rust/hash_table.rs".into(),
            compiler: "rustc",
            flags: &["--crate-name", "hash_table", "-g", "-C", "opt-level=0"],
        },
        Recipe {
            output: "mycrate",
            source: "rust/mycrate.rs".into(),
            compiler: "rustc",
            flags: &["--crate-name", "mycrate", "-g", "-C", "opt-level=0"],
        },
    ]
}

/// `testprogs/` in the repository.
pub fn testprog_dir() -> PathBuf {
    repo_root().join("testprogs")
}

/// The absolute path of a source in `testprogs/` (`"c/leak_list.c"`).
pub fn source_path(source: &str) -> PathBuf {
    testprog_dir().join(source)
}

/// This test binary's build directory, `target/testprogs/<binary>-<pid>/`, created
/// fresh on first use. Directories of earlier runs of the same binary whose process is
/// gone are removed, so they do not pile up.
pub fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        let stem = exe
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("test")
            .to_owned();
        let base = target_dir().join("testprogs");
        if let Ok(entries) = std::fs::read_dir(&base) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(pid) = name.strip_prefix(&format!("{stem}-")) else {
                    continue;
                };
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = base.join(format!("{stem}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create testprogs build dir");
        dir
    })
}

/// The built program (or library) named `output` in the recipe table, building it on
/// first use. Panics with the compiler's output if the build fails.
pub fn prog(output: &str) -> PathBuf {
    type Slot = Arc<OnceLock<Result<PathBuf, String>>>;
    static SLOTS: OnceLock<Mutex<HashMap<String, Slot>>> = OnceLock::new();
    let slot: Slot = {
        let mut slots = SLOTS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        slots.entry(output.to_owned()).or_default().clone()
    };
    // Built outside the table's lock: other programs can build at the same time, and a
    // second thread asking for this one waits in get_or_init.
    match slot.get_or_init(|| build(output)) {
        Ok(path) => path.clone(),
        Err(message) => panic!("{message}"),
    }
}

fn build(output: &str) -> Result<PathBuf, String> {
    let recipe = recipes()
        .into_iter()
        .find(|r| r.output == output)
        .ok_or_else(|| format!("no recipe for test program {output:?}"))?;
    let out = run_dir().join(recipe.output);
    let mut cmd = Command::new(recipe.compiler);
    cmd.args(recipe.flags)
        .arg("-o")
        .arg(&out)
        .arg(source_path(&recipe.source));
    if recipe.compiler == "gcc" && !recipe.output.ends_with(".so") {
        cmd.arg("-ldl");
    }
    let result = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e} (is it installed?)", recipe.compiler))?;
    if !result.status.success() {
        return Err(format!(
            "building {} failed: {:?}\n{}{}",
            recipe.source,
            cmd,
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        ));
    }
    Ok(out)
}

/// The line of `source` (relative to `testprogs/`) that carries the marker comment
/// `FP:<marker>`. The tests find lines this way, so editing a program cannot leave a
/// stale line number in a test. Panics unless exactly one line has the marker.
pub fn marker_line(source: &str, marker: &str) -> u32 {
    let path = source_path(source);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let needle = format!("FP:{marker}");
    let hits: Vec<u32> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            // A code line (not the header comment) whose marker is exactly this one.
            line.match_indices(&needle).any(|(at, _)| {
                let rest = &line[at + needle.len()..];
                !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_')
            }) && !is_comment_line(line)
        })
        .map(|(i, _)| i as u32 + 1)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "marker FP:{marker} must be on exactly one code line of {source}, found at {hits:?}"
    );
    hits[0]
}

/// A line of a header comment: `// ...`, or inside a `/* ... */` block, ` * ...` or ` */`
/// (but not a code line such as `*null = 0;`).
fn is_comment_line(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with("//")
        || line.starts_with("/*")
        || line == "*"
        || line.starts_with("* ")
        || line.starts_with("*/")
}
