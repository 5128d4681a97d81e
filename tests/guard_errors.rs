//! Guard mode (the default): bad reads and writes are caught at the faulting instruction
//! — off-by-one overruns, writes past a shrunk or zero-sized block, use after free — and
//! reported with the access (read or write, size), the block (size, offset of the access)
//! and the stacks, each distinct error once with a count; the program then runs on. An
//! underflow is found at free (canaries) by default and at the instruction with
//! `--protect-below`. Crashes that are not heap errors are reported as `fatal-signal`; a
//! program's own SIGSEGV handler keeps working. Also: `--halt-on-error` and `--mode=fast`.

mod support;

use support::report::{innermost_in, user_line};
use support::*;

/// What one bad access must look like in the report. Lines are found by their `FP:`
/// markers in `source`.
struct Expected {
    source: &'static str,
    kind: &'static str,
    op: &'static str,
    size: u64,
    block_size: u64,
    offset: i64,
    /// Marker of the line of the access.
    at: &'static str,
    /// Marker of the line that allocated the block.
    alloc: &'static str,
    /// Marker of the line that freed it (use after free).
    free: Option<&'static str>,
    count: u64,
}

impl Expected {
    fn file(&self) -> &'static str {
        self.source.rsplit('/').next().unwrap()
    }

    fn line(&self, marker: &str) -> Option<(String, u32)> {
        Some((self.file().to_owned(), marker_line(self.source, marker)))
    }
}

/// Asserts every field of `expected` on `error`, with the report in the message.
fn assert_access_error(report: &Report, error: &ReportedError, expected: &Expected) {
    let context = format!("error: {error:#?}\nreport:\n{}", report.pretty());
    let files = [expected.file()];
    assert_eq!(error.kind, expected.kind, "kind\n{context}");
    let access = error
        .access
        .as_ref()
        .unwrap_or_else(|| panic!("a bad access has `access`\n{context}"));
    assert_eq!(
        (access.op.as_str(), access.size),
        (expected.op, expected.size),
        "access.op, access.size\n{context}"
    );
    let block = error
        .block
        .as_ref()
        .unwrap_or_else(|| panic!("a heap error names its `block`\n{context}"));
    assert_eq!(
        (block.size, block.offset),
        (expected.block_size, expected.offset),
        "block.size, block.offset\n{context}"
    );
    assert_eq!(
        access.address as i64 - block.address as i64,
        block.offset,
        "block.offset is access.address - block.address\n{context}"
    );
    assert_eq!(
        error.user_line(&files),
        expected.line(expected.at),
        "the line of the access\n{context}"
    );
    assert_eq!(
        error.alloc_line(&files),
        expected.line(expected.alloc),
        "alloc_stack\n{context}"
    );
    assert_eq!(
        error.free_line(&files),
        expected.free.and_then(|m| expected.line(m)),
        "free_stack\n{context}"
    );
    assert_eq!(error.count, expected.count, "count\n{context}");
    assert_eq!(
        error.found_at, None,
        "caught at the instruction, not at free or exit\n{context}"
    );
}

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

/// These programs free what they allocate: no definite, indirect or possible leak.
fn assert_no_loss_records(report: &Report) {
    let lost: Vec<_> = report
        .leaks()
        .into_iter()
        .filter(|l| matches!(l.kind.as_str(), "definite" | "indirect" | "possible"))
        .collect();
    assert!(lost.is_empty(), "expected no leak, got {lost:#?}");
}

/// The program ran to its end (the single-stepped access did not stop it).
fn assert_ran_on(run: &FencepostRun, stdout: &str) {
    assert_eq!(run.stdout, stdout, "the program's output\n{}", run.stderr);
    assert_eq!(run.code(), 0, "the program runs on\n{}", run.stderr);
    assert_eq!(run.report.exit(), Ok(0));
}

/// testprogs/c/overrun_read.c's one error: `buf[13]` read from a 13-byte block.
const OVERRUN_READ: Expected = Expected {
    source: "c/overrun_read.c",
    kind: "heap-buffer-overflow",
    op: "read",
    size: 1,
    block_size: 13,
    offset: 13,
    at: "bad_read",
    alloc: "alloc",
    free: None,
    count: 1,
};

