//! Bad frees: double free, free of a stack address, free into the middle of a block,
//! and `delete` of `new[]`. Each is reported with its kind, line and block, and the
//! program runs on.

mod support;

use support::report::user_line;
use support::*;

fn the_one_error(report: &Report) -> ReportedError {
    let errors = report.errors();
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one error\n{}",
        report.pretty()
    );
    errors.into_iter().next().unwrap()
}

#[test]
fn double_free_is_reported_with_alloc_and_free_stacks() {
    let run = run_fencepost("double_free", &[], &prog("double_free"), &[]);
    assert_eq!(
        run.code(),
        0,
        "the program runs on after the double free\n{}",
        run.stderr
    );
    assert_eq!(run.stdout, "freed twice\nstill running\n");
    let error = the_one_error(&run.report);
    assert_eq!(error.kind, "double-free");
    let at = |m| {
        Some((
            "double_free.c".to_owned(),
            marker_line("c/double_free.c", m),
        ))
    };
    assert_eq!(
        user_line(&error.stack, &["double_free.c"]),
        at("second_free")
    );
    assert_eq!(
        user_line(&error.alloc_stack, &["double_free.c"]),
        at("alloc")
    );
    assert_eq!(
        user_line(&error.free_stack, &["double_free.c"]),
        at("first_free")
    );
    let block = error.block.expect("double free names the block");
    assert_eq!((block.size, block.offset), (32, 0));
    assert_no_loss_records(&run.report);
    assert_books_balance(&run.report);
}

#[test]
fn free_of_a_stack_address_is_an_invalid_free() {
    let run = run_fencepost("free_stack", &[], &prog("free_stack"), &[]);
    assert_eq!(
        run.code(),
        0,
        "the pointer is not passed to glibc; the program runs on\n{}",
        run.stderr
    );
    assert_eq!(run.stdout, "still running 4\n");
    let error = the_one_error(&run.report);
    assert_eq!(error.kind, "invalid-free");
    assert_eq!(
        user_line(&error.stack, &["free_stack.c"]),
        Some((
            "free_stack.c".to_owned(),
            marker_line("c/free_stack.c", "bad_free")
        ))
    );
    assert!(
        error.block.is_none(),
        "no heap block contains a stack address: {:?}",
        error.block
    );
    assert_no_loss_records(&run.report);
    assert_books_balance(&run.report);
}

#[test]
fn free_into_the_middle_of_a_block_is_an_invalid_free_with_offset() {
    let run = run_fencepost("free_middle", &[], &prog("free_middle"), &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr);
    assert_eq!(run.stdout, "still running\n");
    let error = the_one_error(&run.report);
    assert_eq!(error.kind, "invalid-free");
    let at = |m| {
        Some((
            "free_middle.c".to_owned(),
            marker_line("c/free_middle.c", m),
        ))
    };
    assert_eq!(user_line(&error.stack, &["free_middle.c"]), at("bad_free"));
    assert_eq!(
        user_line(&error.alloc_stack, &["free_middle.c"]),
        at("alloc")
    );
    let block = error.block.expect("the block containing the pointer");
    assert_eq!((block.size, block.offset), (64, 16));
    // The bad free was ignored and the good one released the block.
    assert_no_loss_records(&run.report);
    assert_books_balance(&run.report);
}

#[test]
fn delete_of_new_array_is_a_mismatched_free() {
    let run = run_fencepost("delete_array", &[], &prog("delete_array"), &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let error = the_one_error(&run.report);
    assert_eq!(error.kind, "mismatched-free");
    let at = |m| {
        Some((
            "delete_array.cpp".to_owned(),
            marker_line("cpp/delete_array.cpp", m),
        ))
    };
    assert_eq!(
        user_line(&error.stack, &["delete_array.cpp"]),
        at("bad_delete")
    );
    assert_eq!(
        user_line(&error.alloc_stack, &["delete_array.cpp"]),
        at("alloc")
    );
    let block = error.block.expect("the new[] block");
    assert_eq!((block.size, block.offset), (40, 0));
    // Like memcheck, the block is released anyway: no leak.
    assert_no_loss_records(&run.report);
    assert_books_balance(&run.report);
}

#[test]
fn freelist_vol_holds_freed_blocks_back_as_memchecks_does() {
    // Fast and sampled modes keep 20,000,000 bytes of freed blocks from reuse, as memcheck
    // does: a double free after 1 MB of other frees is still one, and a new block does not
    // take the freed block's address, where a dangling pointer would make it reachable.
    let prog = prog("freelist_vol");
    let files = ["freelist_vol.c"];
    let at = |m| {
        Some((
            "freelist_vol.c".to_owned(),
            marker_line("c/freelist_vol.c", m),
        ))
    };
    let memcheck = support::valgrind::run_valgrind("freelist_vol_vg", &prog, &[]);
    for mode in ["--mode=fast", "--mode=sampled"] {
        let run = run_fencepost("freelist_vol", &[mode], &prog, &[]);
        assert_eq!(
            (run.code(), run.stdout.as_str()),
            (0, "done\n"),
            "{}",
            run.stderr
        );
        let error = the_one_error(&run.report);
        assert_eq!(error.kind, "double-free", "{mode}");
        assert_eq!(user_line(&error.stack, &files), at("second_free"));
        assert_eq!(user_line(&error.alloc_stack, &files), at("first_alloc"));
        let lost = leaks_of_kind(&run.report, "definite");
        assert_eq!(lost.len(), 1, "{mode}\n{}", run.report.pretty());
        assert_eq!((lost[0].bytes, lost[0].blocks), (200, 1));
        assert_eq!(lost[0].user_line(&files), at("lost"));
        support::valgrind::assert_losses_and_free_errors_agree(&run.report, &memcheck, &files);
        assert_books_balance(&run.report);
    }

    // With 64 KiB, the freed block's address goes back to glibc and to the new block: the
    // dangling pointer holds it, and frees it. Nothing is found, which is the price of a
    // small volume.
    let run = run_fencepost(
        "freelist_vol_small",
        &["--mode=fast", "--freelist-vol=65536"],
        &prog,
        &[],
    );
    assert_eq!(
        (run.code(), run.stdout.as_str()),
        (0, "done\n"),
        "{}",
        run.stderr
    );
    assert!(run.report.errors().is_empty(), "{}", run.report.pretty());
    assert_no_loss_records(&run.report);
    assert_books_balance(&run.report);
}

/// These programs free what they allocate: no definite, indirect or possible leak.
fn assert_no_loss_records(report: &Report) {
    let lost: Vec<_> = report
        .leaks()
        .into_iter()
        .filter(|l| matches!(l.kind.as_str(), "definite" | "indirect" | "possible"))
        .collect();
    assert!(lost.is_empty(), "expected no leak, got {lost:#?}");
}
