//! Analyzer tests: event streams built with the wire encoders, written to a trace, read back
//! and analysed; assertions are on findings (kind, bytes, blocks, stacks, lines).

use std::collections::HashMap;

use serde_json::Value;

use crate::analysis::{Analyzer, AnalyzerOptions, SymbolSource};
use crate::decode::*;
use crate::report::{AccessOp, ErrorKind, ExitStatus, FoundAt, LeakKind, ProcessEnd, Report};
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
    /// What the symbol tables alone name (`function_symbol`); not counted in `calls`.
    symtab: HashMap<(String, u64), String>,
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
        // Faulting pcs (frame 0 of a fault's stack: looked up as is, not minus one).
        s.add(EXE, 0x1500, vec![sym("read_past", "overrun.c", 11, false)]);
        s.add(
            EXE,
            0x1600,
            vec![sym("write_after_free", "uaf.c", 9, false)],
        );
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

    fn function_symbol(&mut self, m: &ModuleRef, pc: u64, ret: bool) -> Option<String> {
        let rel = pc - m.bias - u64::from(ret);
        self.symtab.get(&(m.path.to_string(), rel)).cloned()
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
    #[allow(clippy::too_many_arguments)]
    fn fault(
        &mut self,
        pid: u32,
        kind: u8,
        write: bool,
        addr: u64,
        block: (u64, u64, u32, u32),
        stack: u32,
        insn: &[u8],
        regs: &[(usize, u64)],
    ) -> &mut Self {
        let (block_addr, block_size, alloc_stack, free_stack) = block;
        self.push(Event::Fault(FaultRecord {
            pid,
            tid: pid,
            addr,
            pc: FAULT_PC,
            block_addr,
            block_size,
            stack,
            alloc_stack,
            free_stack,
            flags: if write { wire::FAULT_WRITE } else { 0 },
            kind,
            alloc_func: if block_addr != 0 { func::MALLOC } else { 0 },
            free_func: if free_stack != 0 { func::FREE } else { 0 },
            time: 0,
            insn: insn_bytes(insn),
            regs: regs_of(regs),
        }))
    }
    fn fatal(
        &mut self,
        pid: u32,
        signo: i32,
        code: i32,
        addr: u64,
        insn: &[u8],
        regs: &[(usize, u64)],
    ) -> &mut Self {
        self.push(Event::FatalSignal(FatalSignalRecord {
            pid,
            tid: pid,
            signo,
            code,
            addr,
            pc: FAULT_PC,
            stack: 10,
            time: 0,
            insn: insn_bytes(insn),
            regs: regs_of(regs),
        }))
    }
    fn canary(
        &mut self,
        pid: u32,
        block: (u64, u64),
        alloc_stack: u32,
        stack: u32,
        bad_offset: i64,
        bad_len: u32,
    ) -> &mut Self {
        self.push(Event::Canary(CanaryRecord {
            pid,
            tid: pid,
            block_addr: block.0,
            block_size: block.1,
            alloc_stack,
            stack,
            bad_offset,
            bad_len,
            alloc_func: func::MALLOC,
            time: 0,
        }))
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

/// The pc of the faulting instructions in these tests: `read_past (overrun.c:11)`.
const FAULT_PC: u64 = BIAS + 0x1500;

fn insn_bytes(b: &[u8]) -> [u8; wire::INSN_LEN] {
    let mut insn = [0u8; wire::INSN_LEN];
    insn[..b.len()].copy_from_slice(b);
    insn
}

fn regs_of(pairs: &[(usize, u64)]) -> [u64; 17] {
    let mut regs = [0u64; 17];
    for &(i, v) in pairs {
        regs[i] = v;
    }
    regs[16] = FAULT_PC;
    regs
}

const RAX: usize = 0;
const RSI: usize = 6;
const RDI: usize = 7;
/// `movzx eax, byte [rax]`: a 1-byte read.
const MOVZX_BYTE: &[u8] = &[0x0f, 0xb6, 0x00];
/// `mov dword [rax], 1`: a 4-byte write.
const MOV_DWORD_STORE: &[u8] = &[0xc7, 0x00, 0x01, 0x00, 0x00, 0x00];
/// `mov rax, [rax]`: an 8-byte read.
const MOV_QWORD_LOAD: &[u8] = &[0x48, 0x8b, 0x00];
/// `rep movsb`: 1-byte elements.
const REP_MOVSB: &[u8] = &[0xf3, 0xa4];
/// `movdqa xmm0, [rax]`: a 16-byte read that needs 16-byte alignment.
const MOVDQA_LOAD: &[u8] = &[0x66, 0x0f, 0x6f, 0x00];
/// `mov eax, [rax]`.
const MOV_DWORD_LOAD: &[u8] = &[0x8b, 0x00];

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
fn only_the_kinds_asked_for_are_symbolized() {
    // One stack, leaked twice: one block lost, one still reachable.
    let mut t = Trace::main(10);
    t.alloc(10, 0x1000, 16, 1)
        .alloc(10, 0x2000, 8, 1)
        .leaks(
            10,
            &[
                (0x1000, 16, 1, leak::DEFINITE),
                (0x2000, 8, 1, leak::REACHABLE),
            ],
        )
        .exit(10, 0)
        .main_exit(10, 0, 0);
    let r = t.report_with(AnalyzerOptions {
        symbolized_leak_kinds: Some(vec![LeakKind::Definite, LeakKind::Possible]),
        ..AnalyzerOptions::default()
    });
    let lost = r
        .leaks
        .iter()
        .find(|l| l.kind == LeakKind::Definite)
        .unwrap();
    assert_eq!(functions(&lost.stack), ["make_node", "build", "main"]);
    let held = r
        .leaks
        .iter()
        .find(|l| l.kind == LeakKind::Reachable)
        .unwrap();
    // The same pcs, unsymbolized: addresses and modules, every frame (none is known to be
    // below main), no names.
    assert_eq!(held.stack.len(), 3, "{:?}", held.stack);
    assert_eq!(held.stack[0].address, ra(0x1100));
    assert!(held.stack.iter().all(|f| f.module.as_deref() == Some(EXE)
        && f.function.is_none()
        && f.file.is_none()
        && f.line.is_none()));
    // Nothing else changes: the totals, and the order by size.
    assert_eq!(r.leaks[0].kind, LeakKind::Definite);
    assert_eq!(r.summary.leaked.reachable.bytes, 8);
    assert_eq!(r.summary.in_use_at_exit.bytes, 24);
}

#[test]
fn frames_below_an_unnamed_main_are_cut_by_their_symbols_alone() {
    // A stripped program: its own frames have no names, so no `main` ends the stack, which
    // runs on into the C runtime's start-up code in libc.
    let libc_frame = |rel: u64| LIB_BIAS + rel + 1;
    let mut t = Trace::main(10);
    t.module(10, LIB, LIB_BIAS)
        .stack(
            10,
            4,
            &[
                ra(0x1700),
                ra(0x1800),
                libc_frame(0x2200),
                libc_frame(0x2300),
            ],
        )
        .alloc(10, 0x1000, 16, 4)
        .leaks(10, &[(0x1000, 16, 4, leak::DEFINITE)])
        .exit(10, 0)
        .main_exit(10, 0, 0);
    let report = |options: AnalyzerOptions| {
        let mut symbols = FakeSymbols::standard();
        symbols
            .symtab
            .insert((LIB.into(), 0x2200), "__libc_start_call_main".into());
        let mut analyzer = Analyzer::new(options);
        analyzer.feed_trace(&t.bytes()).unwrap();
        let r = analyzer.finish(&mut symbols);
        (r, symbols.calls)
    };
    // The symbol table names libc's frame below main: the stack ends before it, and libc's
    // frames are never symbolized in full (which would read libc's DWARF).
    let (r, calls) = report(AnalyzerOptions::default());
    let stack = &r.leaks[0].stack;
    assert_eq!(stack.len(), 2, "{stack:?}");
    assert!(stack.iter().all(|f| f.module.as_deref() == Some(EXE)));
    assert_eq!(calls, 2, "only the program's frames were symbolized");
    // With --show-below-main=yes every frame is symbolized and kept.
    let (r, calls) = report(AnalyzerOptions {
        show_below_main: true,
        ..AnalyzerOptions::default()
    });
    assert_eq!(r.leaks[0].stack.len(), 4, "{:?}", r.leaks[0].stack);
    assert_eq!(calls, 4);
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

/// The freed history is not cleared when an address is allocated again (that would cost a
/// cache miss per allocation): a live block must still win over its address's past.
#[test]
fn a_block_allocated_again_at_a_freed_address_is_not_a_double_free() {
    let mut t = Trace::main(10);
    t.alloc(10, 0x1000, 16, 1)
        .free(10, 0x1000, 2)
        .alloc(10, 0x1000, 24, 3)
        .bad_free(10, 0x1000, 3) // live: not a double free (the shim owns it)
        .free(10, 0x1000, 2)
        .bad_free(10, 0x1000, 1) // freed twice now: the second allocation's block
        .exit(10, 0);
    let r = t.report();
    assert_eq!(r.errors.len(), 2, "{:?}", r.errors);
    assert_eq!(r.errors[0].kind, ErrorKind::InvalidFree);
    let block = r.errors[0].block.as_ref().unwrap();
    assert_eq!((block.offset, block.size), (0, 24));
    assert_eq!(r.errors[1].kind, ErrorKind::DoubleFree);
    assert_eq!(r.errors[1].block.as_ref().unwrap().size, 24);
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

/// `report` streams the file a buffer (1 MiB) at a time: records cut by a buffer's end, a
/// file cut anywhere, and corrupt records read exactly as they do from the whole file.
#[test]
fn a_trace_read_as_a_stream_reads_like_the_whole_file() {
    let mut t = Trace::main(10);
    // Enough records of varying length to cross the buffer several times.
    for i in 0..40_000u64 {
        let addr = 0x10_0000 + (i % 3000) * 64;
        if i % 7 == 0 {
            let frames: Vec<u64> = (0..i % 13).map(|k| ra(0x1100 + k * 0x100)).collect();
            t.stack(10, 100 + i as u32, &frames);
        }
        if i % 3000 < 2990 {
            t.alloc(10, addr, i % 100, 1);
        }
        if i % 5 != 0 {
            t.free(10, addr, 2);
        }
    }
    t.exit(10, 0);
    let bytes = t.bytes();
    assert!(bytes.len() > 3 << 20, "{}", bytes.len());
    let json = |a: Analyzer| a.finish(&mut FakeSymbols::standard()).to_json();

    let mut whole = Analyzer::default();
    whole.feed_trace(&bytes).unwrap();
    let mut streamed = Analyzer::default();
    streamed.feed_trace_from(&bytes[..]).unwrap();
    assert_eq!(json(streamed), json(whole));

    // Cut at, and around, buffer boundaries and elsewhere: the same error, naming the same
    // offset, and the same events fed before it.
    for cut in [
        0,
        5,
        12,
        16,
        17,
        1 << 20,
        (1 << 20) + 3,
        (1 << 20) + 8,
        (2 << 20) - 1,
        bytes.len() - 8,
        bytes.len() - 1,
    ] {
        let mut whole = Analyzer::default();
        let expected = whole.feed_trace(&bytes[..cut]);
        let mut streamed = Analyzer::default();
        let got = streamed.feed_trace_from(&bytes[..cut]);
        match (&expected, &got) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(crate::TraceError::Decode(g))) => assert_eq!(e, g, "cut at {cut}"),
            _ => panic!("cut at {cut}: {expected:?} vs {got:?}"),
        }
        assert_eq!(json(streamed), json(whole), "cut at {cut}");
    }

    // A corrupt record past the first buffer names its offset in the file.
    let mut offset = wire::TRACE_HEADER_LEN;
    let mut i = 0;
    while offset < (3 << 20) / 2 {
        offset += t.events[i].encode().len();
        i += 1;
    }
    let mut bad = bytes.clone();
    bad[offset..offset + 4].copy_from_slice(&12u32.to_le_bytes());
    let err = Analyzer::default().feed_trace_from(&bad[..]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("corrupt trace at offset {offset}: record length 12 is not a multiple of 8")
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
            .leaks(10, &[(0x1000, 16, 1, 77)]);
        with_fault_stacks(&mut t, 10);
        t.alloc(10, 0x7000_0ff3, 13, 1)
            .fault(
                10,
                wire::fault::OVERFLOW,
                false,
                0x7000_1000,
                (0x7000_0ff3, 13, 1, 0),
                10,
                MOVZX_BYTE,
                &[(RAX, 0x7000_1000)],
            )
            .fault(
                10,
                wire::fault::MISALIGNED,
                false,
                0,
                (0, 0, 0, 0),
                10,
                MOVDQA_LOAD,
                &[(RAX, 0x7000_0ff3)],
            )
            .canary(10, (0x7000_0ff3, 13), 1, 0, -3, 3)
            .fatal(10, 11, 1, 0, MOV_DWORD_LOAD, &[])
            .push(Event::HeapStats(HeapStatsRecord {
                pid: 10,
                guarded: 1,
                unguarded: 1,
                quarantine_bytes_max: 0,
                guard_budget_bytes: 0,
                sample_first: 0,
                sample_rate: 0,
            }))
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
            "fingerprint",
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
    assert_eq!(
        keys(l),
        [
            "allocated_by",
            "blocks",
            "bytes",
            "fingerprint",
            "kind",
            "pid",
            "stack"
        ]
    );
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
    let example_section = doc.find("\n## Example").expect("example section");
    let start = example_section
        + doc[example_section..]
            .find("```json\n")
            .expect("example block")
        + "```json\n".len();
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

/// A fault stack: the faulting pc (exact), then return addresses.
fn with_fault_stacks(t: &mut Trace, pid: u32) {
    t.stack(pid, 10, &[FAULT_PC, ra(0x1300)]);
    t.stack(pid, 11, &[BIAS + 0x1600, ra(0x1300)]);
}

#[test]
fn overflow_read_reports_size_offset_block_and_picture_once_with_a_count() {
    let mut t = Trace::main(10);
    with_fault_stacks(&mut t, 10);
    let block = 0x7000_0ff3u64; // 13 bytes ending at the guard page 0x7000_1000
    t.alloc(10, block, 13, 1);
    for _ in 0..3 {
        t.fault(
            10,
            wire::fault::OVERFLOW,
            false,
            block + 13,
            (block, 13, 1, 0),
            10,
            MOVZX_BYTE,
            &[(RAX, block + 13)],
        );
    }
    t.free(10, block, 2)
        .leaks(10, &[])
        .exit(10, 0)
        .main_exit(10, 0, 0);
    let r = t.report();
    assert_eq!(r.errors.len(), 1, "{:#?}", r.errors);
    let e = &r.errors[0];
    assert_eq!(e.kind, ErrorKind::HeapBufferOverflow);
    assert_eq!(e.count, 3);
    let access = e.access.as_ref().unwrap();
    assert_eq!(
        (access.op, access.size, access.address),
        (AccessOp::Read, Some(1), block + 13)
    );
    let b = e.block.as_ref().unwrap();
    assert_eq!((b.address, b.size, b.offset), (block, 13, 13));
    assert_eq!(b.allocated_by.as_deref(), Some("malloc"));
    assert_eq!(e.fault_address, Some(block + 13));
    // Frame 0 is the faulting pc itself: symbolized without the return-address adjustment.
    assert_eq!(functions(&e.stack), ["read_past", "main"]);
    assert_eq!(e.stack[0].line, Some(11));
    assert_eq!(e.stack[0].address, FAULT_PC);
    assert_eq!(
        functions(e.alloc_stack.as_ref().unwrap()),
        ["make_node", "build", "main"]
    );
    assert!(e.free_stack.is_none());
    assert_eq!(e.message, "read of 1 byte, 0 bytes after a 13-byte block");
    assert_eq!(r.summary.errors, 3);
    // --error-exitcode counts every occurrence.
    assert_eq!(r.error_count(&[]), 3);

    let text = render_text(&r, &TextOptions::default());
    let expected =
        "heap-buffer-overflow: read of 1 byte, 0 bytes after a 13-byte block (3 times)\n\
                    \x20  at read_past (overrun.c:11)\n\
                    \x20  by main (list.c:30)\n\
                    \x20block allocated by malloc at\n\
                    \x20  at make_node (list.c:12)\n\
                    \x20  by build (list.c:20)\n\
                    \x20  by main (list.c:30)\n\
                    \n\
                    \x20  [ 13 bytes ..................... ]|guard\n\
                    \x20                                     ^ read 1 byte at offset 13\n";
    assert!(text.contains(expected), "missing\n{expected}\nin\n{text}");
    assert!(
        text.contains("ERROR SUMMARY: 3 errors from 1 context"),
        "{text}"
    );

    let v: Value = serde_json::from_str(&r.to_json()).unwrap();
    let e = &v["errors"][0];
    assert_eq!(
        keys(e),
        [
            "access",
            "alloc_stack",
            "block",
            "count",
            "fault_address",
            "fingerprint",
            "free_stack",
            "kind",
            "message",
            "pid",
            "stack",
            "thread"
        ]
    );
    assert_eq!(e["kind"], "heap-buffer-overflow");
    assert_eq!(
        e["access"],
        serde_json::json!({"op": "read", "size": 1, "address": block + 13})
    );
    assert_eq!(e["block"]["offset"], 13);
    assert_eq!(e["count"], 3);
    assert_eq!(Report::from_json(&r.to_json()).unwrap(), r);
}

#[test]
fn writes_reads_and_string_instructions_are_told_apart_and_sized() {
    let mut t = Trace::main(10);
    with_fault_stacks(&mut t, 10);
    t.stack(10, 12, &[BIAS + 0x1500, ra(0x1200), ra(0x1300)]);
    t.stack(10, 13, &[BIAS + 0x1500, ra(0x1100), ra(0x1300)]);
    let ints = 0x7000_0fe8u64; // int[6]
    t.alloc(10, ints, 24, 1)
        // a[6] = 1
        .fault(
            10,
            wire::fault::OVERFLOW,
            true,
            ints + 24,
            (ints, 24, 1, 0),
            10,
            MOV_DWORD_STORE,
            &[(RAX, ints + 24)],
        )
        // memcpy-like rep movsb one past the end: element size 1
        .fault(
            10,
            wire::fault::OVERFLOW,
            true,
            ints + 24,
            (ints, 24, 1, 0),
            12,
            REP_MOVSB,
            &[(RSI, 0x9000), (RDI, ints + 24)],
        )
        // an 8-byte read at offset 20 straddles into the guard: the access starts at 20
        .fault(
            10,
            wire::fault::OVERFLOW,
            false,
            ints + 24,
            (ints, 24, 1, 0),
            13,
            MOV_QWORD_LOAD,
            &[(RAX, ints + 20)],
        );
    let r = t.report();
    assert_eq!(r.errors.len(), 3, "{:#?}", r.errors);
    let shape: Vec<(AccessOp, Option<u64>, i64)> = r
        .errors
        .iter()
        .map(|e| {
            let a = e.access.as_ref().unwrap();
            (a.op, a.size, e.block.as_ref().unwrap().offset)
        })
        .collect();
    assert_eq!(
        shape,
        [
            (AccessOp::Write, Some(4), 24),
            (AccessOp::Write, Some(1), 24),
            (AccessOp::Read, Some(8), 20)
        ]
    );
    assert_eq!(
        r.errors[0].message,
        "write of 4 bytes, 0 bytes after a 24-byte block"
    );
    assert_eq!(
        r.errors[2].message,
        "read of 8 bytes at offset 20 of a 24-byte block, 4 bytes past its end"
    );
    assert_eq!(r.errors[2].access.as_ref().unwrap().address, ints + 20);
    assert_eq!(r.errors[2].fault_address, Some(ints + 24));
    let text = render_text(&r, &TextOptions::default());
    // From offset 20 inside the block to the guard page.
    assert!(
        text.contains("\n   [ 24 bytes ..................... ]|guard\n                              ^~~~~~~~~ read 8 bytes at offset 20\n"),
        "{text}"
    );
    assert!(text.contains("^ write 1 byte at offset 24\n"), "{text}");
}

#[test]
fn use_after_free_names_the_alloc_and_free_stacks() {
    let mut t = Trace::main(10);
    with_fault_stacks(&mut t, 10);
    let block = 0x7100_0fe0u64;
    t.alloc(10, block, 32, 1).free(10, block, 2);
    t.fault(
        10,
        wire::fault::USE_AFTER_FREE,
        true,
        block + 8,
        (block, 32, 1, 2),
        11,
        MOV_DWORD_STORE,
        &[(RAX, block + 8)],
    );
    let r = t.report();
    let e = &r.errors[0];
    assert_eq!(e.kind, ErrorKind::UseAfterFree);
    assert_eq!(e.access.as_ref().unwrap().size, Some(4));
    assert_eq!(e.access.as_ref().unwrap().op, AccessOp::Write);
    let b = e.block.as_ref().unwrap();
    assert_eq!((b.size, b.offset), (32, 8));
    assert_eq!(b.freed_by.as_deref(), Some("free"));
    assert_eq!(functions(&e.stack), ["write_after_free", "main"]);
    assert_eq!(functions(e.free_stack.as_ref().unwrap()), ["build", "main"]);
    assert_eq!(
        e.message,
        "write of 4 bytes at offset 8 of a 32-byte block freed earlier"
    );
    let text = render_text(&r, &TextOptions::default());
    let expected =
        "use-after-free: write of 4 bytes at offset 8 of a 32-byte block freed earlier\n\
                    \x20  at write_after_free (uaf.c:9)\n\
                    \x20  by main (list.c:30)\n\
                    \x20block allocated by malloc at\n\
                    \x20  at make_node (list.c:12)\n\
                    \x20  by build (list.c:20)\n\
                    \x20  by main (list.c:30)\n\
                    \x20freed by free() at\n\
                    \x20  at build (list.c:20)\n\
                    \x20  by main (list.c:30)\n\
                    \n\
                    \x20  [ xxxxxxxxxxxxxxx freed 32 bytes ]\n\
                    \x20           ^~~~ write 4 bytes at offset 8\n";
    assert!(text.contains(expected), "missing\n{expected}\nin\n{text}");
}

#[test]
fn underflow_with_a_vector_load_is_sized_and_drawn_left_of_the_block() {
    let mut t = Trace::main(10);
    with_fault_stacks(&mut t, 10);
    let block = 0x7000_1000u64; // --protect-below: starts at a page, guard below
    t.alloc(10, block, 64, 1);
    t.fault(
        10,
        wire::fault::UNDERFLOW,
        false,
        block - 16,
        (block, 64, 1, 0),
        10,
        MOVDQA_LOAD,
        &[(RAX, block - 16)],
    );
    let r = t.report();
    let e = &r.errors[0];
    assert_eq!(e.kind, ErrorKind::HeapBufferUnderflow);
    assert_eq!(e.access.as_ref().unwrap().size, Some(16));
    assert_eq!(e.block.as_ref().unwrap().offset, -16);
    assert_eq!(
        e.message,
        "read of 16 bytes, 16 bytes before a 64-byte block"
    );
    let text = render_text(&r, &TextOptions::default());
    assert!(
        text.contains("\n   guard|[ 64 bytes ..................... ]\n"),
        "{text}"
    );
    // The whole access lies in the guard page, drawn five columns wide.
    assert!(
        text.contains("\n       ^ read 16 bytes at offset -16\n"),
        "{text}"
    );
    let v: Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(v["errors"][0]["block"]["offset"], -16);
}

#[test]
fn undecodable_instruction_leaves_the_size_null() {
    let mut t = Trace::main(10);
    with_fault_stacks(&mut t, 10);
    let block = 0x7000_0ff0u64;
    t.alloc(10, block, 16, 1);
    t.fault(
        10,
        wire::fault::OVERFLOW,
        true,
        block + 16,
        (block, 16, 1, 0),
        10,
        &[0x0f, 0xff],
        &[],
    );
    let r = t.report();
    let a = r.errors[0].access.as_ref().unwrap();
    assert_eq!(
        (a.op, a.size, a.address),
        (AccessOp::Write, None, block + 16)
    );
    assert_eq!(
        r.errors[0].message,
        "write of unknown size, 0 bytes after a 16-byte block"
    );
    let v: Value = serde_json::from_str(&r.to_json()).unwrap();
    assert!(v["errors"][0]["access"]["size"].is_null());
    let text = render_text(&r, &TextOptions::default());
    assert!(text.contains("^ write at offset 16\n"), "{text}");
}

#[test]
fn misaligned_vector_load_finds_its_block_from_the_registers_and_advises_alignment() {
    let mut t = Trace::main(10);
    with_fault_stacks(&mut t, 10);
    let block = 0x7200_0fe8u64; // 24 bytes: 8-aligned, as fencepost places them
    t.alloc(10, block, 24, 1);
    // A #GP: no address, no block from the shim.
    t.fault(
        10,
        wire::fault::MISALIGNED,
        false,
        0,
        (0, 0, 0, 0),
        10,
        MOVDQA_LOAD,
        &[(RAX, block)],
    );
    let r = t.report();
    let e = &r.errors[0];
    assert_eq!(e.kind, ErrorKind::MisalignedAccess);
    let a = e.access.as_ref().unwrap();
    assert_eq!((a.op, a.size, a.address), (AccessOp::Read, Some(16), block));
    let b = e.block.as_ref().unwrap();
    assert_eq!((b.address, b.size, b.offset), (block, 24, 0));
    assert_eq!(
        functions(e.alloc_stack.as_ref().unwrap()),
        ["make_node", "build", "main"]
    );
    assert_eq!(e.fault_address, None);
    assert!(
        e.advice.as_deref().unwrap().contains("--alignment=16"),
        "{:?}",
        e.advice
    );
    let text = render_text(&r, &TextOptions::default());
    assert!(
        text.contains("misaligned-access: read of 16 bytes at offset 0 of a 24-byte block: address 0x72000fe8 is not 16-byte aligned\n"),
        "{text}"
    );
    assert!(text.contains("rerun with --alignment=16\n"), "{text}");
    assert_eq!(Report::from_json(&r.to_json()).unwrap(), r);
}

#[test]
fn fatal_signals_carry_the_signal_and_say_what_happened() {
    let mut t = Trace::main(10);
    with_fault_stacks(&mut t, 10);
    t.fatal(10, 11, 1, 0, MOV_DWORD_LOAD, &[(RAX, 0)]);
    let r = t.report();
    let e = &r.errors[0];
    assert_eq!(e.kind, ErrorKind::FatalSignal);
    assert_eq!(e.signal, Some(11));
    assert_eq!(e.signal_code, Some(1));
    assert_eq!(e.fault_address, Some(0));
    let a = e.access.as_ref().unwrap();
    assert_eq!((a.op, a.size, a.address), (AccessOp::Read, Some(4), 0));
    assert_eq!(functions(&e.stack), ["read_past", "main"]);
    let text = render_text(&r, &TextOptions::default());
    assert!(
        text.contains("fatal-signal: SIGSEGV (signal 11): invalid read of 4 bytes at address 0x0 (a null pointer)\n   at read_past (overrun.c:11)\n   by main (list.c:30)\n"),
        "{text}"
    );
    assert!(!text.contains("guard"), "{text}");
    let v: Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(v["errors"][0]["signal"], 11);
    assert_eq!(v["errors"][0]["kind"], "fatal-signal");
    assert_eq!(r.error_count(&[]), 1);

    let message = |signo, code, addr, insn: &[u8], regs: &[(usize, u64)]| {
        let mut t = Trace::main(10);
        with_fault_stacks(&mut t, 10);
        t.fatal(10, signo, code, addr, insn, regs);
        t.report().errors[0].message.clone()
    };
    assert_eq!(
        message(11, 1, 0x7f00_dead_0000, MOV_DWORD_STORE, &[(RAX, 0x7f00_dead_0000)]),
        "SIGSEGV (signal 11): invalid write of 4 bytes at address 0x7f00dead0000, which is not mapped"
    );
    assert_eq!(
        message(11, 2, 0x5555_0000_1000, MOV_DWORD_STORE, &[(RAX, 0x5555_0000_1000)]),
        "SIGSEGV (signal 11): invalid write of 4 bytes at address 0x555500001000, which the program may not write"
    );
    assert_eq!(
        message(11, 1, 0x10, MOV_DWORD_LOAD, &[(RAX, 0x10)]),
        "SIGSEGV (signal 11): invalid read of 4 bytes at address 0x10 (16 bytes past a null pointer)"
    );
    assert_eq!(
        message(11, 1, 0x1234, &[0x0f, 0xff], &[]),
        "SIGSEGV (signal 11): invalid memory access at address 0x1234, which is not mapped"
    );
    assert_eq!(
        message(8, 1, FAULT_PC, &[0xf7, 0xf9], &[]),
        "SIGFPE (signal 8): integer divide by zero"
    );
    assert_eq!(
        message(6, 0, 0, &[], &[]),
        "SIGABRT (signal 6): the program called abort()"
    );
    assert!(message(4, 2, FAULT_PC, &[0x0f, 0x0b], &[])
        .starts_with("SIGILL (signal 4): illegal instruction: ud2"));
    assert_eq!(
        message(7, 2, 0x7f00_0000_2000, MOV_DWORD_LOAD, &[(RAX, 0x7f00_0000_2000)]),
        "SIGBUS (signal 7): invalid read of 4 bytes at address 0x7f0000002000: no memory backs it (past the end of a mapped file?)"
    );
}

#[test]
fn overwritten_canaries_are_overflows_or_underflows_found_at_free_or_exit() {
    let mut t = Trace::main(10);
    with_fault_stacks(&mut t, 10);
    let (a, b) = (0x7300_0ff0u64, 0x7400_0ff3u64);
    t.alloc(10, a, 16, 1)
        .alloc(10, b, 13, 3)
        .canary(10, (a, 16), 1, 2, -4, 4)
        .free(10, a, 2)
        .canary(10, (b, 13), 3, 0, 13, 1)
        .leaks(10, &[(b, 13, 3, leak::DEFINITE)])
        .exit(10, 0);
    let r = t.report();
    assert_eq!(r.errors.len(), 2, "{:#?}", r.errors);
    let under = &r.errors[0];
    assert_eq!(under.kind, ErrorKind::HeapBufferUnderflow);
    assert_eq!(under.found_at, Some(FoundAt::Free));
    let acc = under.access.as_ref().unwrap();
    assert_eq!(
        (acc.op, acc.size, acc.address),
        (AccessOp::Write, Some(4), a - 4)
    );
    assert_eq!(under.block.as_ref().unwrap().offset, -4);
    assert_eq!(functions(&under.stack), ["build", "main"]);
    assert_eq!(
        under.message,
        "the 4 bytes before a 16-byte block were overwritten (found when the block was freed)"
    );
    let over = &r.errors[1];
    assert_eq!(over.kind, ErrorKind::HeapBufferOverflow);
    assert_eq!(over.found_at, Some(FoundAt::Exit));
    assert!(over.stack.is_empty());
    assert_eq!(functions(over.alloc_stack.as_ref().unwrap()), ["main"]);
    assert_eq!(
        over.message,
        "the 1 byte after a 13-byte block was overwritten (found at exit)"
    );
    assert_eq!(r.summary.errors, 2);

    let text = render_text(&r, &TextOptions::default());
    let expected = "heap-buffer-underflow: the 4 bytes before a 16-byte block were overwritten (found when the block was freed)\n\
                    \x20block allocated by malloc at\n\
                    \x20  at make_node (list.c:12)\n\
                    \x20  by build (list.c:20)\n\
                    \x20  by main (list.c:30)\n\
                    \x20freed at\n\
                    \x20  at build (list.c:20)\n\
                    \x20  by main (list.c:30)\n\
                    \n\
                    \x20  canary[ 16 bytes ..................... ]\n\
                    \x20    ^~~~ 4 bytes overwritten at offset -4\n";
    assert!(text.contains(expected), "missing\n{expected}\nin\n{text}");
    assert!(
        text.contains("heap-buffer-overflow: the 1 byte after a 13-byte block was overwritten (found at exit)\n block allocated by malloc at\n   at main (list.c:30)\n"),
        "{text}"
    );
    assert!(text.contains("]canary\n"), "{text}");
    assert!(!text.contains("no stack recorded"), "{text}");
    let v: Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(v["errors"][0]["found_at"], "free");
    assert_eq!(v["errors"][1]["found_at"], "exit");
    assert_eq!(
        v["errors"][1]["access"],
        serde_json::json!({"op": "write", "size": 1, "address": b + 13})
    );
}

#[test]
fn heap_stats_go_into_the_summaries_and_unguarded_blocks_are_announced() {
    let mut t = Trace::main(10);
    t.push(Event::HeapStats(HeapStatsRecord {
        pid: 10,
        guarded: 1_000_000,
        unguarded: 3,
        quarantine_bytes_max: 1 << 28,
        guard_budget_bytes: 1 << 33,
        sample_first: 0,
        sample_rate: 0,
    }))
    .leaks(10, &[])
    .exit(10, 0);
    let r = t.report();
    let g = r.summary.guard.unwrap();
    assert_eq!((g.guarded, g.unguarded), (1_000_000, 3));
    assert_eq!(r.processes[0].guard, Some(g));
    let v: Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(v["summary"]["guard"]["guarded"], 1_000_000);
    assert_eq!(v["summary"]["guard"]["unguarded"], 3);
    let text = render_text(&r, &TextOptions::default());
    assert!(
        text.contains("\n3 blocks were not guarded (guard budget reached); their overruns are only found at free\n"),
        "{text}"
    );
    // Without unguarded blocks (or without the guard heap) there is no such line.
    let mut t = Trace::main(10);
    t.push(Event::HeapStats(HeapStatsRecord {
        pid: 10,
        guarded: 5,
        unguarded: 0,
        quarantine_bytes_max: 0,
        guard_budget_bytes: 0,
        sample_first: 0,
        sample_rate: 0,
    }))
    .exit(10, 0);
    let text = render_text(&t.report(), &TextOptions::default());
    assert!(!text.contains("not guarded"), "{text}");
    assert!(!text.contains("sampled mode"), "{text}");
    assert!(Trace::main(10).report().summary.guard.is_none());
}

#[test]
fn sampled_mode_says_how_many_blocks_it_guarded() {
    let mut t = Trace::main(10);
    for i in 0..3u64 {
        t.alloc(10, 0x1000 + 0x100 * i, 16, 1)
            .free(10, 0x1000 + 0x100 * i, 2);
    }
    t.push(Event::HeapStats(HeapStatsRecord {
        pid: 10,
        guarded: 2,
        unguarded: 0,
        quarantine_bytes_max: 0,
        guard_budget_bytes: 1 << 30,
        sample_first: 4,
        sample_rate: 1000,
    }))
    .leaks(10, &[])
    .exit(10, 0);
    let r = t.report();
    let v: Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(
        v["summary"]["guard"]["sample"],
        serde_json::json!({"first": 4, "rate": 1000})
    );
    let text = render_text(&r, &TextOptions::default());
    assert!(
        text.contains(
            "\nsampled mode: 2 of 3 blocks were guarded (each call site's first 4, then about \
             1 in 1,000); writes past the others are found when they are freed, reads past \
             them and their use after free are not found\n"
        ),
        "{text}"
    );
}

#[test]
fn fault_written_by_the_shim_decodes() {
    // The shim fills a FAULT_LEN buffer with wire::FaultRecord::write.
    let record = FaultRecord {
        pid: 10,
        tid: 11,
        addr: 0x7000_1000,
        pc: FAULT_PC,
        block_addr: 0x7000_0ff3,
        block_size: 13,
        stack: 10,
        alloc_stack: 1,
        free_stack: 0,
        flags: 0,
        kind: wire::fault::OVERFLOW,
        alloc_func: func::MALLOC,
        free_func: 0,
        time: 5,
        insn: insn_bytes(MOVZX_BYTE),
        regs: regs_of(&[(RAX, 0x7000_1000)]),
    };
    let mut buf = [0u8; wire::FAULT_LEN];
    let mut w = wire::PayloadWriter::new(&mut buf);
    record.write(&mut w);
    assert_eq!(w.len(), wire::FAULT_LEN);
    let (event, _) = decode_record(&encode_record(wire::kind::FAULT, &buf), 0).unwrap();
    assert_eq!(event, Event::Fault(record));
    // One byte short of the fields is corrupt, not a panic.
    // (Records are padded to 8 bytes, so "short" means a whole word short.)
    let short = encode_record(wire::kind::FAULT, &buf[..wire::FAULT_LEN - 8]);
    assert!(matches!(
        decode_record(&short, 0),
        Err(DecodeError::Corrupt { .. })
    ));
    // (kind, length written, shortest length read: HeapStats from before sampled mode
    // ended 8 bytes sooner)
    for (kind, len, shortest) in [
        (
            wire::kind::FATAL_SIGNAL,
            wire::FATAL_SIGNAL_LEN,
            wire::FATAL_SIGNAL_LEN,
        ),
        (wire::kind::CANARY, wire::CANARY_LEN, wire::CANARY_LEN),
        (
            wire::kind::HEAP_STATS,
            wire::HEAP_STATS_LEN,
            wire::HEAP_STATS_LEN - 8,
        ),
    ] {
        for ok in [len, shortest] {
            assert!(
                decode_record(&encode_record(kind, &vec![0; ok]), 0).is_ok(),
                "{kind}"
            );
        }
        assert!(
            decode_record(&encode_record(kind, &vec![0; shortest - 8]), 0).is_err(),
            "{kind}"
        );
    }
}

/// The error examples in docs/report-format.md are errors this code reads and writes alike.
#[test]
fn documented_error_examples_are_valid_errors() {
    let doc = include_str!("../../../docs/report-format.md");
    let example_section = doc.find("\n## Example").expect("example section");
    let mut kinds = Vec::new();
    for block in doc[..example_section].split("```json\n").skip(1) {
        let json = &block[..block.find("```").expect("end of example")];
        let error: crate::report::ErrorReport = serde_json::from_str(json).unwrap();
        let written = serde_json::to_value(&error).unwrap();
        let documented: Value = serde_json::from_str(json).unwrap();
        assert_eq!(written, documented, "{json}");
        kinds.push(error.kind);
    }
    assert_eq!(
        kinds,
        [
            ErrorKind::HeapBufferOverflow,
            ErrorKind::HeapBufferUnderflow,
            ErrorKind::FatalSignal
        ]
    );
}

#[test]
fn fatal_general_protection_fault_on_a_misaligned_heap_access_gets_the_advice() {
    // The shim reports an unhandled #GP as SIGSEGV with si_code SI_KERNEL and no address.
    let mut t = Trace::main(10);
    with_fault_stacks(&mut t, 10);
    let block = 0x7200_0fe8u64; // 24 bytes, 8-aligned
    t.alloc(10, block, 24, 1)
        .fatal(10, 11, 0x80, 0, MOVDQA_LOAD, &[(RAX, block)]);
    let r = t.report();
    let e = &r.errors[0];
    assert_eq!(e.kind, ErrorKind::MisalignedAccess);
    assert_eq!(
        (e.signal, e.signal_code, e.fault_address),
        (Some(11), Some(0x80), None)
    );
    let a = e.access.as_ref().unwrap();
    assert_eq!((a.op, a.size, a.address), (AccessOp::Read, Some(16), block));
    let b = e.block.as_ref().unwrap();
    assert_eq!((b.address, b.size, b.offset), (block, 24, 0));
    assert!(
        e.advice
            .as_deref()
            .unwrap()
            .ends_with("rerun with --alignment=16"),
        "{:?}",
        e.advice
    );
    assert_eq!(
        e.message,
        "SIGSEGV (signal 11): read of 16 bytes at offset 0 of a 24-byte block: address 0x72000fe8 \
         is not 16-byte aligned (general-protection fault)"
    );
    let text = render_text(&r, &TextOptions::default());
    assert!(
        text.contains(" block allocated by malloc at\n   at make_node (list.c:12)\n"),
        "{text}"
    );
    assert!(
        text.contains("\n     ^~~~~~~~~~~~~~~~~~~ read 16 bytes at offset 0\n"),
        "{text}"
    );
    // The same #GP outside the heap is only a crash.
    let mut t = Trace::main(10);
    with_fault_stacks(&mut t, 10);
    t.fatal(
        10,
        11,
        0x80,
        0,
        MOV_DWORD_LOAD,
        &[(RAX, 0x8000_0000_0000_0000)],
    );
    let e = &t.report().errors[0];
    assert!(e.advice.is_none() && e.block.is_none());
    assert_eq!(
        e.message,
        "SIGSEGV (signal 11): invalid read of 4 bytes at address 0x8000000000000000, a non-canonical address (a corrupted pointer?)"
    );
}
