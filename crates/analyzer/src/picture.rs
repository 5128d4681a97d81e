//! The picture of a block and a bad access, as the text report draws it:
//!
//! ```text
//! [ 13 bytes ..................... ]|guard
//!                                   ^ read 1 byte at offset 13
//! ```
//!
//! Two lines of plain text of bounded width (about 60 columns, whatever the block size), so
//! that the text report and, later, the HTML report draw the same thing. A block of any size
//! is one bar; when the access is inside a long block the bar shows the start, `...`, a
//! window of one column per byte around the access, `...`, and the end.

use crate::report::{ErrorKind, ErrorReport};
use crate::text::thousands;

/// What lies next to the block on one side, as far as the picture is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Nothing drawn.
    Nothing,
    /// A guard page (`|guard` / `guard|`).
    Guard,
    /// Canary bytes checked at free or exit.
    Canary,
}

/// Everything the picture shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockPicture {
    pub block_size: u64,
    /// Drawn `[ freed N bytes xxxx ]` instead of `[ N bytes .... ]`.
    pub freed: bool,
    pub before: Side,
    pub after: Side,
    /// First byte of the access, from the block start (negative: before it).
    pub offset: i64,
    /// Bytes accessed; `None` (unknown) is drawn as one.
    pub len: Option<u64>,
    /// Written after the caret, e.g. `read 1 byte at offset 13`.
    pub note: String,
}

/// Interior columns of the bar (between `[` and `]`) at least.
const BAR: usize = 32;
/// Bytes shown one per column around an access inside a long block.
const WINDOW: u64 = 16;
const GUARD_BYTES: u64 = 4096;

/// The picture for an error, when it has one (bad accesses and overwritten canaries with a
/// block).
pub fn picture_for(e: &ErrorReport) -> Option<BlockPicture> {
    let block = e.block.as_ref()?;
    let canary = e.found_at.is_some();
    let (before, after, freed) = match e.kind {
        ErrorKind::HeapBufferOverflow | ErrorKind::InvalidAccess => (
            Side::Nothing,
            if canary { Side::Canary } else { Side::Guard },
            false,
        ),
        ErrorKind::HeapBufferUnderflow => (
            if canary { Side::Canary } else { Side::Guard },
            Side::Nothing,
            false,
        ),
        ErrorKind::UseAfterFree => (Side::Nothing, Side::Nothing, true),
        // A fatal signal has a block only for a misaligned access (a #GP) into one.
        ErrorKind::MisalignedAccess | ErrorKind::FatalSignal => {
            (Side::Nothing, Side::Nothing, false)
        }
        _ => return None,
    };
    let access = e.access.as_ref();
    let len = access.and_then(|a| a.size);
    let offset = block.offset;
    let note = match (canary, access) {
        (true, _) => format!(
            "{} overwritten at offset {offset}",
            bytes_phrase(len.unwrap_or(1))
        ),
        (false, Some(a)) => match len {
            Some(n) => format!("{} {} at offset {offset}", a.op.as_str(), bytes_phrase(n)),
            None => format!("{} at offset {offset}", a.op.as_str()),
        },
        (false, None) => format!("offset {offset}"),
    };
    Some(BlockPicture {
        block_size: block.size,
        freed,
        before,
        after,
        offset,
        len,
        note,
    })
}

fn bytes_phrase(n: u64) -> String {
    format!("{} {}", thousands(n), if n == 1 { "byte" } else { "bytes" })
}

/// One stretch of the bar: bytes `[start, end)` drawn in `cols` columns from column `col`.
struct Run {
    start: u64,
    end: u64,
    col: usize,
    cols: usize,
}