#[test]
fn off_by_one_read_is_an_overflow_at_the_reading_line() {
    let run = run_fencepost("overrun_read", &[], &prog("overrun_read"), &[]);
    assert_ran_on(&run, "sum done\n");
    let error = the_one_error(&run.report);
    assert_access_error(&run.report, &error, &OVERRUN_READ);
    // The text report says it as memcheck would (docs: issue 3, "The text report").
    assert!(
        run.stderr
            .contains("heap-buffer-overflow: read of 1 byte, 0 bytes after a 13-byte block"),
        "text report headline\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "overrun_read.c:{}",
            marker_line("c/overrun_read.c", "bad_read")
        )),
        "text report names the line\n{}",
        run.stderr
    );
    assert_no_loss_records(&run.report);
    assert_books_balance(&run.report);
}

#[test]
fn int_array_written_one_past_its_end_three_times_is_one_error_counted_three_times() {
    let run = run_fencepost("int_array_write", &[], &prog("int_array_write"), &[]);
    assert_ran_on(&run, "a[9] = 11\n");
    let error = the_one_error(&run.report);
    assert_access_error(
        &run.report,
        &error,
        &Expected {
            source: "c/int_array_write.c",
            kind: "heap-buffer-overflow",
            op: "write",
            size: 4,
            block_size: 40,
            offset: 40,
            at: "bad_write",
            alloc: "alloc",
            free: None,
            count: 3,
        },
    );
    // The access is in fill(), called from main at FP:call.
    let call = marker_line("c/int_array_write.c", "call");
    assert!(
        error
            .stack
            .iter()
            .any(|f| f.file_name() == Some("int_array_write.c")
                && f.line == Some(call)
                && f.function.as_deref() == Some("main")),
        "the stack goes on to main at line {call}: {:#?}",
        error.stack
    );
    assert_eq!(
        innermost_in(&error.stack, &["int_array_write.c"]).and_then(|f| f.function.as_deref()),
        Some("fill")
    );
    assert_eq!(
        run.report.summary_u64("errors"),
        3,
        "summary.errors counts occurrences"
    );
    assert_eq!(run.report.summary_u64("error_contexts"), 1);
    assert_no_loss_records(&run.report);
    assert_books_balance(&run.report);
}

#[test]
fn strcpy_overflow_faults_in_libc_and_the_stack_reaches_the_callers_line() {
    let run = run_fencepost("strcpy_overflow", &[], &prog("strcpy_overflow"), &[]);
    assert_ran_on(&run, "fencepost\n");
    let error = the_one_error(&run.report);
    let context = format!("{error:#?}\n{}", run.report.pretty());
    assert_eq!(error.kind, "heap-buffer-overflow", "{context}");
    let file = "strcpy_overflow.c";
    // The faulting instruction is libc's, not the program's ...
    let innermost = error.stack.first().expect("a stack");
    assert_ne!(
        innermost.file_name(),
        Some(file),
        "the write happens inside strcpy\n{context}"
    );
    // ... and the stack still reaches the user's line.
    let at = marker_line("c/strcpy_overflow.c", "strcpy");
    assert!(
        error
            .stack
            .iter()
            .any(|f| f.file_name() == Some(file) && f.line == Some(at)),
        "some frame is {file}:{at}\n{context}"
    );
    assert_eq!(
        error.alloc_line(&[file]),
        Some((file.to_owned(), marker_line("c/strcpy_overflow.c", "alloc")))
    );
    let access = error.access.as_ref().expect("access");
    let block = error.block.as_ref().expect("block");
    assert_eq!(access.op, "write", "{context}");
    assert_eq!(block.size, 9, "malloc(strlen(\"fencepost\"))\n{context}");
    // glibc's strcpy may store the tail with one wide, overlapping write: whatever its
    // size, the faulting access covers byte 9, the first past the block.
    assert!(
        block.offset <= 9 && 9 < block.offset + access.size as i64,
        "the access [offset, offset + size) covers offset 9\n{context}"
    );
    assert_eq!(access.address as i64 - block.address as i64, block.offset);
    assert_eq!(error.count, 1, "{context}");
    assert_no_loss_records(&run.report);
    assert_books_balance(&run.report);
}

