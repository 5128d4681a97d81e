//! The trace decoder on hostile input: `decode_record` on the raw bytes, then the whole
//! input as a trace file through `Analyzer::feed_trace` (with the file header prepended
//! when the input lacks it, so the fuzzer reaches the records). Neither may panic, hang or
//! allocate without bound; errors are values.
#![no_main]

use fencepost_analyzer::{decode, wire, Analyzer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode::decode_record(data, 0);
    let mut analyzer = Analyzer::default();
    if data.starts_with(&wire::TRACE_MAGIC) {
        let _ = analyzer.feed_trace(data);
    } else {
        let mut trace = Vec::with_capacity(data.len() + wire::TRACE_HEADER_LEN);
        trace.extend_from_slice(&wire::TRACE_MAGIC);
        trace.extend_from_slice(&wire::VERSION.to_le_bytes());
        trace.extend_from_slice(&0u32.to_le_bytes());
        trace.extend_from_slice(data);
        let _ = analyzer.feed_trace(&trace);
    }
});
