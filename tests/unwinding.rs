//! The unwinder's per-thread memo (crates/shim/src/unwind.rs): a walk that meets the last
//! walk's frames, unchanged, takes the rest of the stack from the memo. With
//! `FENCEPOST_UNWIND=check` the shim walks every stack a second time without the memo,
//! compares the two, and prints the counts at exit; these tests run programs whose stacks
//! change shape all the time (recursion, alloca frames, libc callbacks, longjmp, threads,
//! C++ at -O2, CPython) that way, and check that the memo was used and never differed.
//! The same mode also compares every walk that starts at an entry point's caller (as the
//! entry trampolines make it) with a walk through the shim's own frames.

mod support;

use support::*;

/// The counts of one process's `fencepost: unwind check:` line.
#[derive(Debug)]
struct Check {
    compared: u64,
    differed: u64,
    replayed: u64,
    /// Walks handed to libgcc at a frame whose unwind rule the walker cannot express.
    handed: u64,
}

fn checks(stderr: &str) -> Vec<Check> {
    let number_before = |line: &str, words: &str| -> u64 {
        let end = line
            .find(words)
            .unwrap_or_else(|| panic!("{words:?} in {line}"));
        let start = line[..end].trim_end().rfind(' ').map_or(0, |i| i + 1);
        line[start..end].trim().parse().expect("a count")
    };
    stderr
        .lines()
        .filter(|l| l.starts_with("fencepost: unwind check: ") && l.contains("walks compared"))
        .map(|l| {
            let l = l.trim_start_matches("fencepost: unwind check: ");
            Check {
                compared: number_before(l, " walks compared"),
                differed: number_before(l, " differed"),
                replayed: number_before(l, " finished from the memo"),
                handed: number_before(l, " handed to libgcc"),
            }
        })
        .collect()
}

/// Runs `prog` under `fencepost run [options]` with the given unwinder mode.
fn run_with_unwinder(
    test: &str,
    unwind: &str,
    options: &[&str],
    prog: &std::path::Path,
    args: &[&str],
) -> FencepostRun {
    run_fencepost_env(test, options, prog, args, &[("FENCEPOST_UNWIND", unwind)])
}

/// Every walk of the run was compared, none differed, and most finished from the memo.
fn assert_memo_agrees(run: &FencepostRun, min_walks: u64) {
    let found = checks(&run.stderr);
    assert!(!found.is_empty(), "no unwind check line\n{}", run.stderr);
    assert!(
        !run.stderr.contains("unwind check: the"),
        "a walk differed:\n{}",
        run.stderr
    );
    let compared: u64 = found.iter().map(|c| c.compared).sum();
    let replayed: u64 = found.iter().map(|c| c.replayed).sum();
    assert!(found.iter().all(|c| c.differed == 0), "{found:?}");
    assert!(compared >= min_walks, "{found:?}");
    if min_walks >= 1_000 {
        assert!(
            replayed * 2 > compared,
            "the memo should finish most walks: {found:?}"
        );
    }
}

fn leak_functions(report: &Report) -> Vec<String> {
    let leaks = leaks_of_kind(report, "definite");
    assert_eq!(leaks.len(), 1, "{}", report.pretty());
    assert_eq!((leaks[0].bytes, leaks[0].blocks), (77, 1));
    leaks[0]
        .stack
        .iter()
        .filter_map(|f| f.function.clone())
        .collect()
}

#[test]
fn memo_agrees_with_plain_walks_on_changing_stacks() {
    for (output, mode) in [
        ("unwind_mix", "--mode=guard"),
        ("unwind_mix", "--mode=fast"),
        ("unwind_mix_O2", "--mode=guard"),
        ("unwind_mix_O2", "--mode=fast"),
    ] {
        let test = format!("memo_{output}_{}", &mode[7..]);
        let run = run_with_unwinder(&test, "check", &[mode], &prog(output), &["40"]);
        assert_eq!(run.code(), 0, "{}", run.stderr);
        assert_eq!(run.stdout, "done 1\n");
        assert_memo_agrees(&run, 10_000);
        assert!(run.report.errors().is_empty(), "{}", run.report.pretty());
        let functions = leak_functions(&run.report);
        assert_eq!(functions.first().map(String::as_str), Some("grab"));
        assert!(functions.iter().any(|f| f == "main"), "{functions:?}");
        if output == "unwind_mix" {
            // -O0: every level of the recursion is a frame of its own.
            let levels = functions.iter().filter(|f| *f == "leak_here").count();
            assert_eq!(levels, 6, "{functions:?}");
        }
        assert_books_balance(&run.report);
    }
}

