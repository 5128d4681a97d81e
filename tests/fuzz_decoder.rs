//! The trace decoder on hostile input, in the test suite: a few seconds of seeded
//! mutations (xorshift) of the real traces in fuzz/corpus/trace/ and of random bytes,
//! through `decode::decode_record` and `Analyzer::feed_trace`. Neither may panic. The long
//! run is `cargo +nightly fuzz run trace` (fuzz/), or this loop for longer: every loop
//! here runs for `FUZZ_SECONDS` when it is set (`FUZZ_SECONDS=600 cargo test --release
//! --test fuzz_decoder`), and a few seconds otherwise.

use std::time::{Duration, Instant};

use fencepost_analyzer::{decode, wire, Analyzer};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/trace");
    let mut files: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    assert!(!files.is_empty(), "no seed traces in {}", dir.display());
    files.sort();
    files
}

/// One mutation: flip bytes, overwrite with interesting values, truncate, splice, or
/// duplicate a range.
fn mutate(rng: &mut XorShift, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(8) {
        if v.is_empty() {
            v.extend_from_slice(&rng.next().to_le_bytes());
            continue;
        }
        let at = rng.below(v.len());
        match rng.below(6) {
            0 => v[at] ^= 1 << rng.below(8),
            1 => {
                let vals: [u64; 6] = [0, 1, u32::MAX as u64, u64::MAX, 0x8000_0000, 7];
                let val = vals[rng.below(vals.len())].to_le_bytes();
                let n = (1 << rng.below(4)).min(v.len() - at);
                v[at..at + n].copy_from_slice(&val[..n]);
            }
            2 => v.truncate(at),
            3 if !other.is_empty() => {
                let from = rng.below(other.len());
                let n = rng.below(256).min(other.len() - from);
                v.splice(at..at, other[from..from + n].iter().copied());
            }
            4 => {
                let n = rng.below(64).min(v.len() - at);
                let chunk = v[at..at + n].to_vec();
                v.splice(at..at, chunk);
            }
            _ => v[at] = rng.next() as u8,
        }
    }
    v
}

fn exercise(data: &[u8]) {
    let _ = decode::decode_record(data, 0);
    if data.len() > wire::TRACE_HEADER_LEN {
        let _ = decode::decode_record(&data[wire::TRACE_HEADER_LEN..], 16);
    }
    let _ = Analyzer::default().feed_trace(data);
}

fn fuzz_for(duration: Duration, seed: u64) -> u64 {
    let seeds = corpus();
    let mut rng = XorShift(seed);
    let start = Instant::now();
    let mut cases = 0;
    while start.elapsed() < duration {
        let input = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())];
        let data = if rng.below(10) == 0 {
            (0..rng.below(512)).map(|_| rng.next() as u8).collect()
        } else {
            mutate(&mut rng, input, other)
        };
        exercise(&data);
        cases += 1;
    }
    cases
}

#[test]
fn seed_traces_decode_cleanly() {
    for trace in corpus() {
        Analyzer::default()
            .feed_trace(&trace)
            .expect("a real trace decodes");
    }
}

/// How long a fuzz loop runs: `FUZZ_SECONDS` when set, else `default` seconds.
fn fuzz_duration(default: u64) -> Duration {
    let secs = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    Duration::from_secs(secs)
}

#[test]
fn mutated_traces_never_panic() {
    let duration = fuzz_duration(3);
    let cases = fuzz_for(duration, 0x5eed_f00d);
    eprintln!("{cases} cases in {} s", duration.as_secs());
    assert!(cases > 100, "only {cases} cases ran");
}

// ---- the suppression parser ----

/// Seeds: memcheck's block shapes, LSan lines, the built-in file.
fn supp_corpus() -> Vec<Vec<u8>> {
    let blocks = [
        "{\n   leak-one\n   Memcheck:Leak\n   match-leak-kinds: definite,possible\n   fun:malloc\n   fun:make_node\n   ...\n   obj:/usr/lib/x86_64-linux-gnu/libc.so.6\n   src:list.c:26\n}\n",
        "{\n   <insert_a_suppression_name_here>\n   Memcheck:Addr4\n   fun:_Z4fillPi\n   fun:ma?n\n}\n{\n   free\n   Memcheck:Free\n   fun:free\n   fun:*\n}\n",
        "leak:libfoo.so\nleak:make_*\n# comment\n\nleak:src/x.c\n",
        fencepost_analyzer::suppress::DEFAULT_SUPPRESSIONS,
    ];
    blocks.iter().map(|b| b.as_bytes().to_vec()).collect()
}

fn fuzz_suppressions_for(duration: Duration, seed: u64) -> u64 {
    let seeds = supp_corpus();
    let mut rng = XorShift(seed);
    let start = Instant::now();
    let mut cases = 0u64;
    while start.elapsed() < duration {
        let a = &seeds[rng.below(seeds.len())];
        let b = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, a, b);
        let text = String::from_utf8_lossy(&input);
        let _ = fencepost_analyzer::suppress::SuppressionSet::parse(&text, "fuzz");
        cases += 1;
    }
    cases
}

#[test]
fn mutated_suppression_files_never_panic() {
    for seed in supp_corpus() {
        let text = String::from_utf8(seed).expect("utf-8 seed");
        fencepost_analyzer::suppress::SuppressionSet::parse(&text, "seed").expect("a seed parses");
    }
    let duration = fuzz_duration(2);
    let cases = fuzz_suppressions_for(duration, 0x5eed_5abb);
    eprintln!("{cases} cases in {} s", duration.as_secs());
    assert!(cases > 100, "only {cases} cases ran");
}
