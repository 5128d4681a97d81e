//! Analyzer tests: event streams built with the wire encoders, written to a trace, read back
//! and analysed; assertions are on findings (kind, bytes, blocks, stacks, lines).

use std::collections::HashMap;

use serde_json::Value;

use crate::analysis::{Analyzer, AnalyzerOptions, SymbolSource};
use crate::decode::*;
use crate::report::{ErrorKind, ExitStatus, LeakKind, ProcessEnd, Report};
use crate::symbolize::{ModuleRef, SymbolizedFrame};
use crate::text::{render_text, LeakCheck, TextOptions};
use crate::wire::{self, family, func, leak, start_flags};

const EXE: &str = "/tmp/prog";
const BIAS: u64 = 0x5555_0000_0000;
const LIB: &str = "/tmp/libplugin.so";
const LIB_BIAS: u64 = 0x7f00_0000_0000;

/// A symbolizer that knows a few module-relative pcs (after the return-address adjustment),
/// and counts its calls to check caching.
#[derive(Default)]
struct FakeSymbols {
    table: HashMap<(String, u64), Vec<SymbolizedFrame>>,
    calls: usize,
}

fn sym(function: &str, file: &str, line: u32, inlined: bool) -> SymbolizedFrame {
    SymbolizedFrame {
        function: Some(function.into()),
        file: Some(format!("/src/{file}")),
        line: Some(line),
        column: None,
        inlined,
    }
}

impl FakeSymbols {
    fn standard() -> Self {
        let mut s = FakeSymbols::default();
        s.add(EXE, 0x1100, vec![sym("make_node", "list.c", 12, false)]);
        s.add(EXE, 0x1200, vec![sym("build", "list.c", 20, false)]);
        s.add(EXE, 0x1300, vec![sym("main", "list.c", 30, false)]);
        s.add(
            EXE,
            0x1400,
            vec![
                sym("inner", "util.h", 3, true),
                sym("outer", "util.c", 9, false),
            ],
        );
        s.add(LIB, 0x2100, vec![sym("plugin_leak", "plugin.c", 7, false)]);
        s
    }
    fn add(&mut self, path: &str, rel: u64, frames: Vec<SymbolizedFrame>) {
        self.table.insert((path.to_string(), rel), frames);
    }
}

impl SymbolSource for FakeSymbols {
    fn symbolize(&mut self, m: &ModuleRef, pc: u64, ret: bool) -> Vec<SymbolizedFrame> {
        self.calls += 1;
        let rel = pc - m.bias - u64::from(ret);
        self.table
            .get(&(m.path.to_string(), rel))
            .cloned()
            .unwrap_or_else(|| {
                vec![SymbolizedFrame {
                    function: None,
                    file: None,
                    line: None,
                    column: None,
                    inlined: false,
                }]
            })
    }
}

/// Return address (as the shim records it) for a module-relative call site.
fn ra(rel: u64) -> u64 {
    BIAS + rel + 1
}

/// Builds an event stream the way the shim and CLI would write it.
#[derive(Default)]
struct Trace {
    events: Vec<Event>,
}