#[test]
fn non_pie_program_is_walked_without_libgcc() {
    // A non-PIE executable whose segments leave a gap between them (Debian's node is one):
    // glibc's `_dl_find_object` then gives each segment as a span of its own, so the span of
    // a pc in the text does not hold the `.eh_frame_hdr`, which lies in a read-only segment
    // after it. The walker finds that segment from the program headers; it used to hand
    // every such walk to libgcc, which is right but slow (node started in 2 s under fast
    // mode, 0.36 s now).
    for (output, handed_at_most) in [("unwind_mix_nopie", 0), ("unwind_mix", 0)] {
        let run = run_with_unwinder(
            &format!("handed_{output}"),
            "check",
            &["--mode=fast"],
            &prog(output),
            &["40"],
        );
        assert_eq!(
            (run.code(), run.stdout.as_str()),
            (0, "done 1\n"),
            "{}",
            run.stderr
        );
        assert_memo_agrees(&run, 10_000);
        let handed: u64 = checks(&run.stderr).iter().map(|c| c.handed).sum();
        assert!(handed <= handed_at_most, "{output}: {}", run.stderr);
        let functions = leak_functions(&run.report);
        assert_eq!(functions.first().map(String::as_str), Some("grab"));
        assert_eq!(
            functions.iter().filter(|f| *f == "leak_here").count(),
            6,
            "{output}: {functions:?}"
        );
        assert!(functions.iter().any(|f| f == "main"), "{functions:?}");
    }
}

#[test]
fn memo_and_libgcc_give_the_same_stacks() {
    // Both walks start at the entry point's caller: with four frames kept, a libgcc walk
    // that spent its room on the shim's own frames would come out shorter.
    for (output, depth) in [
        ("unwind_mix", "--num-callers=24"),
        ("unwind_mix_O2", "--num-callers=24"),
        ("unwind_mix", "--num-callers=4"),
    ] {
        let run = |unwind: &str| {
            let test = format!("stacks_{unwind}_{output}_{}", &depth[14..]);
            let run = run_with_unwinder(
                &test,
                unwind,
                &["--mode=fast", depth],
                &prog(output),
                &["20"],
            );
            assert_eq!(run.code(), 0, "{}", run.stderr);
            run
        };
        let (memo, libgcc) = (run("cfi"), run("libgcc"));
        let lines = |r: &Report| -> Vec<(Option<String>, Option<u32>)> {
            let leaks = leaks_of_kind(r, "definite");
            assert_eq!(leaks.len(), 1, "{}", r.pretty());
            leaks[0]
                .stack
                .iter()
                .map(|f| (f.function.clone(), f.line))
                .collect()
        };
        let memo_lines = lines(&memo.report);
        if depth == "--num-callers=4" {
            assert_eq!(memo_lines.len(), 4, "{memo_lines:?}");
        }
        assert_eq!(memo_lines, lines(&libgcc.report));
    }
}

#[test]
fn memo_agrees_on_cxx_threads_and_python() {
    let cxx = run_with_unwinder(
        "memo_vector_reserve_O2",
        "check",
        &["--mode=fast"],
        &prog("vector_reserve_O2"),
        &[],
    );
    assert_eq!(cxx.code(), 0, "{}", cxx.stderr);
    assert_memo_agrees(&cxx, 3);

    // Exceptions thrown out of the shim's operator new, then more allocations.
    let throws = run_with_unwinder(
        "memo_new_failure",
        "check",
        &["--mode=guard"],
        &prog("new_failure"),
        &[],
    );
    assert_eq!(throws.code(), 0, "{}", throws.stderr);
    assert_eq!(throws.stdout, "caught 1 2 null 2\n");
    assert_memo_agrees(&throws, 3);

    let threads = run_with_unwinder(
        "memo_threads_stress",
        "check",
        &["--mode=fast"],
        &prog("threads_stress"),
        &[],
    );
    assert_eq!(threads.code(), 0, "{}", threads.stderr);
    assert_memo_agrees(&threads, 1_000);
    assert_books_balance(&threads.report);

    // CPython: deep interpreter stacks that differ at every level.
    let script = "import json\n\
                  def nest(n):\n    return [nest(n - 1), {'k': str(n)}] if n else []\n\
                  data = [nest(i % 30) for i in range(300)]\n\
                  print(len(json.dumps(data)))\n";
    let python = run_with_unwinder(
        "memo_python3",
        "check",
        &["--mode=fast"],
        std::path::Path::new("/usr/bin/python3"),
        &["-I", "-c", script],
    );
    assert_eq!(python.code(), 0, "{}", python.stderr);
    assert!(!python.stdout.trim().is_empty());
    assert_memo_agrees(&python, 1_000);
}