#[test]
fn write_past_a_block_shrunk_by_realloc_is_an_overflow_of_the_new_block() {
    let run = run_fencepost("realloc_shrink", &[], &prog("realloc_shrink"), &[]);
    assert_ran_on(&run, "aaaaaaaaaaaaaaaa\n");
    let error = the_one_error(&run.report);
    assert_access_error(
        &run.report,
        &error,
        &Expected {
            source: "c/realloc_shrink.c",
            kind: "heap-buffer-overflow",
            op: "write",
            size: 1,
            block_size: 16,
            offset: 16,
            at: "bad_write",
            alloc: "realloc",
            free: None,
            count: 1,
        },
    );
    assert_eq!(
        error.block.unwrap().allocated_by.as_deref(),
        Some("realloc"),
        "{}",
        run.report.pretty()
    );
    assert_no_loss_records(&run.report);
    assert_books_balance(&run.report);
}

#[test]
fn write_into_malloc_zero_is_an_overflow_of_a_zero_byte_block() {
    let run = run_fencepost("malloc_zero", &[], &prog("malloc_zero"), &[]);
    assert_ran_on(&run, "still running\n");
    let error = the_one_error(&run.report);
    assert_access_error(
        &run.report,
        &error,
        &Expected {
            source: "c/malloc_zero.c",
            kind: "heap-buffer-overflow",
            op: "write",
            size: 1,
            block_size: 0,
            offset: 0,
            at: "bad_write",
            alloc: "alloc",
            free: None,
            count: 1,
        },
    );
    assert_no_loss_records(&run.report);
    assert_books_balance(&run.report);
}

#[test]
fn read_and_write_after_free_are_reported_with_alloc_and_free_lines() {
    let run = run_fencepost("use_after_free", &[], &prog("use_after_free"), &[]);
    assert_ran_on(&run, "before\nafter read\nafter write\n");
    let errors = run.report.errors();
    assert_eq!(errors.len(), 2, "{}", run.report.pretty());
    assert_access_error(
        &run.report,
        &errors[0],
        &Expected {
            source: "c/use_after_free.c",
            kind: "use-after-free",
            op: "read",
            size: 1,
            block_size: 24,
            offset: 5,
            at: "uaf_read",
            alloc: "alloc_read",
            free: Some("free_read"),
            count: 1,
        },
    );
    assert_access_error(
        &run.report,
        &errors[1],
        &Expected {
            source: "c/use_after_free.c",
            kind: "use-after-free",
            op: "write",
            size: 4,
            block_size: 40,
            offset: 12,
            at: "uaf_write",
            alloc: "alloc_write",
            free: Some("free_write"),
            count: 1,
        },
    );
    assert_no_loss_records(&run.report);
    assert_books_balance(&run.report);
}

#[test]
fn underflow_write_is_found_at_free_by_default() {
    underflow_is_found_at_free("underflow", &[]);
}

/// Fast mode: the byte before the block is the last of its inline header's two canary
/// bytes; the rest of the header is intact, so the report is as precise as guard mode's.
#[test]
fn underflow_write_is_found_at_free_in_fast_mode() {
    underflow_is_found_at_free("underflow_fast", &["--mode=fast"]);
}