impl Trace {
    fn main(pid: u32) -> Self {
        let mut t = Trace::default();
        t.push(Event::Command {
            argv: vec!["./prog".into(), "arg".into()],
        });
        t.start(pid, 1, start_flags::MAIN, 0);
        t.module(pid, EXE, BIAS);
        t.stack(pid, 1, &[ra(0x1100), ra(0x1200), ra(0x1300)]);
        t.stack(pid, 2, &[ra(0x1200), ra(0x1300)]);
        t.stack(pid, 3, &[ra(0x1300)]);
        t
    }
    fn push(&mut self, e: Event) -> &mut Self {
        self.events.push(e);
        self
    }
    fn start(&mut self, pid: u32, ppid: u32, flags: u32, token: u64) -> &mut Self {
        self.push(Event::ProcessStart(ProcessStart {
            pid,
            ppid,
            flags,
            token,
            time: 0,
            exe: EXE.into(),
        }))
    }
    fn module(&mut self, pid: u32, path: &str, bias: u64) -> &mut Self {
        self.push(Event::ModuleLoad(ModuleLoad {
            pid,
            bias,
            segments: vec![
                Segment {
                    vaddr: 0,
                    memsz: 0x1000,
                    flags: 4,
                },
                Segment {
                    vaddr: 0x1000,
                    memsz: 0x2000,
                    flags: 5,
                },
            ],
            build_id: vec![0xab, 0xcd],
            path: path.into(),
        }))
    }
    fn stack(&mut self, pid: u32, id: u32, frames: &[u64]) -> &mut Self {
        self.push(Event::StackDef(StackDef {
            pid,
            id,
            frames: frames.to_vec(),
        }))
    }
    fn alloc_with(
        &mut self,
        pid: u32,
        addr: u64,
        size: u64,
        stack: u32,
        f: u8,
        fam: u8,
    ) -> &mut Self {
        self.push(Event::Alloc(Alloc {
            pid,
            tid: pid,
            addr,
            size,
            stack,
            func: f,
            family: fam,
            flags: 0,
            time: 0,
        }))
    }
    fn alloc(&mut self, pid: u32, addr: u64, size: u64, stack: u32) -> &mut Self {
        self.alloc_with(pid, addr, size, stack, func::MALLOC, family::MALLOC)
    }
    fn free(&mut self, pid: u32, addr: u64, stack: u32) -> &mut Self {
        self.push(Event::Free(Free {
            pid,
            tid: pid,
            addr,
            stack,
            func: func::FREE,
            block_family: family::MALLOC,
            flags: 0,
            time: 0,
        }))
    }
    fn bad_free(&mut self, pid: u32, addr: u64, stack: u32) -> &mut Self {
        self.push(Event::BadFree(BadFree {
            pid,
            tid: pid,
            addr,
            stack,
            func: func::FREE,
            time: 0,
        }))
    }
    fn leaks(&mut self, pid: u32, entries: &[(u64, u64, u32, u8)]) -> &mut Self {
        self.push(Event::LeakBlocks(LeakBlocks {
            pid,
            entries: entries
                .iter()
                .map(|&(addr, size, stack, class)| LeakEntry {
                    addr,
                    size,
                    stack,
                    class,
                    family: family::MALLOC,
                })
                .collect(),
        }))
    }
    fn exit(&mut self, pid: u32, code: i32) -> &mut Self {
        self.push(Event::ProcessExit(ProcessExit {
            pid,
            how: wire::exit_how::EXIT,
            code,
            time: 0,
        }))
    }
    fn main_exit(&mut self, pid: u32, how: u32, value: i32) -> &mut Self {
        self.push(Event::MainExit(MainExit { pid, how, value }))
    }
    fn bytes(&self) -> Vec<u8> {
        let mut w = TraceWriter::new(Vec::new()).unwrap();
        for e in &self.events {
            w.write_event(e).unwrap();
        }
        w.finish().unwrap()
    }
    /// Writes the trace, reads it back through the decoder, analyses it.
    fn report_with(&self, options: AnalyzerOptions) -> Report {
        let mut analyzer = Analyzer::new(options);
        analyzer.feed_trace(&self.bytes()).unwrap();
        analyzer.finish(&mut FakeSymbols::standard())
    }
    fn report(&self) -> Report {
        self.report_with(AnalyzerOptions::default())
    }
}

fn functions(stack: &[crate::report::Frame]) -> Vec<String> {
    stack
        .iter()
        .map(|f| f.function.clone().unwrap_or_else(|| "?".into()))
        .collect()
}

fn assert_balanced(r: &Report) {
    let blocks: u64 = r.leaks.iter().map(|l| l.blocks).sum();
    assert_eq!(r.summary.allocations - r.summary.frees, blocks, "{r:#?}");
}

#[test]
fn leaks_are_grouped_by_kind_and_stack_biggest_first() {
    let mut t = Trace::main(10);
    t.alloc(10, 0x1000, 16, 1)
        .alloc(10, 0x2000, 16, 1)
        .alloc(10, 0x3000, 100, 2)
        .alloc(10, 0x4000, 40, 3)
        .alloc(10, 0x5000, 8, 1)
        .alloc(10, 0x6000, 1000, 3)
        .free(10, 0x6000, 3)
        .leaks(
            10,
            &[
                (0x1000, 16, 1, leak::DEFINITE),
                (0x2000, 16, 1, leak::DEFINITE),
                (0x3000, 100, 2, leak::DEFINITE),
            ],
        )
        // Entries may come in several records.
        .leaks(
            10,
            &[
                (0x4000, 40, 3, leak::INDIRECT),
                (0x5000, 8, 1, leak::REACHABLE),
            ],
        )
        .exit(10, 0)
        .main_exit(10, 0, 0);
    let r = t.report();
    let shape: Vec<(LeakKind, u64, u64)> = r
        .leaks
        .iter()
        .map(|l| (l.kind, l.bytes, l.blocks))
        .collect();
    assert_eq!(
        shape,
        vec![
            (LeakKind::Definite, 100, 1),
            (LeakKind::Indirect, 40, 1),
            (LeakKind::Definite, 32, 2),
            (LeakKind::Reachable, 8, 1),
        ]
    );
    assert_eq!(functions(&r.leaks[2].stack), ["make_node", "build", "main"]);
    assert_eq!(r.leaks[2].stack[0].file.as_deref(), Some("/src/list.c"));
    assert_eq!(r.leaks[2].stack[0].line, Some(12));
    assert_eq!(r.leaks[2].stack[0].module.as_deref(), Some(EXE));
    assert_eq!(r.leaks[2].stack[0].address, ra(0x1100));
    assert_eq!(r.summary.allocations, 6);
    assert_eq!(r.summary.frees, 1);
    assert_eq!(r.summary.bytes_allocated, 1180);
    assert_eq!(r.summary.leaked.definite.bytes, 132);
    assert_eq!(r.summary.leaked.definite.blocks, 3);
    assert_eq!(r.summary.leaked.definite.records, 2);
    assert_eq!(r.summary.in_use_at_exit.bytes, 180);
    assert_eq!(r.exit, Some(ExitStatus::Code(0)));
    assert_eq!(r.command, ["./prog", "arg"]);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_balanced(&r);
    // memcheck counts each definite/possible loss record as one error.
    assert_eq!(r.error_count(&[LeakKind::Definite, LeakKind::Possible]), 2);
    assert_eq!(r.error_count(&LeakKind::ALL), 4);
}

