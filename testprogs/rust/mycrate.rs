//! mycrate.rs: a Rust leak through `mycrate::make_buffer`.
//! Built with: rustc --crate-name mycrate -g -C opt-level=0 mycrate.rs
//!
//! A correct tool demangles the Rust frame and reports one loss record:
//!   definite, 256 bytes in 1 block, function mycrate::make_buffer, at the line marked
//!   FP:make_buffer (mycrate.rs:18), called from mycrate::main.
//! Rust's runtime keeps a few blocks of its own (thread info, stdout buffer): those are
//! reachable, not errors. No error. Exit status 0.
//!
//! valgrind 3.19 memcheck: "256 bytes in 1 blocks are definitely lost ... by
//! mycrate::make_buffer (mycrate.rs:18) by mycrate::main (mycrate.rs:29)".
//! Natively: prints "first byte 7", exits 0.

/// Allocates a 256-byte buffer and leaks it: `Box::leak` gives up ownership, and the
/// caller keeps only one byte of it, so no pointer to the block survives.
#[inline(never)]
fn make_buffer(len: usize) -> &'static mut [u8] {
    let buffer: Vec<u8> = vec![7u8; len]; // FP:make_buffer
    Box::leak(buffer.into_boxed_slice())
}

#[inline(never)]
fn first_byte() -> u8 {
    let buffer = make_buffer(256);
    buffer[0]
}

fn main() {
    println!("first byte {}", first_byte());
}
