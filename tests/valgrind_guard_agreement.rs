//! The valgrind second opinion on guard mode: each bad-access program is run under both
//! fencepost and memcheck, and memcheck's `InvalidRead`/`InvalidWrite` ("N bytes after a
//! block of size S", "N bytes inside a block of size S free'd", ...) must be fencepost's
//! overflow, underflow or use after free at the same user line, with the same read/write,
//! access size, block size, offset, alloc and free lines and count (see
//! tests/support/valgrind.rs, `AccessKey`). Loss records and free errors must agree too.
//!
//! Where the tools legitimately differ, the test compares what must still agree and says
//! why: strcpy (memcheck runs its own byte-by-byte strcpy), the underflow without
//! `--protect-below` (fencepost finds it at free), the null dereference (memcheck's
//! "Invalid write" is fencepost's `fatal-signal`), the program with its own SIGSEGV
//! handler (valgrind cannot run it) and the aligned SSE load (memcheck's malloc always
//! aligns to 16, so only fencepost's default layout can show it).

mod support;

use support::valgrind::{
    assert_accesses_agree, assert_losses_and_free_errors_agree, fencepost_access_keys,
    memcheck_address, run_valgrind, AccessKey, VgReport,
};
use support::*;

/// Runs `program` under memcheck and under fencepost (with `options`) and asserts both
/// ended the same way (a program cut short under one tool proves nothing).
fn run_both(name: &str, program: &str, options: &[&str]) -> (FencepostRun, VgReport) {
    let (run, memcheck) = run_each(name, program, options);
    assert_eq!(
        memcheck_end(&memcheck),
        run.report.exit(),
        "{program} ended differently under memcheck and fencepost\n{}",
        run.stderr
    );
    (run, memcheck)
}

/// Runs `program` under memcheck and under fencepost, however each ends.
fn run_each(name: &str, program: &str, options: &[&str]) -> (FencepostRun, VgReport) {
    let prog = prog(program);
    let memcheck = run_valgrind(name, &prog, &[]);
    let run = run_fencepost(name, options, &prog, &[]);
    (run, memcheck)
}

/// How the program ended under memcheck, as fencepost's `exit`: Ok(code) or Err(signal).
fn memcheck_end(memcheck: &VgReport) -> Result<i64, i64> {
    use std::os::unix::process::ExitStatusExt;
    match (memcheck.status.code(), memcheck.status.signal()) {
        (Some(code), _) => Ok(i64::from(code)),
        (None, Some(signal)) => Err(i64::from(signal)),
        (None, None) => unreachable!("a process ends with a code or a signal"),
    }
}

/// Compares every field of the bad accesses (and the losses and free errors).
fn agree(name: &str, program: &str, options: &[&str]) {
    let (run, memcheck) = run_both(name, program, options);
    let file = format!("{program}.c");
    assert_accesses_agree(&run.report, &memcheck, &[&file]);
}

fn the_one(keys: Vec<AccessKey>, who: &str) -> AccessKey {
    assert_eq!(
        keys.len(),
        1,
        "{who}: expected one bad access, got {keys:#?}"
    );
    keys.into_iter().next().unwrap()
}

#[test]
fn off_by_one_read() {
    agree("vg_overrun_read", "overrun_read", &[]);
}

#[test]
fn int_array_written_past_its_end_three_times() {
    // Both count the three writes as one error context with count 3.
    agree("vg_int_array_write", "int_array_write", &[]);
}

#[test]
fn realloc_shrink_then_write_the_old_tail() {
    agree("vg_realloc_shrink", "realloc_shrink", &[]);
}

#[test]
fn write_into_malloc_zero() {
    agree("vg_malloc_zero", "malloc_zero", &[]);
}

#[test]
fn read_and_write_after_free() {
    agree("vg_use_after_free", "use_after_free", &[]);
}

#[test]
fn underflow_with_protect_below() {
    // With the guard page below the block, fencepost catches the write at the
    // instruction, as memcheck does: everything agrees.
    agree("vg_underflow_below", "underflow", &["--protect-below"]);
}