#[test]
fn double_free_and_invalid_free_are_told_apart_with_their_stacks() {
    let mut t = Trace::main(10);
    t.alloc(10, 0x1000, 16, 1)
        .free(10, 0x1000, 2)
        .bad_free(10, 0x1000, 3)
        .bad_free(10, 0x1000, 3) // same error again: counted, not repeated
        .alloc(10, 0x2000, 32, 2)
        .bad_free(10, 0x2008, 3)
        .bad_free(10, 0x7ffd_1234, 3)
        .free(10, 0x2000, 1)
        .leaks(10, &[])
        .exit(10, 0);
    let r = t.report();
    assert_eq!(r.errors.len(), 3, "{:#?}", r.errors);

    let double = &r.errors[0];
    assert_eq!(double.kind, ErrorKind::DoubleFree);
    assert_eq!(double.count, 2);
    assert_eq!(double.pid, 10);
    assert_eq!(double.thread, 10);
    assert_eq!(functions(&double.stack), ["main"]);
    assert_eq!(
        functions(double.alloc_stack.as_ref().unwrap()),
        ["make_node", "build", "main"]
    );
    assert_eq!(
        functions(double.free_stack.as_ref().unwrap()),
        ["build", "main"]
    );
    let block = double.block.as_ref().unwrap();
    assert_eq!((block.address, block.size, block.offset), (0x1000, 16, 0));

    let inside = &r.errors[1];
    assert_eq!(inside.kind, ErrorKind::InvalidFree);
    let block = inside.block.as_ref().unwrap();
    assert_eq!((block.address, block.size, block.offset), (0x2000, 32, 8));
    assert_eq!(
        functions(inside.alloc_stack.as_ref().unwrap()),
        ["build", "main"]
    );
    assert!(inside.free_stack.is_none());
    assert!(
        inside
            .message
            .contains("8 bytes inside a block of 32 bytes"),
        "{}",
        inside.message
    );

    let wild = &r.errors[2];
    assert_eq!(wild.kind, ErrorKind::InvalidFree);
    assert!(wild.block.is_none());
    assert!(wild.alloc_stack.is_none());
    assert!(wild.message.contains("never allocated"), "{}", wild.message);
    assert!(wild.message.contains("0x7ffd1234"), "{}", wild.message);

    assert_eq!(r.summary.errors, 4);
    assert_eq!(r.summary.error_contexts, 3);
    assert_eq!(r.error_count(&[LeakKind::Definite]), 4);
    assert_balanced(&r);
}

#[test]
fn reallocated_address_is_no_longer_a_double_free() {
    let mut t = Trace::main(10);
    t.alloc(10, 0x1000, 16, 1)
        .free(10, 0x1000, 2)
        .alloc(10, 0x1000, 24, 2)
        .free(10, 0x1000, 2)
        .alloc(10, 0x1000, 8, 3) // live again: a free of an interior pointer is invalid
        .bad_free(10, 0x1004, 3)
        .free(10, 0x1000, 3)
        .exit(10, 0);
    let r = t.report();
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].kind, ErrorKind::InvalidFree);
    assert_eq!(r.errors[0].block.as_ref().unwrap().offset, 4);
}

#[test]
fn mismatched_free_names_both_calls_and_releases_the_block() {
    let mut t = Trace::main(10);
    t.alloc_with(10, 0x1000, 80, 1, func::NEW_ARRAY, family::NEW_ARRAY)
        .push(Event::Free(Free {
            pid: 10,
            tid: 11,
            addr: 0x1000,
            stack: 3,
            func: func::DELETE,
            block_family: family::NEW_ARRAY,
            flags: wire::FREE_MISMATCHED,
            time: 0,
        }))
        .leaks(10, &[])
        .exit(10, 0);
    let r = t.report();
    assert_eq!(r.errors.len(), 1);
    let e = &r.errors[0];
    assert_eq!(e.kind, ErrorKind::MismatchedFree);
    assert_eq!(e.thread, 11);
    assert_eq!(e.call.as_deref(), Some("operator delete"));
    assert_eq!(
        e.message,
        "operator delete of a block allocated with operator new[]"
    );
    let block = e.block.as_ref().unwrap();
    assert_eq!((block.address, block.size), (0x1000, 80));
    assert_eq!(block.allocated_by.as_deref(), Some("operator new[]"));
    assert_eq!(
        functions(e.alloc_stack.as_ref().unwrap()),
        ["make_node", "build", "main"]
    );
    assert_eq!(functions(&e.stack), ["main"]);
    assert_eq!(r.summary.frees, 1);
    assert!(r.leaks.is_empty());
    assert_balanced(&r);
}