fn underflow_is_found_at_free(name: &str, args: &[&str]) {
    let run = run_fencepost(name, args, &prog("underflow"), &[]);
    assert_ran_on(&run, "sixteen bytes..\n");
    let error = the_one_error(&run.report);
    let context = format!("{error:#?}\n{}", run.report.pretty());
    let file = "underflow.c";
    let at = |m| Some((file.to_owned(), marker_line("c/underflow.c", m)));
    assert_eq!(error.kind, "heap-buffer-underflow", "{context}");
    assert_eq!(
        error.found_at.as_deref(),
        Some("free"),
        "the red zone is checked when the block is freed\n{context}"
    );
    let block = error.block.as_ref().expect("block");
    assert_eq!(
        (block.size, block.offset),
        (16, -1),
        "the first overwritten byte is 1 before the block\n{context}"
    );
    // Found at the free: the error's stack and the block's free stack are that line.
    assert_eq!(error.user_line(&[file]), at("free"), "stack\n{context}");
    assert_eq!(
        error.free_line(&[file]),
        at("free"),
        "free_stack\n{context}"
    );
    assert_eq!(
        error.alloc_line(&[file]),
        at("alloc"),
        "alloc_stack\n{context}"
    );
    assert_eq!(error.count, 1, "{context}");
    if let Some(access) = &error.access {
        // Not caught at the instruction; if the report says anything, it is a write.
        assert_eq!(access.op, "write", "{context}");
    }
    assert_no_loss_records(&run.report);
    assert_books_balance(&run.report);
}

/// 16 bytes before a block overwritten: guard mode's canaries, fast mode's whole inline
/// header (metadata included). Either way one underflow found at the free, with the
/// block's real size and allocation line, and the program runs on (natively glibc aborts).
#[test]
fn wide_underflow_is_found_at_free_in_both_modes() {
    for (name, mode) in [
        ("underflow_wide", "--mode=guard"),
        ("underflow_wide_fast", "--mode=fast"),
    ] {
        let run = run_fencepost(name, &[mode], &prog("underflow_wide"), &[]);
        assert_ran_on(&run, "sum 21\nstill running\n");
        let error = the_one_error(&run.report);
        let context = format!("{mode}: {error:#?}\n{}", run.report.pretty());
        let file = "underflow_wide.c";
        let at = |m| Some((file.to_owned(), marker_line("c/underflow_wide.c", m)));
        assert_eq!(error.kind, "heap-buffer-underflow", "{context}");
        assert_eq!(error.found_at.as_deref(), Some("free"), "{context}");
        let block = error.block.as_ref().expect("block");
        assert_eq!((block.size, block.offset), (24, -16), "{context}");
        assert_eq!(error.user_line(&[file]), at("free"), "stack\n{context}");
        assert_eq!(error.alloc_line(&[file]), at("alloc"), "alloc\n{context}");
        assert_eq!(error.count, 1, "{context}");
        assert_no_loss_records(&run.report);
        assert_books_balance(&run.report);
    }
}