#[test]
fn underflow_found_at_free_by_default() {
    // fencepost knows less here: by default the bytes before a block are canaries, not a
    // guard page, so the write is only noticed when the block is freed. The line of the
    // error is the free's (memcheck's is the write's), and fencepost cannot know the
    // access size — only which canary bytes changed. What must agree: it is an underflow
    // of the same 16-byte block allocated at the same line, 1 byte before it, once.
    let (run, memcheck) = run_both("vg_underflow", "underflow", &[]);
    let files = ["underflow.c"];
    let vg = the_one(memcheck.access_keys(&files), "memcheck");
    let fp = the_one(fencepost_access_keys(&run.report, &files), "fencepost");
    let agreeing = |k: &AccessKey| {
        (
            k.kind.clone(),
            k.block_size,
            k.offset,
            k.alloc_line.clone(),
            k.count,
        )
    };
    assert_eq!(
        agreeing(&fp),
        agreeing(&vg),
        "fencepost: {fp:#?}\nmemcheck: {vg:#?}"
    );
    let line = |m| Some(("underflow.c".to_owned(), marker_line("c/underflow.c", m)));
    assert_eq!(vg.line, line("bad_write"), "memcheck: at the write");
    assert_eq!(fp.line, line("free"), "fencepost: at the free");
    assert_losses_and_free_errors_agree(&run.report, &memcheck, &files);
}

#[test]
fn wide_underflow_found_at_free_in_both_modes() {
    // memcheck sees two 8-byte writes (16 and 8 bytes before the block); fencepost finds
    // the 16 changed bytes at the free, in guard mode in its canaries, in fast mode in the
    // block's inline header. What must agree: an underflow of the same 24-byte block
    // allocated at the same line, starting 16 bytes before it.
    for (name, mode) in [
        ("vg_underflow_wide", "--mode=guard"),
        ("vg_underflow_wide_fast", "--mode=fast"),
    ] {
        let (run, memcheck) = run_both(name, "underflow_wide", &[mode]);
        let files = ["underflow_wide.c"];
        let vg = memcheck.access_keys(&files);
        let line = |m| {
            Some((
                "underflow_wide.c".to_owned(),
                marker_line("c/underflow_wide.c", m),
            ))
        };
        let vg_lines: Vec<_> = vg.iter().map(|k| k.line.clone()).collect();
        assert_eq!(
            vg_lines,
            [line("bad_low"), line("bad_high")],
            "memcheck: at each write\n{vg:#?}"
        );
        let first = vg.iter().min_by_key(|k| k.offset).expect("two keys");
        let fp = the_one(fencepost_access_keys(&run.report, &files), "fencepost");
        let agreeing =
            |k: &AccessKey| (k.kind.clone(), k.block_size, k.offset, k.alloc_line.clone());
        assert_eq!(
            agreeing(&fp),
            agreeing(first),
            "{mode}: fencepost: {fp:#?}\nmemcheck: {first:#?}"
        );
        assert_eq!(fp.line, line("free"), "{mode}: fencepost: at the free");
        assert_losses_and_free_errors_agree(&run.report, &memcheck, &files);
    }
}

#[test]
fn fast_mode_finds_the_overruns_memcheck_finds() {
    // Fast mode finds a write past a block's end in the canary after it, when the block is
    // freed; memcheck at the write. What must agree: an overflow of the same block
    // (size, allocation line), starting at the same byte.
    for program in [
        "int_array_write",
        "strcpy_overflow",
        "malloc_zero",
        "realloc_shrink",
    ] {
        let name = format!("vg_{program}_fast");
        let (run, memcheck) = run_both(&name, program, &["--mode=fast"]);
        let file = format!("{program}.c");
        let files = [file.as_str()];
        let vg = memcheck.access_keys(&files);
        let first = vg
            .iter()
            .min_by_key(|k| k.offset)
            .expect("memcheck found it");
        let fp = the_one(fencepost_access_keys(&run.report, &files), "fencepost");
        let agreeing =
            |k: &AccessKey| (k.kind.clone(), k.block_size, k.offset, k.alloc_line.clone());
        assert_eq!(
            agreeing(&fp),
            agreeing(first),
            "{program}: fencepost: {fp:#?}\nmemcheck: {first:#?}"
        );
        assert_losses_and_free_errors_agree(&run.report, &memcheck, &files);
    }
}