#[test]
fn forked_child_inherits_the_heap_and_stacks_as_of_fork_prepare() {
    let mut t = Trace::main(10);
    t.alloc(10, 0x1000, 16, 1)
        .alloc(10, 0x2000, 32, 2)
        .alloc(10, 0x3000, 64, 3)
        .free(10, 0x3000, 3)
        .push(Event::ForkPrepare(ForkPrepare { pid: 10, token: 7 }))
        // After the snapshot: not the child's.
        .alloc(10, 0x4000, 128, 3)
        .start(20, 10, start_flags::FORKED, 7)
        .stack(20, 9, &[ra(0x1400), ra(0x1300)])
        .alloc(20, 0x5000, 5, 9)
        .free(20, 0x2000, 9)
        .leaks(
            20,
            &[
                (0x1000, 16, 1, leak::DEFINITE),
                (0x5000, 5, 9, leak::DEFINITE),
            ],
        )
        .exit(20, 3)
        .leaks(
            10,
            &[
                (0x1000, 16, 1, leak::REACHABLE),
                (0x2000, 32, 2, leak::REACHABLE),
                (0x4000, 128, 3, leak::DEFINITE),
            ],
        )
        .exit(10, 0)
        .main_exit(10, 0, 0);
    let r = t.report();
    assert_eq!(r.processes.len(), 2);
    let child = &r.processes[1];
    assert_eq!((child.pid, child.ppid), (20, 10));
    assert_eq!(child.inherited, 2);
    assert_eq!(child.allocations, 3);
    assert_eq!(child.frees, 1);
    assert_eq!(child.exit, Some(ExitStatus::Code(3)));
    assert_eq!(r.summary.inherited, 2);
    assert_eq!(r.summary.allocations, 4 + 3);
    assert_balanced(&r);

    let child_leaks: Vec<_> = r.leaks.iter().filter(|l| l.pid == 20).collect();
    assert_eq!(child_leaks.len(), 2);
    // The inherited block's stack was defined by the parent, before the fork.
    assert_eq!(child_leaks[0].bytes, 16);
    assert_eq!(
        functions(&child_leaks[0].stack),
        ["make_node", "build", "main"]
    );
    // The child's own stack, with an inlined frame.
    assert_eq!(functions(&child_leaks[1].stack), ["inner", "outer", "main"]);
    assert!(child_leaks[1].stack[0].inlined);
    assert!(!child_leaks[1].stack[1].inlined);
}

#[test]
fn exec_drops_the_old_image_without_leak_records() {
    let mut t = Trace::main(10);
    t.alloc(10, 0x1000, 16, 1)
        .alloc(10, 0x2000, 16, 1)
        .start(10, 1, start_flags::EXECED, 0)
        .module(10, EXE, BIAS)
        .stack(10, 1, &[ra(0x1300)])
        .alloc(10, 0x9000, 50, 1)
        .leaks(10, &[(0x9000, 50, 1, leak::DEFINITE)])
        .exit(10, 0)
        .main_exit(10, 0, 0);
    let r = t.report();
    assert_eq!(r.processes.len(), 2);
    assert_eq!(r.processes[0].end, ProcessEnd::Exec);
    assert_eq!(r.processes[0].allocations, 2);
    assert_eq!(r.processes[1].end, ProcessEnd::Exit);
    assert_eq!(r.leaks.len(), 1);
    assert_eq!(r.leaks[0].bytes, 50);
    // The new image's stack 1, not the old image's.
    assert_eq!(functions(&r.leaks[0].stack), ["main"]);
    assert_eq!(r.summary.allocations, 1);
    assert_balanced(&r);
}

