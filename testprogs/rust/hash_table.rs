//! hash_table.rs: std's HashMap, grown from empty to 5,000 entries, then a leak.
//! Built with: rustc --crate-name hash_table -g -C opt-level=0 hash_table.rs
//!
//! Rust's allocator calls malloc for alignments up to 16 and relies on getting them: a
//! hash table's allocation (its buckets, then its control bytes, 244 bytes for 16 buckets of
//! 12 bytes) is read 16 control bytes at a time with aligned SSE2 loads. A tool that gives
//! such a block less than 16 makes the program die of a general-protection fault.
//!
//! A correct tool runs it to the end with no error and reports one loss record:
//!   definite, 40 bytes in 1 block, at the line marked FP:lost, called from main.
//! Exit status 0.
//!
//! valgrind 3.19 memcheck: "40 bytes in 1 blocks are definitely lost ... by
//! hash_table::lose_one (hash_table.rs:NN)".
//! Natively: prints "entries 5000 sum 12497500", exits 0.

use std::collections::HashMap;

/// Allocates 40 bytes and drops the only pointer to them.
#[inline(never)]
fn lose_one() -> u8 {
    let block: Box<[u8; 40]> = Box::new([3u8; 40]); // FP:lost
    let first = block[0];
    std::mem::forget(block);
    first
}

fn main() {
    let mut table: HashMap<u32, u64> = HashMap::new();
    for i in 0..5000u32 {
        table.insert(i, u64::from(i));
    }
    let sum: u64 = table.values().sum();
    println!("entries {} sum {}", table.len(), sum + u64::from(lose_one()) - 3);
}
