//! How fast the analyzer is, measured against the targets of docs/performance.md
//! ("The analyzer"). Not a test: numbers depend on the machine.
//!
//! ```sh
//! # (a) decode + apply: events per second on a recorded trace
//! fencepost record --mode=fast -o /tmp/bt.fpt -- ./binary_trees 16
//! cargo run --release -p fencepost-analyzer --example analyzer_bench -- events /tmp/bt.fpt
//!
//! # (b) symbolization of 100,000 distinct code addresses, cold then cached
//! cargo run --release -p fencepost-analyzer --example analyzer_bench -- symbols [ELF] [COUNT]
//! ```
//!
//! `events` reads the whole trace into memory first, so the figure is the analyzer's alone
//! (decoding every record and applying it to the heap state), then times the same trace
//! streamed from the file as `fencepost report` reads it, and the report (`finish`).
//!
//! `symbols` picks COUNT (default 100,000) distinct addresses spread evenly over the
//! executable sections of ELF (default: this program, built with line tables in release),
//! and symbolizes each as a return address with a fresh [`Symbolizer`] (cold: the module
//! is opened and its DWARF parsed on the way), then all again (cached).

use std::time::Instant;

use fencepost_analyzer::decode::{
    self, Alloc, DecodeError, Event, ModuleLoad, Segment, StackDef, TraceWriter,
};
use fencepost_analyzer::symbolize::ModuleRef;
use fencepost_analyzer::{wire, Analyzer, AnalyzerOptions, Symbolizer};
use object::{Object, ObjectSection, SectionKind};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("events") if args.len() == 2 => events(&args[1]),
        Some("symbols") if args.len() <= 3 => {
            let elf = match args.get(1) {
                Some(path) => path.clone(),
                None => std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            };
            let count = args.get(2).map_or(Ok(100_000), |c| c.parse());
            match count {
                Ok(count) => symbols(&elf, count),
                Err(e) => Err(format!("COUNT: {e}")),
            }
        }
        _ => {
            Err("usage: analyzer_bench events TRACE | analyzer_bench symbols [ELF] [COUNT]".into())
        }
    };
    if let Err(e) = result {
        eprintln!("analyzer_bench: {e}");
        std::process::exit(2);
    }
}

/// Records in a trace file's body (every record is one event).
fn count_records(trace: &[u8]) -> Result<u64, DecodeError> {
    let body = decode::trace_body(trace)?;
    let (mut pos, mut n) = (0, 0u64);
    while pos < body.len() {
        let (_, record) = decode::record_at(&body[pos..], pos as u64)?;
        pos += record.len();
        n += 1;
    }
    Ok(n)
}

fn events(path: &str) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let records = count_records(&bytes).map_err(|e| format!("{path}: {e}"))?;
    println!(
        "trace {path}: {records} events, {:.1} MiB",
        bytes.len() as f64 / (1 << 20) as f64
    );
    let mut best = f64::MAX;
    for run in 1..=3 {
        let mut analyzer = Analyzer::new(AnalyzerOptions::default());
        let start = Instant::now();
        analyzer
            .feed_trace(&bytes)
            .map_err(|e| format!("{path}: {e}"))?;
        let secs = start.elapsed().as_secs_f64();
        best = best.min(secs);
        println!(
            "decode+apply (in memory), run {run}: {secs:.3} s, {:.1} M events/s",
            records as f64 / secs / 1e6
        );
        drop(analyzer);
    }
    println!(
        "decode+apply (in memory), best: {:.1} M events/s",
        records as f64 / best / 1e6
    );
    drop(bytes);

    let mut analyzer = Analyzer::new(AnalyzerOptions::default());
    let start = Instant::now();
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    analyzer
        .feed_trace_from(file)
        .map_err(|e| format!("{path}: {e}"))?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "decode+apply streamed from the file (as `fencepost report`): {secs:.3} s, {:.1} M events/s",
        records as f64 / secs / 1e6
    );
    let start = Instant::now();
    let report = analyzer.finish(&mut Symbolizer::new());
    println!(
        "finish (group, symbolize, sort): {:.3} s ({} loss records, {} errors)",
        start.elapsed().as_secs_f64(),
        report.leaks.len(),
        report.errors.len()
    );
    Ok(())
}