#[test]
fn killed_process_reports_its_live_blocks_as_unreleased() {
    let mut t = Trace::main(10);
    t.alloc(10, 0x1000, 16, 1)
        .alloc(10, 0x2000, 16, 1)
        .alloc(10, 0x3000, 1000, 2)
        .alloc(10, 0x4000, 7, 3)
        .free(10, 0x4000, 3)
        .main_exit(10, 1, 9);
    let r = t.report();
    assert_eq!(r.exit, Some(ExitStatus::Signal(9)));
    assert_eq!(r.processes[0].end, ProcessEnd::Died);
    assert_eq!(r.processes[0].exit, Some(ExitStatus::Signal(9)));
    let shape: Vec<(LeakKind, u64, u64)> = r
        .leaks
        .iter()
        .map(|l| (l.kind, l.bytes, l.blocks))
        .collect();
    assert_eq!(
        shape,
        vec![
            (LeakKind::Unreleased, 1000, 1),
            (LeakKind::Unreleased, 32, 2)
        ]
    );
    assert_eq!(functions(&r.leaks[1].stack), ["make_node", "build", "main"]);
    assert_eq!(r.summary.leaked.unreleased.blocks, 3);
    assert_balanced(&r);
    // Not an error by default (memcheck's defaults are definite and possible).
    assert_eq!(r.error_count(&[LeakKind::Definite, LeakKind::Possible]), 0);
    let text = render_text(
        &r,
        &TextOptions {
            show_leak_kinds: LeakKind::ALL.to_vec(),
            ..TextOptions::default()
        },
    );
    assert!(
        text.contains(
            "1,000 bytes in 1 block were never released (the process died) (loss record 1 of 2)"
        ),
        "{text}"
    );
    assert!(
        text.contains("unreleased: 1,032 bytes in 3 blocks"),
        "{text}"
    );
}

#[test]
fn realloc_counts_as_free_and_alloc_and_counts_balance() {
    let mut t = Trace::main(10);
    let realloc = |old, new, size| {
        Event::Realloc(Realloc {
            pid: 10,
            tid: 10,
            old,
            new,
            size,
            stack: 2,
            func: func::REALLOC,
            flags: 0,
            time: 0,
        })
    };
    t.push(realloc(0, 0x1000, 10)) // realloc(NULL, 10)
        .push(realloc(0x1000, 0x2000, 20)) // moved
        .push(realloc(0x2000, 0x2000, 30)) // in place
        .push(realloc(0x2000, 0, 1 << 40)) // failed: 0x2000 stays live
        .alloc(10, 0x3000, 5, 1)
        .push(realloc(0x3000, 0, 0)) // realloc(p, 0) freed it
        .leaks(10, &[(0x2000, 30, 2, leak::DEFINITE)])
        .exit(10, 0);
    let r = t.report();
    assert_eq!(r.summary.allocations, 4);
    assert_eq!(r.summary.frees, 3);
    assert_eq!(r.summary.bytes_allocated, 65);
    assert_balanced(&r);
    // No CLI record in this trace: the exit status comes from the process's own exit.
    assert_eq!(r.exit, Some(ExitStatus::Code(0)));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn dlclosed_library_still_names_stacks_defined_while_it_was_loaded() {
    let lib_ra = LIB_BIAS + 0x2100 + 1;
    let mut t = Trace::main(10);
    t.module(10, LIB, LIB_BIAS)
        .stack(10, 4, &[lib_ra, ra(0x1300)])
        .alloc(10, 0x1000, 24, 4)
        .push(Event::ModuleUnload(ModuleUnload {
            pid: 10,
            bias: LIB_BIAS,
        }))
        // Another library now sits at the same address; old stacks must not move to it.
        .module(10, "/tmp/other.so", LIB_BIAS)
        .stack(10, 5, &[lib_ra])
        .alloc(10, 0x2000, 8, 5)
        .push(Event::ModuleUnload(ModuleUnload {
            pid: 10,
            bias: LIB_BIAS,
        }))
        .stack(10, 6, &[lib_ra])
        .alloc(10, 0x3000, 4, 6)
        .leaks(
            10,
            &[
                (0x1000, 24, 4, leak::DEFINITE),
                (0x2000, 8, 5, leak::DEFINITE),
                (0x3000, 4, 6, leak::DEFINITE),
            ],
        )
        .exit(10, 0);
    let r = t.report();
    assert_eq!(functions(&r.leaks[0].stack), ["plugin_leak", "main"]);
    assert_eq!(r.leaks[0].stack[0].module.as_deref(), Some(LIB));
    assert_eq!(r.leaks[0].stack[0].line, Some(7));
    assert_eq!(r.leaks[1].stack[0].module.as_deref(), Some("/tmp/other.so"));
    assert_eq!(r.leaks[2].stack[0].module, None);
    assert_eq!(r.leaks[2].stack[0].function, None);
}

#[test]
fn stacks_may_be_referenced_before_their_definition_and_are_symbolized_once() {
    let mut t = Trace::default();
    t.start(10, 1, start_flags::MAIN, 0)
        .module(10, EXE, BIAS)
        // Another thread published the alloc before the stack it refers to.
        .alloc(10, 0x1000, 1, 8)
        .alloc(10, 0x2000, 1, 8)
        .stack(10, 8, &[ra(0x1100), ra(0x1300)])
        .stack(10, 9, &[ra(0x1200), ra(0x1300)])
        .alloc(10, 0x3000, 1, 9)
        .leaks(
            10,
            &[
                (0x1000, 1, 8, leak::POSSIBLE),
                (0x2000, 1, 8, leak::POSSIBLE),
                (0x3000, 1, 9, leak::POSSIBLE),
            ],
        )
        .exit(10, 0);
    let mut a = Analyzer::default();
    a.feed_trace(&t.bytes()).unwrap();
    let mut symbols = FakeSymbols::standard();
    let r = a.finish(&mut symbols);
    assert_eq!(functions(&r.leaks[0].stack), ["make_node", "main"]);
    assert_eq!(r.leaks[0].blocks, 2);
    // make_node, build, main: three distinct pcs, main shared.
    assert_eq!(symbols.calls, 3);
}

#[test]
fn num_callers_truncates_after_inlined_frames_are_expanded() {
    let mut t = Trace::main(10);
    t.stack(10, 7, &[ra(0x1400), ra(0x1200), ra(0x1300)])
        .alloc(10, 0x1000, 4, 7)
        .leaks(10, &[(0x1000, 4, 7, leak::DEFINITE)])
        .exit(10, 0);
    let r = t.report_with(AnalyzerOptions {
        num_callers: 3,
        ..Default::default()
    });
    assert_eq!(functions(&r.leaks[0].stack), ["inner", "outer", "build"]);
    let r = t.report_with(AnalyzerOptions {
        num_callers: 0,
        ..Default::default()
    });
    assert_eq!(functions(&r.leaks[0].stack).len(), 4);
}

#[test]
fn corrupt_trace_is_an_error_naming_the_offset() {
    let mut t = Trace::main(10);
    t.alloc(10, 0x1000, 16, 1).exit(10, 0);
    let mut bytes = t.bytes();
    let mut offset = wire::TRACE_HEADER_LEN;
    for e in &t.events[..3] {
        offset += e.encode().len();
    }
    bytes[offset..offset + 4].copy_from_slice(&3u32.to_le_bytes());
    let err = Analyzer::default().feed_trace(&bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("corrupt trace at offset {offset}: record length 3 is not a multiple of 8")
    );
    let err = Analyzer::default()
        .feed_trace(&t.bytes()[..offset + 5])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("truncated record at offset {offset}")
    );
}

