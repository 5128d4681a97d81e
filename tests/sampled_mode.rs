//! Sampled mode (`--mode=sampled`): each call site's first blocks and then one block in
//! `--sample-rate` go against a guard page, the others are fast mode's. A call site reached
//! once has its errors found at the instruction, as in guard mode and as memcheck finds
//! them; what it leaves unguarded is found as fast mode finds it (a write past a block, at
//! free) or not at all (a read past it, a use after free), and the report says how many
//! blocks were guarded. Losses are the same as in every mode.

mod support;

use fencepost_analyzer::text::thousands;
use support::valgrind::{assert_accesses_agree, run_valgrind};
use support::*;

const SRC: &str = "c/sampled_sites.c";
const FILES: &[&str] = &["sampled_sites.c"];
const STDOUT: &str = "label 11, stale 1, hot 200000, grown 2000\n";

fn at(marker: &str) -> Option<(String, u32)> {
    Some(("sampled_sites.c".to_owned(), marker_line(SRC, marker)))
}

/// The one loss: block 100,000 of the hot loop, 40 bytes, definitely lost.
fn assert_the_hot_leak(report: &Report) {
    let leaks = report.leaks();
    assert_eq!(leaks.len(), 1, "one loss record\n{}", report.pretty());
    let leak = &leaks[0];
    assert_eq!(
        (leak.kind.as_str(), leak.bytes, leak.blocks),
        ("definite", 40, 1),
        "{}",
        report.pretty()
    );
    assert_eq!(leak.user_line(FILES), at("hot_alloc"));
}

/// Blocks the run guarded, from `summary.guard`, with the sampling it says it used.
fn guarded(report: &Report) -> (u64, serde_json::Value) {
    let guard = &report.json["summary"]["guard"];
    let n = guard["guarded"]
        .as_u64()
        .unwrap_or_else(|| panic!("summary.guard.guarded\n{}", report.pretty()));
    (n, guard["sample"].clone())
}

#[test]
fn a_site_reached_once_has_its_errors_found_at_the_instruction() {
    let prog = prog("sampled_sites");
    let run = run_fencepost("sampled_once", &["--mode=sampled"], &prog, &[]);
    assert_eq!(run.code(), 0, "the program runs on\n{}", run.stderr);
    assert_eq!(run.stdout, STDOUT);
    let errors = run.report.errors();
    assert_eq!(errors.len(), 2, "{}", run.report.pretty());

    let overflow = &errors[0];
    assert_eq!(overflow.kind, "heap-buffer-overflow");
    assert_eq!(overflow.found_at, None, "caught at the instruction");
    let access = overflow.access.as_ref().expect("the access");
    assert_eq!((access.op.as_str(), access.size), ("write", 1));
    let block = overflow.block.as_ref().expect("the block");
    assert_eq!((block.size, block.offset), (11, 11));
    assert_eq!(overflow.user_line(FILES), at("once_write"));
    assert_eq!(overflow.alloc_line(FILES), at("once_alloc"));

    let stale = &errors[1];
    assert_eq!(stale.kind, "use-after-free");
    let access = stale.access.as_ref().expect("the access");
    assert_eq!((access.op.as_str(), access.size), ("read", 4));
    let block = stale.block.as_ref().expect("the block");
    assert_eq!((block.size, block.offset), (16, 4));
    assert_eq!(stale.user_line(FILES), at("uaf_read"));
    assert_eq!(stale.alloc_line(FILES), at("uaf_alloc"));
    // Free stacks are off by default in sampled mode, but kept for guarded blocks.
    assert_eq!(stale.free_line(FILES), at("uaf_free"));

    assert_the_hot_leak(&run.report);
    assert_books_balance(&run.report);
    // 200,000 hot blocks, 2,000 reallocs, two once-only blocks, stdout's buffer, and what
    // the C library allocates for itself.
    let allocations = run.report.summary_u64("allocations");
    assert!((202_003..202_100).contains(&allocations), "{allocations}");

    // Four sites' first blocks and about 1 in 1,000 of the rest: about 210.
    let (n, sample) = guarded(&run.report);
    assert_eq!(sample, serde_json::json!({"first": 4, "rate": 1000}));
    assert!((100..=400).contains(&n), "{n} blocks guarded");
    assert!(
        run.stderr.contains(&format!(
            "\nsampled mode: {n} of {} blocks were guarded (each call site's first 4, \
             then about 1 in 1,000); writes past the others are found when they are freed, \
             reads past them and their use after free are not found\n",
            thousands(allocations)
        )),
        "{}",
        run.stderr
    );

    // The same blocks on every run of a single-threaded program.
    // The HTML report says it too.
    let html = scratch_dir("sampled_once_html").join("report.html");
    let html_arg = html.to_str().unwrap();
    let again = run_fencepost(
        "sampled_once_again",
        &["--mode=sampled", "--html", html_arg],
        &prog,
        &[],
    );
    assert_eq!(guarded(&again.report).0, n, "{}", again.stderr);
    let page = std::fs::read_to_string(&html).expect("the HTML report");
    assert!(
        page.contains(&format!(
            "<p class=\"note\">sampled mode: {n} of {} blocks were guarded",
            thousands(allocations)
        )),
        "no sampled-mode note in {}",
        html.display()
    );

    // memcheck's second opinion: the same two bad accesses, field by field, and the same
    // loss.
    let memcheck = run_valgrind("sampled_once_vg", &prog, &[]);
    assert_accesses_agree(&run.report, &memcheck, FILES);
}

#[test]
fn unguarded_blocks_are_checked_as_in_fast_mode() {
    // Nothing sampled: every block is fast mode's.
    let run = run_fencepost(
        "sampled_none",
        &[
            "--mode=sampled",
            "--sample-first=0",
            "--sample-rate=1000000000",
        ],
        &prog("sampled_sites"),
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    assert_eq!(run.stdout, STDOUT);
    let errors = run.report.errors();
    assert_eq!(
        errors.len(),
        1,
        "only the overflow, at free; the use after free goes unseen\n{}",
        run.report.pretty()
    );
    let overflow = &errors[0];
    assert_eq!(overflow.kind, "heap-buffer-overflow");
    assert_eq!(overflow.found_at.as_deref(), Some("free"));
    let block = overflow.block.as_ref().expect("the block");
    assert_eq!((block.size, block.offset), (11, 11));
    assert_eq!(overflow.user_line(FILES), at("once_free"));
    assert_eq!(overflow.alloc_line(FILES), at("once_alloc"));
    assert_the_hot_leak(&run.report);
    assert_books_balance(&run.report);
    let (n, sample) = guarded(&run.report);
    assert_eq!(n, 0);
    assert_eq!(
        sample,
        serde_json::json!({"first": 0, "rate": 1_000_000_000})
    );
}

#[test]
fn every_site_first_and_every_block_by_rate() {
    // A rate of 1 guards every block: guard mode's findings, through sampled mode's path.
    let run = run_fencepost(
        "sampled_all",
        &["--mode=sampled", "--sample-rate=1"],
        &prog("sampled_sites"),
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let kinds: Vec<String> = run.report.errors().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["heap-buffer-overflow", "use-after-free"]);
    assert_the_hot_leak(&run.report);
    assert_eq!(
        guarded(&run.report).0,
        run.report.summary_u64("allocations")
    );
}