/// Kind, block size, offset and allocation line of a block's first bad byte.
type FirstBadByte = (String, Option<u64>, Option<i64>, Option<(String, u32)>);

#[test]
fn underflows_kept_past_realloc_and_exit_in_both_modes() {
    // memcheck sees four 8-byte writes, two before each block; fencepost finds each
    // block's 16 changed bytes when it checks them (at the realloc, at exit). What must
    // agree: an underflow of each block (24 and 32 bytes, allocated at the same lines)
    // starting 16 bytes before it, and the one definite leak.
    for (name, mode) in [
        ("vg_underflow_kept", "--mode=guard"),
        ("vg_underflow_kept_fast", "--mode=fast"),
    ] {
        let (run, memcheck) = run_both(name, "underflow_kept", &[mode]);
        let files = ["underflow_kept.c"];
        let first_per_block = |keys: Vec<AccessKey>| {
            let mut firsts: Vec<FirstBadByte> = Vec::new();
            for k in keys {
                let key = (k.kind.clone(), k.block_size, k.offset, k.alloc_line.clone());
                match firsts.iter_mut().find(|f| f.1 == key.1) {
                    Some(f) if key.2 < f.2 => *f = key,
                    Some(_) => {}
                    None => firsts.push(key),
                }
            }
            firsts.sort_by_key(|f| f.1);
            firsts
        };
        let vg = first_per_block(memcheck.access_keys(&files));
        let fp = first_per_block(fencepost_access_keys(&run.report, &files));
        assert_eq!(vg.len(), 2, "memcheck: {vg:#?}");
        assert_eq!(fp, vg, "{mode}");
        assert_losses_and_free_errors_agree(&run.report, &memcheck, &files);
    }
}

#[test]
fn strcpy_into_a_block_one_byte_short() {
    // The tools see different instructions: memcheck replaces strcpy with its own
    // byte-by-byte copy and reports the 1-byte write of the NUL at offset 9; fencepost
    // runs glibc's strcpy, which may store the tail with one wide write that starts
    // inside the block. What must agree: a write overflowing the same 9-byte block,
    // allocated at the same line, reached from the same user line, once — and memcheck's
    // byte is inside fencepost's access.
    let (run, memcheck) = run_both("vg_strcpy_overflow", "strcpy_overflow", &[]);
    let files = ["strcpy_overflow.c"];
    let vg = the_one(memcheck.access_keys(&files), "memcheck");
    let fp = the_one(fencepost_access_keys(&run.report, &files), "fencepost");
    let agreeing = |k: &AccessKey| {
        (
            k.kind.clone(),
            k.op.clone(),
            k.line.clone(),
            k.block_size,
            k.alloc_line.clone(),
            k.count,
        )
    };
    assert_eq!(
        agreeing(&fp),
        agreeing(&vg),
        "fencepost: {fp:#?}\nmemcheck: {vg:#?}"
    );
    assert_eq!(
        (vg.size, vg.offset),
        (Some(1), Some(9)),
        "memcheck: the NUL byte"
    );
    let (start, size) = (fp.offset.expect("offset"), fp.size.expect("size") as i64);
    assert!(
        start <= 9 && 9 < start + size,
        "memcheck's byte (offset 9) is inside fencepost's access: {fp:#?}"
    );
    assert_losses_and_free_errors_agree(&run.report, &memcheck, &files);
}

#[test]
fn null_dereference() {
    // memcheck reports an "Invalid write of size 4" at an address in no block ("not
    // stack'd, malloc'd or (recently) free'd") and the program dies of SIGSEGV; fencepost
    // reports that crash as a fatal-signal at the same line. memcheck calls the two live
    // blocks "still reachable" and fencepost "unreleased" (no leak scan in a crashed
    // process): neither is compared, and neither tool has a definite or possible leak.
    let (run, memcheck) = run_both("vg_null_deref", "null_deref", &[]);
    let files = ["null_deref.c"];
    let vg = the_one(memcheck.access_keys(&files), "memcheck");
    let crash = Some((
        "null_deref.c".to_owned(),
        marker_line("c/null_deref.c", "crash"),
    ));
    assert_eq!(
        (vg.kind.as_str(), vg.op.as_deref(), vg.size),
        ("wild", Some("write"), Some(4))
    );
    assert_eq!(vg.line, crash);
    let errors = run.report.errors();
    assert_eq!(errors.len(), 1, "{}", run.report.pretty());
    assert_eq!(errors[0].kind, "fatal-signal", "{}", run.report.pretty());
    assert_eq!(errors[0].user_line(&files), crash);
    if let Some(access) = &errors[0].access {
        assert_eq!(
            (Some(access.op.as_str()), Some(access.size)),
            (vg.op.as_deref(), vg.size)
        );
    }
    assert_losses_and_free_errors_agree(&run.report, &memcheck, &files);
}