#[test]
fn garbage_fed_to_the_analyzer_never_panics() {
    let good = {
        let mut t = Trace::main(10);
        t.alloc(10, 0x1000, 16, 1)
            .free(10, 0x1000, 2)
            .bad_free(10, 0x1000, 3)
            .push(Event::ForkPrepare(ForkPrepare { pid: 10, token: 1 }))
            .start(11, 10, start_flags::FORKED, 1)
            .leaks(10, &[(0x1000, 16, 1, 77)])
            .exit(10, 0);
        t.bytes()
    };
    let mut seed = 12345u64;
    for _ in 0..2000 {
        let mut bytes = good.clone();
        for _ in 0..4 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let i = wire::TRACE_HEADER_LEN + (seed >> 33) as usize % (bytes.len() - 16);
            bytes[i] = (seed >> 20) as u8;
        }
        let mut a = Analyzer::default();
        let _ = a.feed_trace(&bytes);
        let r = a.finish(&mut FakeSymbols::standard());
        let _ = render_text(&r, &TextOptions::default());
    }
}

#[test]
fn shim_payload_writer_layout_decodes() {
    // The shim builds payloads with wire::PayloadWriter in the documented field order.
    let mut buf = [0u8; wire::ALLOC_LEN];
    let mut w = wire::PayloadWriter::new(&mut buf);
    w.u32(10);
    w.u32(11);
    w.u64(0xdead_0000);
    w.u64(48);
    w.u32(5);
    w.u8(func::CALLOC);
    w.u8(family::MALLOC);
    w.u16(0);
    w.u64(99);
    assert_eq!(w.len(), wire::ALLOC_LEN);
    let rec = encode_record(wire::kind::ALLOC, &buf);
    let (event, len) = decode_record(&rec, 0).unwrap();
    assert_eq!(len, wire::record_len(wire::ALLOC_LEN));
    assert_eq!(
        event,
        Event::Alloc(Alloc {
            pid: 10,
            tid: 11,
            addr: 0xdead_0000,
            size: 48,
            stack: 5,
            func: func::CALLOC,
            family: family::MALLOC,
            flags: 0,
            time: 99,
        })
    );
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(|s| s.as_str()).collect();
    k.sort();
    k
}