/// `count` distinct addresses spread evenly over the executable sections of `elf`.
fn code_addresses(elf: &str, count: usize) -> Result<Vec<u64>, String> {
    let data = std::fs::read(elf).map_err(|e| format!("{elf}: {e}"))?;
    let file = object::File::parse(&*data).map_err(|e| format!("{elf}: {e}"))?;
    let text: Vec<(u64, u64)> = file
        .sections()
        .filter(|s| s.kind() == SectionKind::Text && s.size() > 0)
        .map(|s| (s.address(), s.size()))
        .collect();
    let total: u64 = text.iter().map(|&(_, size)| size).sum();
    if total < count as u64 {
        return Err(format!(
            "{elf} has {total} bytes of code, fewer than {count} addresses"
        ));
    }
    let step = total / count as u64;
    let mut addresses = Vec::with_capacity(count);
    for i in 0..count as u64 {
        // The i-th step through the concatenated sections, mapped back to a section.
        let mut at = i * step;
        for &(start, size) in &text {
            if at < size {
                addresses.push(start + at + 1);
                break;
            }
            at -= size;
        }
    }
    Ok(addresses)
}

fn symbols(elf: &str, count: usize) -> Result<(), String> {
    let addresses = code_addresses(elf, count)?;
    let build_id = {
        let data = std::fs::read(elf).map_err(|e| format!("{elf}: {e}"))?;
        let file = object::File::parse(&*data).map_err(|e| format!("{elf}: {e}"))?;
        file.build_id().ok().flatten().unwrap_or_default().to_vec()
    };
    // As if loaded at a PIE's usual place; the symbolizer subtracts the bias.
    let bias = 0x5555_5555_4000;
    let module = ModuleRef {
        path: elf,
        build_id: &build_id,
        bias,
    };
    println!("{} distinct addresses in {elf}", addresses.len());
    let mut symbolizer = Symbolizer::new();
    for pass in ["cold", "cached"] {
        let start = Instant::now();
        let (mut named, mut with_line) = (0, 0);
        for &address in &addresses {
            let frames = symbolizer.symbolize(&module, bias + address, true);
            let outer = frames.last().expect("never empty");
            named += outer.function.is_some() as usize;
            with_line += outer.line.is_some() as usize;
        }
        println!(
            "Symbolizer, {pass}: {:.3} s ({named} with a function, {with_line} with a line)",
            start.elapsed().as_secs_f64()
        );
    }

    // The same addresses as the report meets them: one stack each, one block still live at
    // the end from each stack (the process never exits: every block is an `unreleased`
    // loss record), so `finish` symbolizes every frame.
    let (pid, stacks) = (1u32, addresses.len() as u32);
    let lo = addresses[0] - 1;
    let hi = addresses[addresses.len() - 1] + 1;
    let mut trace = TraceWriter::new(Vec::new()).map_err(|e| e.to_string())?;
    let mut write = |event: Event| trace.write_event(&event).map_err(|e| e.to_string());
    write(Event::ModuleLoad(ModuleLoad {
        pid,
        bias,
        segments: vec![Segment {
            vaddr: lo,
            memsz: hi - lo,
            flags: 5,
        }],
        build_id: build_id.clone(),
        path: elf.to_owned(),
    }))?;
    for (i, &address) in addresses.iter().enumerate() {
        let id = i as u32 + 1;
        write(Event::StackDef(StackDef {
            pid,
            id,
            frames: vec![bias + address],
        }))?;
        write(Event::Alloc(Alloc {
            pid,
            tid: pid,
            addr: 0x1000_0000 + 64 * id as u64,
            size: 16,
            stack: id,
            func: wire::func::MALLOC,
            family: wire::family::MALLOC,
            flags: 0,
            time: 0,
        }))?;
    }
    let bytes = trace.finish().map_err(|e| e.to_string())?;
    let mut analyzer = Analyzer::new(AnalyzerOptions::default());
    analyzer.feed_trace(&bytes).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let report = analyzer.finish(&mut Symbolizer::new());
    println!(
        "report of {stacks} stacks of one distinct frame each (finish, cold): {:.3} s, {} loss records",
        start.elapsed().as_secs_f64(),
        report.leaks.len()
    );
    Ok(())
}