/// Draws the two lines (no indentation, no trailing newline).
pub fn draw(p: &BlockPicture) -> [String; 2] {
    let size = p.block_size;
    let fill = if p.freed { 'x' } else { '.' };
    let label = if p.freed {
        format!("freed {}", bytes_phrase(size))
    } else {
        bytes_phrase(size)
    };
    let len = p.len.unwrap_or(1).max(1);
    let inside = p.offset >= 0 && (p.offset as u64) < size;

    // The left margin: whatever lies before the block.
    let (before_text, before_cols) = match (p.before, p.offset < 0) {
        (Side::Guard, _) => ("guard|", 6),
        (Side::Canary, _) => ("canary", 6),
        (Side::Nothing, true) => ("", 6),
        (Side::Nothing, false) => ("", 0),
    };
    let bar_col = before_cols; // column of '['

    // The interior: one proportional run, or start / window / end for a long block.
    let mut interior: Vec<char> = Vec::new();
    let mut runs: Vec<Run> = Vec::new();
    let label_cols = label.chars().count() + 2;
    let proportional = !inside || size <= (BAR as u64 - 2) * 2;
    let mut label_at_right = false;
    if proportional {
        let cols = BAR.max(label_cols + 4) - 2;
        runs.push(Run {
            start: 0,
            end: size,
            col: bar_col + 2,
            cols,
        });
        interior.push(' ');
        interior.extend(std::iter::repeat_n(fill, cols));
        interior.push(' ');
        // The label goes where the access is not.
        if inside {
            let access_col = col_in(&runs[0], p.offset as u64);
            label_at_right = access_col < bar_col + 2 + label_cols;
        }
    } else {
        let off = p.offset as u64;
        let ws = off.saturating_sub(4).min(size - WINDOW);
        let we = ws + WINDOW;
        interior.push(' ');
        // Start of the block: the label, then a little fill.
        let head_cols = label_cols + 2;
        if ws > 0 {
            runs.push(Run {
                start: 0,
                end: ws,
                col: bar_col + 2,
                cols: head_cols,
            });
            interior.extend(std::iter::repeat_n(fill, head_cols));
            interior.extend(" ... ".chars());
        }
        let col = bar_col + 1 + interior.len();
        runs.push(Run {
            start: ws,
            end: we,
            col,
            cols: WINDOW as usize,
        });
        interior.extend(std::iter::repeat_n(fill, WINDOW as usize));
        if we < size {
            interior.extend(" ... ".chars());
            let col = bar_col + 1 + interior.len();
            // The end of the block; it carries the label when the window is at the start.
            let tail_cols = if ws == 0 { label_cols + 2 } else { 3 };
            runs.push(Run {
                start: we,
                end: size,
                col,
                cols: tail_cols,
            });
            interior.extend(std::iter::repeat_n(fill, tail_cols));
        }
        interior.push(' ');
        label_at_right = ws == 0;
    }
    // Write the label over the fill, at the left (after the first space) or the right.
    let label_chars: Vec<char> = format!(" {label} ").chars().collect();
    let at = if label_at_right {
        interior.len().saturating_sub(label_chars.len())
    } else {
        0
    };
    for (i, c) in label_chars.iter().enumerate() {
        if let Some(slot) = interior.get_mut(at + i) {
            *slot = *c;
        }
    }
    let bar_end = bar_col + 1 + interior.len(); // column of ']'

    let (after_text, after_col) = match p.after {
        Side::Guard => ("|guard", bar_end + 2),
        Side::Canary => ("canary", bar_end + 1),
        Side::Nothing => ("", bar_end + 1),
    };
    let before_edge = bar_col.saturating_sub(if p.before == Side::Guard { 2 } else { 1 });

    // Column of one byte offset, in whichever region it falls.
    let col_of = |o: i64| -> usize {
        if o < 0 {
            let k = o.unsigned_abs() - 1;
            let k = match p.before {
                Side::Guard => k.min(GUARD_BYTES) * 5 / GUARD_BYTES,
                _ => k,
            };
            before_edge.saturating_sub(k.min(before_edge as u64) as usize)
        } else if (o as u64) >= size {
            let k = o as u64 - size;
            let k = match p.after {
                Side::Guard => k.min(GUARD_BYTES) * 5 / GUARD_BYTES,
                _ => k,
            };
            after_col + k.min(4) as usize
        } else {
            let o = o as u64;
            let run = runs
                .iter()
                .find(|r| o >= r.start && o < r.end)
                .unwrap_or(&runs[runs.len() - 1]);
            col_in(run, o)
        }
    };
    let first = col_of(p.offset);
    let last = col_of(p.offset.saturating_add(len.min(i64::MAX as u64) as i64 - 1)).max(first);

    let mut top = String::new();
    top.push_str(&format!("{before_text:>width$}", width = before_cols));
    top.push('[');
    top.extend(interior);
    top.push(']');
    top.push_str(after_text);
    let mut bottom = " ".repeat(first);
    bottom.push('^');
    bottom.push_str(&"~".repeat(last - first));
    bottom.push(' ');
    bottom.push_str(&p.note);
    [top, bottom]
}