#[test]
fn json_report_has_the_documented_shape() {
    let mut t = Trace::main(10);
    t.alloc(10, 0x1000, 16, 1)
        .free(10, 0x1000, 2)
        .bad_free(10, 0x1000, 3)
        .alloc(10, 0x2000, 40, 1)
        .leaks(10, &[(0x2000, 40, 1, leak::DEFINITE)])
        .exit(10, 0)
        .main_exit(10, 0, 0);
    let r = t.report();
    let v: Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(v["schema"], "fencepost-report/1");
    assert_eq!(v["command"], serde_json::json!(["./prog", "arg"]));
    assert_eq!(v["exit"], serde_json::json!({"code": 0}));
    for key in [
        "allocations",
        "frees",
        "bytes_allocated",
        "inherited",
        "processes",
        "errors",
    ] {
        assert!(v["summary"][key].is_u64(), "summary.{key}");
    }
    for kind in [
        "definite",
        "indirect",
        "possible",
        "reachable",
        "unreleased",
    ] {
        assert_eq!(
            keys(&v["summary"]["leaked"][kind]),
            ["blocks", "bytes", "records"],
            "{kind}"
        );
    }
    let p = &v["processes"][0];
    assert_eq!(p["pid"], 10);
    assert_eq!(p["exe"], EXE);
    assert_eq!(p["start"], "main");
    assert_eq!(p["end"], "exit");
    assert_eq!(p["exit"], serde_json::json!({"code": 0}));

    let e = &v["errors"][0];
    assert_eq!(
        keys(e),
        [
            "alloc_stack",
            "block",
            "call",
            "count",
            "free_stack",
            "kind",
            "message",
            "pid",
            "stack",
            "thread"
        ]
    );
    assert_eq!(e["kind"], "double-free");
    assert_eq!(e["block"]["address"], 0x1000);
    assert_eq!(e["block"]["size"], 16);
    assert_eq!(e["block"]["offset"], 0);
    let frame = &e["stack"][0];
    assert_eq!(
        keys(frame),
        ["address", "file", "function", "inlined", "line", "module"]
    );
    assert_eq!(frame["function"], "main");
    assert_eq!(frame["line"], 30);
    assert_eq!(frame["address"], ra(0x1300));

    let l = &v["leaks"][0];
    assert_eq!(keys(l), ["blocks", "bytes", "kind", "pid", "stack"]);
    assert_eq!(l["kind"], "definite");
    assert_eq!(l["bytes"], 40);

    // Unknown frames are nulls, not missing keys.
    let mut t = Trace::main(10);
    t.stack(10, 4, &[0x42])
        .alloc(10, 0x1, 1, 4)
        .main_exit(10, 1, 9);
    let v: Value = serde_json::from_str(&t.report().to_json()).unwrap();
    assert_eq!(v["exit"], serde_json::json!({"signal": 9}));
    let frame = &v["leaks"][0]["stack"][0];
    assert!(frame["module"].is_null() && frame["function"].is_null() && frame["line"].is_null());
    assert_eq!(v["leaks"][0]["kind"], "unreleased");

    // And it reads back.
    assert_eq!(Report::from_json(&r.to_json()).unwrap(), r);
    assert!(Report::from_json("{}").is_err());
}

#[test]
fn text_report_reads_like_memcheck() {
    let mut t = Trace::main(1234);
    t.alloc(1234, 0x1000, 16, 1)
        .free(1234, 0x1000, 2)
        .bad_free(1234, 0x1000, 3)
        .stack(1234, 7, &[ra(0x1400), 0x4011a6])
        .alloc(1234, 0x2000, 40, 1)
        .alloc(1234, 0x3000, 360, 7)
        .alloc(1234, 0x4000, 2000, 2)
        .leaks(
            1234,
            &[
                (0x2000, 40, 1, leak::DEFINITE),
                (0x3000, 360, 7, leak::INDIRECT),
                (0x4000, 2000, 2, leak::REACHABLE),
            ],
        )
        .exit(1234, 0)
        .main_exit(1234, 0, 0);
    let r = t.report();
    let text = render_text(&r, &TextOptions::default());
    let expected_parts = [
        "fencepost: ./prog arg (pid 1234)\n",
        "double-free: free() of a block that was already freed\n   at main (list.c:30)\n \
         block of 16 bytes allocated by malloc at\n   at make_node (list.c:12)\n   by build (list.c:20)\n   by main (list.c:30)\n \
         freed at\n   at build (list.c:20)\n   by main (list.c:30)\n",
        "40 bytes in 1 block are definitely lost (loss record 3 of 3)\n   at make_node (list.c:12)\n",
        "HEAP SUMMARY: in use at exit: 2,400 bytes in 3 blocks; total heap usage: 4 allocs, 1 free, 2,416 bytes allocated\n",
        "   definitely lost: 40 bytes in 1 block\n",
        "   indirectly lost: 360 bytes in 1 block\n",
        "     possibly lost: 0 bytes in 0 blocks\n",
        "   still reachable: 2,000 bytes in 1 block\n",
        "not shown: indirect, reachable",
        "ERROR SUMMARY: 2 errors from 2 contexts\n",
    ];
    for part in expected_parts {
        assert!(text.contains(part), "missing {part:?} in\n{text}");
    }
    assert!(!text.contains("indirectly lost (loss"), "{text}");

    let all = render_text(
        &r,
        &TextOptions {
            show_leak_kinds: LeakKind::ALL.to_vec(),
            num_callers: 2,
            ..TextOptions::default()
        },
    );
    assert!(
        all.contains(
            "360 bytes in 1 block are indirectly lost (loss record 2 of 3)\n   at inner (util.h:3) (inlined)\n   by outer (util.c:9)\n\n"
        ),
        "{all}"
    );
    assert!(all.contains("2,000 bytes in 1 block are still reachable (loss record 1 of 3)"));

    let summary = render_text(
        &r,
        &TextOptions {
            leak_check: LeakCheck::Summary,
            ..TextOptions::default()
        },
    );
    assert!(!summary.contains("loss record"), "{summary}");
    assert!(summary.contains("LEAK SUMMARY:"));
    let none = render_text(
        &r,
        &TextOptions {
            leak_check: LeakCheck::No,
            ..TextOptions::default()
        },
    );
    assert!(!none.contains("LEAK SUMMARY"));
    assert!(
        none.contains("ERROR SUMMARY: 1 error from 1 context\n"),
        "{none}"
    );
}

