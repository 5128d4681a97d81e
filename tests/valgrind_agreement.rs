//! The valgrind second opinion: every test program (but one, below) is run under both
//! fencepost and memcheck, and the two must agree on the definite, indirect and
//! possible loss records and on the free errors (see tests/support/valgrind.rs for what
//! is compared and why reachable blocks are not).
//!
//! Not compared: sigkill_wait. It is killed with SIGKILL, which gives memcheck no leak
//! check at all (and the moment of the kill differs between the tools), so there is
//! nothing to agree on; exit_status.rs checks fencepost's `unreleased` records alone.
//!
//! Each program runs in guard mode and in sampled mode (`--mode=sampled`), against one
//! memcheck run.

mod support;

use support::valgrind::{assert_agrees_with_memcheck, block_size_in, run_valgrind};
use support::*;

/// Runs `program` under both tools and compares. `files` are the program's own source
/// base names; `has_findings` says memcheck must find something (so a broken XML
/// reader cannot make "both found nothing" pass).
fn agree(name: &str, program: &str, args: &[&str], files: &[&str], has_findings: bool) {
    let prog = prog(program);
    let memcheck = run_valgrind(name, &prog, args);
    let found = !memcheck.lost_keys(files).is_empty() || !memcheck.free_keys(files).is_empty();
    assert_eq!(
        found, has_findings,
        "memcheck findings on {program}: {:#?}",
        memcheck.errors
    );
    // Guard mode, and sampled mode, whose blocks are mostly fast mode's: the exit scan
    // must find the same losses among both kinds of block.
    for (mode, options) in [("guard", &[][..]), ("sampled", &["--mode=sampled"][..])] {
        let run = run_fencepost(&format!("{name}_{mode}"), options, &prog, args);
        // Both ran the program to the same end (a program cut short proves nothing).
        assert_eq!(
            memcheck.status.code().map(i64::from),
            run.report.exit().ok(),
            "exit status under memcheck and fencepost ({mode} mode)"
        );
        assert_agrees_with_memcheck(&run.report, &memcheck, files);
    }
}

#[test]
fn definite_leak() {
    agree(
        "vg_leak_definite",
        "leak_definite",
        &[],
        &["leak_definite.c"],
        true,
    );
}

#[test]
fn threads_realloc() {
    agree(
        "vg_threads_realloc",
        "threads_realloc",
        &[],
        &["threads_realloc.c"],
        true,
    );
}

#[test]
fn lost_list() {
    agree("vg_leak_list", "leak_list", &[], &["leak_list.c"], true);
}

#[test]
fn reachable_global() {
    agree(
        "vg_reachable_global",
        "reachable_global",
        &[],
        &["reachable_global.c"],
        false,
    );
}

#[test]
fn possible_leak() {
    agree(
        "vg_possible_leak",
        "possible_leak",
        &[],
        &["possible_leak.c"],
        true,
    );
}

#[test]
fn threads_leak() {
    agree(
        "vg_threads_leak",
        "threads_leak",
        &[],
        &["threads_leak.c"],
        true,
    );
}

#[test]
fn threads_stress() {
    agree(
        "vg_threads_stress",
        "threads_stress",
        &[],
        &["threads_stress.c"],
        true,
    );
}

/// Threads that may be moved to one CPU while they churn (`--one-cpu`): the same leak.
#[test]
fn threads_one_cpu() {
    agree(
        "vg_threads_one_cpu",
        "threads_one_cpu",
        &["400", "0"],
        &["threads_one_cpu.c"],
        true,
    );
}

#[test]
fn many_live() {
    agree("vg_many_live", "many_live", &[], &["many_live.c"], true);
}

#[test]
fn arena_boundary() {
    agree(
        "vg_arena_boundary",
        "arena_boundary",
        &[],
        &["arena_boundary.c"],
        true,
    );
}

#[test]
fn beside_shim() {
    agree(
        "vg_beside_shim",
        "beside_shim",
        &[],
        &["beside_shim.c"],
        false,
    );
}

#[test]
fn fork_leak() {
    agree("vg_fork_leak", "fork_leak", &[], &["fork_leak.c"], true);
}

#[test]
fn dlopen_leak() {
    let lib = prog("libleaky.so");
    // memcheck runs with --keep-debuginfo=yes, so it too names libleaky.c after dlclose.
    agree(
        "vg_dlopen_leak",
        "dlopen_leak",
        &[lib.to_str().unwrap()],
        &["dlopen_leak.c", "libleaky.c"],
        true,
    );
}

#[test]
fn geometry_clone() {
    agree(
        "vg_geometry_clone",
        "geometry_clone",
        &[],
        &["geometry_clone.cpp"],
        true,
    );
}

#[test]
fn mycrate() {
    agree("vg_mycrate", "mycrate", &[], &["mycrate.rs"], true);
}

#[test]
fn vector_reserve_o2() {
    agree(
        "vg_vector_reserve_O2",
        "vector_reserve_O2",
        &[],
        &["vector_reserve_O2.cpp"],
        true,
    );
}

#[test]
fn double_free() {
    agree(
        "vg_double_free",
        "double_free",
        &[],
        &["double_free.c"],
        true,
    );
}

#[test]
fn free_stack() {
    agree("vg_free_stack", "free_stack", &[], &["free_stack.c"], true);
}

#[test]
fn free_middle() {
    agree(
        "vg_free_middle",
        "free_middle",
        &[],
        &["free_middle.c"],
        true,
    );
}

#[test]
fn delete_array() {
    agree(
        "vg_delete_array",
        "delete_array",
        &[],
        &["delete_array.cpp"],
        true,
    );
}

#[test]
fn clean_c() {
    // valgrind 3.19 aborts the program at pvalloc, which it does not implement.
    agree("vg_clean_c", "clean", &["no-pvalloc"], &["clean.c"], false);
}

#[test]
fn clean_cpp() {
    agree("vg_clean_cpp", "clean_cpp", &[], &["clean.cpp"], false);
}

#[test]
fn memcheck_block_sizes_are_read_from_auxwhat() {
    assert_eq!(
        block_size_in("Address 0x1 is 16 bytes inside a block of size 64 alloc'd"),
        Some(64)
    );
    assert_eq!(
        block_size_in("Address 0x1 is 0 bytes inside a block of size 4,000 free'd"),
        Some(4000)
    );
    assert_eq!(
        block_size_in("Address 0x1fff000620 is on thread 1's stack"),
        None
    );
}