/// A block whose 16 bytes in front were overwritten, then resized instead of freed, and
/// another never freed: each underflow is found (at the realloc, and at exit), the
/// realloc keeps the contents, and the second block is one definite leak with its size and
/// allocation line. In fast mode both inline headers lose their metadata: the sizes and
/// stacks come from the analyzer's records.
#[test]
fn underflows_found_at_realloc_and_at_exit_in_both_modes() {
    for (name, mode) in [
        ("underflow_kept", "--mode=guard"),
        ("underflow_kept_fast", "--mode=fast"),
    ] {
        let run = run_fencepost(name, &[mode], &prog("underflow_kept"), &[]);
        assert_ran_on(&run, "a 1 2 3\nstill running\n");
        let context = format!("{mode}:\n{}", run.report.pretty());
        let file = "underflow_kept.c";
        let at = |m| Some((file.to_owned(), marker_line("c/underflow_kept.c", m)));
        let mut errors = run.report.errors();
        errors.sort_by_key(|e| e.block.as_ref().map(|b| b.size));
        let found: Vec<_> = errors
            .iter()
            .map(|e| {
                let block = e.block.as_ref().expect("block");
                (
                    e.kind.as_str(),
                    e.found_at.as_deref(),
                    block.size,
                    block.offset,
                    e.alloc_line(&[file]),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                (
                    "heap-buffer-underflow",
                    Some("free"),
                    24,
                    -16,
                    at("alloc_a")
                ),
                (
                    "heap-buffer-underflow",
                    Some("exit"),
                    32,
                    -16,
                    at("alloc_b")
                ),
            ],
            "{context}"
        );
        assert_eq!(errors[0].user_line(&[file]), at("grow"), "{context}");
        let definite = leaks_of_kind(&run.report, "definite");
        let leaks: Vec<_> = definite
            .iter()
            .map(|l| (l.bytes, l.blocks, l.user_line(&[file])))
            .collect();
        assert_eq!(leaks, [(32, 1, at("alloc_b"))], "{context}");
    }
}

/// Fast mode has no guard pages, but every block has canary bytes right after it: a
/// write past the end is found when the block is freed, with the block's size, the
/// first overwritten byte and the allocation line (memcheck finds it at the write).
#[test]
fn overruns_are_found_at_free_in_fast_mode() {
    // (program, block size, first bad byte, bytes, the allocation's marker)
    let cases = [
        ("int_array_write", 40, 40, 4, "alloc"),
        ("strcpy_overflow", 9, 9, 1, "alloc"),
        ("malloc_zero", 0, 0, 1, "alloc"),
        ("realloc_shrink", 16, 16, 1, "realloc"),
    ];
    for (program, size, offset, len, alloc) in cases {
        let name = format!("{program}_fast");
        let run = run_fencepost(&name, &["--mode=fast"], &prog(program), &[]);
        let error = the_one_error(&run.report);
        let context = format!("{program}: {error:#?}\n{}", run.report.pretty());
        let file = format!("{program}.c");
        let source = format!("c/{program}.c");
        let at = |m| Some((file.clone(), marker_line(&source, m)));
        assert_eq!(error.kind, "heap-buffer-overflow", "{context}");
        assert_eq!(error.found_at.as_deref(), Some("free"), "{context}");
        let block = error.block.as_ref().expect("block");
        assert_eq!((block.size, block.offset), (size, offset), "{context}");
        if let Some(access) = &error.access {
            assert_eq!(
                (access.op.as_str(), access.size),
                ("write", len),
                "{context}"
            );
        }
        assert_eq!(error.user_line(&[&file]), at("free"), "stack\n{context}");
        assert_eq!(error.alloc_line(&[&file]), at(alloc), "alloc\n{context}");
        assert_eq!(error.count, 1, "{context}");
        assert_no_loss_records(&run.report);
        assert_books_balance(&run.report);
    }
}

/// underflow.c under `--protect-below`: the write before the block, at its instruction.
fn assert_underflow_found_at_the_write(run: &FencepostRun) {
    assert_ran_on(run, "sixteen bytes..\n");
    let error = the_one_error(&run.report);
    assert_access_error(
        &run.report,
        &error,
        &Expected {
            source: "c/underflow.c",
            kind: "heap-buffer-underflow",
            op: "write",
            size: 1,
            block_size: 16,
            offset: -1,
            at: "bad_write",
            alloc: "alloc",
            free: None,
            count: 1,
        },
    );
    assert_no_loss_records(&run.report);
    assert_books_balance(&run.report);
}

#[test]
fn underflow_write_is_found_at_the_instruction_with_protect_below() {
    let run = run_fencepost(
        "underflow_protect_below",
        &["--protect-below"],
        &prog("underflow"),
        &[],
    );
    assert_underflow_found_at_the_write(&run);
}

#[test]
fn null_dereference_is_a_fatal_signal_at_its_line() {
    let run = run_fencepost("null_deref_guard", &[], &prog("null_deref"), &[]);
    assert_eq!(run.code(), 139, "128 + SIGSEGV\n{}", run.stderr);
    assert_eq!(run.report.exit(), Err(11));
    assert_eq!(run.stdout, "about to crash\n");
    let error = the_one_error(&run.report);
    let context = format!("{error:#?}\n{}", run.report.pretty());
    assert_eq!(error.kind, "fatal-signal", "{context}");
    assert_eq!(error.signal, Some(11), "{context}");
    assert_eq!(
        error.user_line(&["null_deref.c"]),
        Some((
            "null_deref.c".to_owned(),
            marker_line("c/null_deref.c", "crash")
        )),
        "{context}"
    );
    assert_eq!(error.count, 1, "{context}");
    assert!(
        error.block.is_none(),
        "no heap block at address 0\n{context}"
    );
    if let Some(access) = &error.access {
        // `*null = local[0]` stores an int at address 0.
        assert_eq!(
            (access.op.as_str(), access.size, access.address),
            ("write", 4, 0),
            "{context}"
        );
    }
    assert_books_balance(&run.report);
}

#[test]
fn a_program_that_handles_its_own_sigsegv_runs_on_and_nothing_is_reported() {
    let run = run_fencepost("own_segv_handler", &[], &prog("own_segv_handler"), &[]);
    assert_ran_on(&run, "recovered 42 after 1 fault\n");
    assert_no_error_and_no_loss(&run.report);
    assert_books_balance(&run.report);
}

#[test]
fn impossible_allocations_return_null_without_an_error() {
    let run = run_fencepost("huge_alloc", &[], &prog("huge_alloc"), &[]);
    assert_ran_on(&run, "malloc: NULL ENOMEM\ncalloc: NULL ENOMEM\n");
    assert_no_error_and_no_loss(&run.report);
    assert_books_balance(&run.report);
    // A failed allocation hands out no block, so no block went unguarded.
    let guard = &run.report.json["summary"]["guard"];
    assert_eq!(
        guard["unguarded"],
        0,
        "no block was handed out unguarded\n{}",
        run.report.pretty()
    );
    assert_eq!(
        guard["guarded"].as_u64(),
        Some(run.report.summary_u64("allocations")),
        "every block the program got was guarded\n{}",
        run.report.pretty()
    );
    assert!(
        !run.stderr.contains("not guarded"),
        "the text report must not claim unguarded blocks\n{}",
        run.stderr
    );
}

#[test]
fn aligned_sse_load_on_an_8_aligned_block_is_reported_with_the_alignment_advice() {
    let run = run_fencepost("sse_aligned", &[], &prog("sse_aligned"), &[]);
    assert_eq!(
        run.code(),
        139,
        "the general-protection fault kills the program (SIGSEGV)\n{}",
        run.stderr
    );
    assert_eq!(run.report.exit(), Err(11));
    let error = the_one_error(&run.report);
    let context = format!("{error:#?}\n{}", run.report.pretty());
    let file = "sse_aligned.c";
    let at = |m| Some((file.to_owned(), marker_line("c/sse_aligned.c", m)));
    assert_eq!(error.user_line(&[file]), at("load"), "{context}");
    match error.kind.as_str() {
        "misaligned-access" => {
            let access = error.access.as_ref().expect("access");
            assert_eq!((access.op.as_str(), access.size), ("read", 16), "{context}");
            let block = error.block.as_ref().expect("block");
            assert_eq!((block.size, block.offset), (24, 0), "{context}");
            assert_eq!(error.alloc_line(&[file]), at("alloc"), "{context}");
        }
        "fatal-signal" => {
            assert_eq!(error.signal, Some(11), "{context}");
            let message = error.message.as_deref().unwrap_or("");
            assert!(
                message.contains("--alignment=16"),
                "a fatal-signal for a misaligned SSE access advises --alignment=16\n{context}"
            );
        }
        other => panic!("expected misaligned-access or fatal-signal, got {other}\n{context}"),
    }
    assert!(
        run.stderr.contains("--alignment=16"),
        "the text report gives the advice\n{}",
        run.stderr
    );
}

#[test]
fn aligned_sse_load_runs_clean_with_alignment_16() {
    // `standard`: what C promises malloc(24), 16 since the block can hold a long double.
    for alignment in ["--alignment=16", "--alignment=standard"] {
        let run = run_fencepost(
            &format!("sse_aligned_{}", &alignment[12..]),
            &[alignment],
            &prog("sse_aligned"),
            &[],
        );
        assert_ran_on(&run, "sum 276\n");
        assert_no_error_and_no_loss(&run.report);
        assert_books_balance(&run.report);
    }
}

#[test]
fn halt_on_error_stops_at_the_first_error() {
    let run = run_fencepost(
        "use_after_free_halt",
        &["--halt-on-error"],
        &prog("use_after_free"),
        &[],
    );
    assert_eq!(
        run.stdout, "before\n",
        "nothing after the first bad access ran\n{}",
        run.stderr
    );
    assert_ne!(run.code(), 0, "the program did not finish\n{}", run.stderr);
    assert_eq!(
        run.code(),
        139,
        "halted by the fault (SIGSEGV)\n{}",
        run.stderr
    );
    let error = the_one_error(&run.report);
    assert_eq!(error.kind, "use-after-free", "{}", run.report.pretty());
    assert_eq!(
        error.user_line(&["use_after_free.c"]),
        Some((
            "use_after_free.c".to_owned(),
            marker_line("c/use_after_free.c", "uaf_read")
        ))
    );
    assert_eq!(error.count, 1);
}

#[test]
fn fast_mode_misses_the_off_by_one_read_but_finds_leaks() {
    // glibc's blocks have no guard page: the read of p[13] lands in the chunk's padding.
    let run = run_fencepost(
        "overrun_read_fast",
        &["--mode=fast"],
        &prog("overrun_read"),
        &[],
    );
    assert_ran_on(&run, "sum done\n");
    assert!(
        run.report.errors().is_empty(),
        "fast mode does not see bad reads\n{}",
        run.report.pretty()
    );
    assert!(
        run.report.json["summary"]["guard"]["guarded"]
            .as_u64()
            .unwrap_or(0)
            == 0,
        "no guarded block in fast mode\n{}",
        run.report.pretty()
    );
    assert_books_balance(&run.report);

    let run = run_fencepost(
        "leak_definite_fast",
        &["--mode=fast"],
        &prog("leak_definite"),
        &[],
    );
    assert_ran_on(&run, "record 7\n");
    let leaks = leaks_of_kind(&run.report, "definite");
    assert_eq!(leaks.len(), 1, "{}", run.report.pretty());
    assert_eq!((leaks[0].bytes, leaks[0].blocks), (100, 1));
    assert_eq!(
        user_line(&leaks[0].stack, &["leak_definite.c"]),
        Some((
            "leak_definite.c".to_owned(),
            marker_line("c/leak_definite.c", "leak")
        ))
    );
    assert_books_balance(&run.report);
}

#[test]
fn off_by_one_read_is_found_with_mprotect_guards_too() {
    // The path of kernels without MADV_GUARD_INSTALL (before 6.13), forced on this one.
    let run = run_fencepost(
        "overrun_read_mprotect",
        &["--guards=mprotect"],
        &prog("overrun_read"),
        &[],
    );
    assert_ran_on(&run, "sum done\n");
    let error = the_one_error(&run.report);
    assert_access_error(&run.report, &error, &OVERRUN_READ);
}

#[test]
fn past_the_guard_budget_blocks_get_canaries_and_an_overflow_is_found_at_free() {
    let run = run_fencepost(
        "past_budget",
        &["--guard-budget-mb=1"],
        &prog("past_budget"),
        &[],
    );
    assert_ran_on(&run, "done\n");
    assert_books_balance(&run.report);
    let context = run.report.pretty();
    let guard = &run.report.json["summary"]["guard"];
    let unguarded = guard["unguarded"].as_u64().unwrap_or(0);
    let guarded = guard["guarded"].as_u64().unwrap_or(0);
    assert!(
        unguarded > 0 && guarded > 0 && guarded < 400,
        "a 1 MiB budget guards a few hundred one-page blocks, then packs the rest\n{context}"
    );
    assert!(
        run.stderr.contains(&format!(
            "{unguarded} blocks were not guarded (guard budget reached)"
        )),
        "the text report says how many blocks were not guarded\n{}",
        run.stderr
    );
    let error = the_one_error(&run.report);
    assert_eq!(error.kind, "heap-buffer-overflow", "{context}");
    assert_eq!(error.found_at.as_deref(), Some("free"), "{context}");
    let access = error.access.as_ref().expect("access");
    assert_eq!((access.op.as_str(), access.size), ("write", 1), "{context}");
    let block = error.block.as_ref().expect("block");
    assert_eq!((block.size, block.offset), (13, 13), "{context}");
    let files = ["past_budget.c"];
    let at = |m| {
        Some((
            "past_budget.c".to_owned(),
            marker_line("c/past_budget.c", m),
        ))
    };
    assert_eq!(error.alloc_line(&files), at("alloc"), "{context}");
    assert_eq!(error.free_line(&files), at("free"), "{context}");
}

#[test]
fn guard_heap_works_when_process_madvise_is_refused() {
    // The guard heap opens slots in batches with process_madvise; a seccomp profile (or a
    // kernel) that refuses it leaves one madvise per slot, with the same findings.
    let deny = prog("deny_process_madvise");
    let run = run_fencepost_under("no_process_madvise", &deny, &[], &prog("overrun_read"), &[]);
    assert_ran_on(&run, "sum done\n");
    let error = the_one_error(&run.report);
    assert_access_error(&run.report, &error, &OVERRUN_READ);
    assert_books_balance(&run.report);

    // Many blocks of many sizes from many threads, freed across threads: all balance.
    let churn = run_fencepost_under(
        "no_process_madvise_threads",
        &deny,
        &[],
        &prog("threads_cross_free"),
        &[],
    );
    assert_eq!(churn.code(), 0, "{}", churn.stderr);
    assert_eq!(churn.stdout, "freed 50000\n");
    assert!(
        churn.report.errors().is_empty(),
        "{}",
        churn.report.pretty()
    );
    assert_books_balance(&churn.report);
}

/// A library whose constructor allocates can run before the shim has read its options
/// (ld.so initialises the shim after libgcc_s, which it needs, and so after the program's
/// libraries loaded before libgcc_s). Those first blocks get the default layout, guard page
/// after the data, and open a batch of slots with it. `--protect-below` must not hand those slots out: `ls` (whose libselinux
/// allocates so) died in the shim's own canary fill. Built here: `libearly.so`, and
/// underflow.c linked against it.
#[test]
fn protect_below_holds_after_a_library_allocated_before_the_shim_started() {
    let dir = scratch_dir("early_alloc_build");
    let lib_src = dir.join("libearly.c");
    std::fs::write(
        &lib_src,
        "#include <stdlib.h>\n\
         __attribute__((constructor)) static void early(void)\n\
         {\n    for (int i = 0; i < 8; i++)\n        free(malloc(16 + i));\n}\n",
    )
    .unwrap();
    let gcc = |args: &[&std::ffi::OsStr]| {
        let status = std::process::Command::new("gcc")
            .args(args)
            .status()
            .expect("gcc");
        assert!(status.success(), "gcc {args:?}");
    };
    let lib = dir.join("libearly.so");
    gcc(&[
        "-shared".as_ref(),
        "-fPIC".as_ref(),
        "-o".as_ref(),
        lib.as_os_str(),
        lib_src.as_os_str(),
    ]);
    let prog_path = dir.join("underflow_early");
    let rpath = format!("-Wl,-rpath,{}", dir.display());
    let libdir = format!("-L{}", dir.display());
    let src = source_path("c/underflow.c");
    gcc(&[
        "-g".as_ref(),
        "-O0".as_ref(),
        "-o".as_ref(),
        prog_path.as_os_str(),
        src.as_os_str(),
        libdir.as_ref(),
        // Debian's gcc links --as-needed, which would drop a library nothing calls.
        "-Wl,--no-as-needed".as_ref(),
        "-learly".as_ref(),
        rpath.as_ref(),
    ]);
    let run = run_fencepost("early_alloc", &["--protect-below"], &prog_path, &[]);
    assert_underflow_found_at_the_write(&run);
}