#[test]
fn text_report_shows_unknown_frames_and_sections_per_process() {
    let mut t = Trace::main(10);
    t.stack(10, 4, &[0x4011a6, BIAS + 0x1f00])
        .alloc(10, 0x1000, 8, 4)
        .push(Event::ForkPrepare(ForkPrepare { pid: 10, token: 1 }))
        .start(11, 10, start_flags::FORKED, 1)
        .main_exit(10, 0, 0)
        .exit(10, 0)
        .leaks(10, &[(0x1000, 8, 4, leak::DEFINITE)]);
    let r = t.report();
    let text = render_text(&r, &TextOptions::default());
    assert!(
        text.contains("   at 0x4011a6\n   by 0x555500001f00 (in /tmp/prog)\n"),
        "{text}"
    );
    assert!(
        text.contains("== pid 10: /tmp/prog (exited with code 0) =="),
        "{text}"
    );
    assert!(
        text.contains("== pid 11, forked from 10: /tmp/prog (died without exiting) =="),
        "{text}"
    );
    assert!(
        text.contains("1 alloc (1 inherited from the parent), 0 frees, 8 bytes allocated"),
        "{text}"
    );
}

#[test]
fn leak_kind_sets_parse_like_memcheck() {
    assert_eq!(LeakKind::parse_set("all").unwrap(), LeakKind::ALL.to_vec());
    assert_eq!(LeakKind::parse_set("none").unwrap(), vec![]);
    assert_eq!(
        LeakKind::parse_set("definite,possible").unwrap(),
        vec![LeakKind::Definite, LeakKind::Possible]
    );
    assert!(LeakKind::parse_set("definite,bogus").is_err());
}

/// Not a test of behaviour: how fast the analyzer digests alloc/free pairs
/// (`cargo test --release -p fencepost-analyzer -- --ignored --nocapture throughput`).
#[test]
#[ignore]
fn throughput_of_alloc_free_pairs() {
    let pairs = 1_000_000u64;
    let mut records = Vec::new();
    for i in 0..pairs {
        let addr = 0x1000 + (i % 5000) * 64;
        records.extend(
            Event::Alloc(Alloc {
                pid: 10,
                tid: 10,
                addr,
                size: 24,
                stack: 1,
                func: func::MALLOC,
                family: family::MALLOC,
                flags: 0,
                time: i,
            })
            .encode(),
        );
        records.extend(
            Event::Free(Free {
                pid: 10,
                tid: 10,
                addr,
                stack: 2,
                func: func::FREE,
                block_family: family::MALLOC,
                flags: 0,
                time: i,
            })
            .encode(),
        );
    }
    let mut a = Analyzer::default();
    let start = std::time::Instant::now();
    let mut pos = 0;
    while pos < records.len() {
        pos += a.feed_record(&records[pos..], pos as u64).unwrap();
    }
    let elapsed = start.elapsed();
    let r = a.finish(&mut FakeSymbols::standard());
    assert_eq!(r.summary.frees, pairs);
    println!(
        "{} ns per alloc+free pair",
        elapsed.as_nanos() / u128::from(pairs)
    );
}

#[test]
fn analyzer_and_report_can_move_to_the_consumer_thread() {
    fn is_send<T: Send>() {}
    is_send::<Analyzer>();
    is_send::<Report>();
}

/// The example in docs/report-format.md must be a report this code reads and writes alike.
#[test]
fn documented_example_is_a_valid_report() {
    let doc = include_str!("../../../docs/report-format.md");
    let start = doc.find("```json\n").expect("example block") + "```json\n".len();
    let end = start + doc[start..].find("```").expect("end of example");
    let example = &doc[start..end];
    let report = Report::from_json(example).unwrap();
    assert_eq!(report.errors[0].kind, ErrorKind::DoubleFree);
    assert_eq!(report.leaks[0].stack[1].function, None);
    let written: Value = serde_json::from_str(&report.to_json()).unwrap();
    let documented: Value = serde_json::from_str(example).unwrap();
    assert_eq!(written, documented);
    let blocks: u64 = report.leaks.iter().map(|l| l.blocks).sum();
    assert_eq!(report.summary.allocations - report.summary.frees, blocks);
}