/// Column of byte `o` within a run, proportionally.
fn col_in(run: &Run, o: u64) -> usize {
    let span = (run.end - run.start).max(1);
    let rel = (o - run.start) as u128 * run.cols as u128 / span as u128;
    run.col + (rel as usize).min(run.cols.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pic(
        size: u64,
        offset: i64,
        len: u64,
        freed: bool,
        before: Side,
        after: Side,
    ) -> [String; 2] {
        draw(&BlockPicture {
            block_size: size,
            freed,
            before,
            after,
            offset,
            len: Some(len),
            note: "NOTE".into(),
        })
    }

    /// Column of the caret in the second line.
    fn caret(lines: &[String; 2]) -> usize {
        lines[1].find('^').unwrap()
    }

    #[test]
    fn overflow_points_at_the_guard() {
        let p = pic(13, 13, 1, false, Side::Nothing, Side::Guard);
        assert_eq!(p[0], "[ 13 bytes ..................... ]|guard");
        assert_eq!(p[1], format!("{}^ NOTE", " ".repeat(35)));
        assert_eq!(p[0].as_bytes()[caret(&p)], b'g');
    }

    #[test]
    fn straddling_access_spans_into_the_guard() {
        let p = pic(13, 8, 8, false, Side::Nothing, Side::Guard);
        let c = caret(&p);
        assert!(c > 1 && c < 33, "{p:?}");
        let tildes = p[1].matches('~').count();
        assert_eq!(c + tildes, 35, "{p:?}"); // the span ends on the guard
    }

    #[test]
    fn underflow_points_left_of_the_block() {
        let p = pic(16, -2, 2, false, Side::Guard, Side::Nothing);
        assert!(p[0].starts_with("guard|[ 16 bytes "), "{p:?}");
        assert!(caret(&p) < 6, "{p:?}");
        let p = pic(16, -4, 4, false, Side::Canary, Side::Nothing);
        assert!(p[0].starts_with("canary[ 16 bytes "), "{p:?}");
        assert_eq!(caret(&p), 2, "{p:?}");
        assert_eq!(p[1], "  ^~~~ NOTE");
    }

    #[test]
    fn freed_block_keeps_the_label_away_from_the_caret() {
        let p = pic(32, 8, 4, true, Side::Nothing, Side::Nothing);
        assert!(p[0].starts_with("[ x"), "{p:?}");
        assert!(p[0].ends_with(" freed 32 bytes ]"), "{p:?}");
        assert_eq!(p[0].as_bytes()[caret(&p)], b'x', "{p:?}");
        let p = pic(32, 28, 4, true, Side::Nothing, Side::Nothing);
        assert!(p[0].starts_with("[ freed 32 bytes x"), "{p:?}");
        assert_eq!(p[0].as_bytes()[caret(&p)], b'x', "{p:?}");
    }

    #[test]
    fn long_blocks_stay_narrow_and_show_a_window_around_the_access() {
        let p = pic(1 << 20, 500_000, 4, true, Side::Nothing, Side::Nothing);
        assert!(p[0].chars().count() <= 70, "{p:?}");
        assert!(p[0].contains("freed 1,048,576 bytes"), "{p:?}");
        assert_eq!(p[0].matches(" ... ").count(), 2, "{p:?}");
        assert_eq!(p[0].as_bytes()[caret(&p)], b'x', "{p:?}");
        assert_eq!(p[1].matches('~').count(), 3);
        // An overflow of a huge block is drawn like a small one.
        let p = pic(
            1 << 40,
            (1 << 40) + 100,
            8,
            false,
            Side::Nothing,
            Side::Guard,
        );
        assert!(p[0].chars().count() <= 70, "{p:?}");
        assert_eq!(p[0].as_bytes()[caret(&p)], b'g', "{p:?}");
        // Access at the very start and at the very end of a long block.
        for off in [0i64, (1 << 20) - 1] {
            let p = pic(1 << 20, off, 1, false, Side::Nothing, Side::Nothing);
            assert_eq!(p[0].as_bytes()[caret(&p)], b'.', "{off} {p:?}");
        }
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        for size in [0u64, 1, 2, 61, 62, 63, 100, u64::MAX] {
            for off in [i64::MIN, -5000, -1, 0, 1, 60, 61, 62, 99, i64::MAX] {
                for len in [0u64, 1, 7, u64::MAX] {
                    for side in [Side::Nothing, Side::Guard, Side::Canary] {
                        let _ = pic(size, off, len, size % 2 == 0, side, side);
                    }
                }
            }
        }
    }
}