#[test]
fn own_sigsegv_handler() {
    // fencepost knows more; valgrind 3.19 cannot run this program. It hands the program's
    // handler si_addr = NULL for the fault on the PROT_NONE page (with any tool), so the
    // handler takes it for a real crash and exits 3; memcheck also reports a false
    // "Invalid write of size 4" ("Address ... is in a --- anonymous segment") at the
    // write. fencepost passes the fault, siginfo intact, to the program's handler, which
    // recovers (exit 0), and reports nothing. What must agree: memcheck's one complaint
    // is about no heap block, at the line of the write; no leak either way.
    let (run, memcheck) = run_each("vg_own_segv_handler", "own_segv_handler", &[]);
    assert_eq!(
        memcheck_end(&memcheck),
        Ok(3),
        "valgrind 3.19's si_addr = NULL"
    );
    assert_eq!(run.report.exit(), Ok(0), "{}", run.stderr);
    let files = ["own_segv_handler.c"];
    let vg = the_one(memcheck.access_keys(&files), "memcheck");
    assert_eq!(vg.kind, "other", "not a heap address: {vg:#?}");
    assert_eq!(
        vg.line,
        Some((
            "own_segv_handler.c".to_owned(),
            marker_line("c/own_segv_handler.c", "fault")
        ))
    );
    assert!(run.report.errors().is_empty(), "{}", run.report.pretty());
    assert_losses_and_free_errors_agree(&run.report, &memcheck, &files);
}

#[test]
fn impossible_allocations() {
    let (run, memcheck) = run_both("vg_huge_alloc", "huge_alloc", &[]);
    assert!(memcheck.errors.is_empty(), "{:#?}", memcheck.errors);
    assert!(run.report.errors().is_empty(), "{}", run.report.pretty());
    assert_losses_and_free_errors_agree(&run.report, &memcheck, &["huge_alloc.c"]);
}

#[test]
fn aligned_sse_load_with_alignment_16() {
    // memcheck's malloc returns 16-aligned blocks, so it can never see this program's
    // assumption; fencepost's default layout does (guard_errors.rs). With
    // --alignment=16 both run it clean.
    let (run, memcheck) = run_both("vg_sse_aligned", "sse_aligned", &["--alignment=16"]);
    assert!(memcheck.errors.is_empty(), "{:#?}", memcheck.errors);
    assert!(run.report.errors().is_empty(), "{}", run.report.pretty());
}

#[test]
fn memcheck_addresses_are_read_as_block_offsets() {
    let of = |text| memcheck_address(text);
    assert_eq!(
        of("Address 0x4a4004d is 0 bytes after a block of size 13 alloc'd"),
        ("heap-buffer-overflow".to_owned(), Some(13), Some(13))
    );
    assert_eq!(
        of("Address 0x4a4004d is 4 bytes after a block of size 1,024 alloc'd"),
        ("heap-buffer-overflow".to_owned(), Some(1024), Some(1028))
    );
    assert_eq!(
        of("Address 0x4a4003f is 1 bytes before a block of size 16 alloc'd"),
        ("heap-buffer-underflow".to_owned(), Some(16), Some(-1))
    );
    assert_eq!(
        of("Address 0x4a40045 is 5 bytes inside a block of size 24 free'd"),
        ("use-after-free".to_owned(), Some(24), Some(5))
    );
    assert_eq!(
        of("Address 0x0 is not stack'd, malloc'd or (recently) free'd"),
        ("wild".to_owned(), None, None)
    );
    assert_eq!(
        of("Address 0x4852080 is in a --- anonymous segment"),
        ("other".to_owned(), None, None)
    );
}
