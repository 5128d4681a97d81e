//! Fast mode's blocks keep their metadata inline: 16 bytes in front of the block, in the
//! same glibc chunk, and one bit per 16 bytes of address space says where a live block
//! starts.
//!
//! The live-block table is a hash table far larger than the caches once a program holds a
//! few hundred thousand blocks, and every allocation and free missed in it: with a million
//! live blocks, the two misses were most of fast mode's cost. The header shares a cache
//! line with the block the program is about to use, and the bitmap is 1/128 of the heap's
//! span, so both are usually in cache.
//!
//! The bitmap, not the header, says whether a pointer is ours: a header is read only where
//! a bit says a live block starts, so a free of a pointer that was never ours (or was
//! already freed) touches nothing the program owns. Bits and headers change under the
//! table's shard lock for the block's address (`table::lock`), like table entries: the
//! bits of one 64-bit word cover 1 KiB, inside one 64 MiB region, so within one shard, and
//! a plain load and store updates them. A header the program overwrote (an underrun of the
//! block, or an overrun of the one before) fails its check and is reported; the block is
//! then never given back to glibc, whose own chunk header was probably hit too.
//!
//! Blocks that need more than 16-byte alignment, and every block in guard mode, stay in
//! the table. If a bitmap leaf cannot be mapped, the block goes in the table with its
//! header all the same (`table::PLACE_INLINE`): where its metadata lives and how its
//! memory is laid out are separate questions.

use crate::arena;
use crate::guard::CANARY;
use crate::table::{BlockMeta, PLACE_INLINE};
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

/// Bytes in front of each inline block.
pub const HDR: usize = 16;
/// Canary bytes right after each inline block (in the pad its chunk always has room for):
/// an overrun is found when the block is freed, or at exit.
pub const TAIL: usize = 8;

const GRANULE_SHIFT: u32 = 4;
/// One leaf of the bitmap covers 1 GiB of address space (8 MiB of bits, from the shim's
/// arena, whose pages are touched only where blocks are).
const REGION_SHIFT: u32 = 30;
const REGIONS: usize = 1 << (47 - REGION_SHIFT);
const LEAF_WORDS: usize = 1 << (REGION_SHIFT - GRANULE_SHIFT - 6);
const PAGE: usize = 4096;
const WORDS_PER_PAGE: usize = PAGE / 8;
/// After a leaf's bits, one bit per page of bits: set once the page was written. The exit
/// scan reads only those pages (asking the kernel with mincore would miss swapped ones).
const SUMMARY_WORDS: usize = LEAF_WORDS / WORDS_PER_PAGE / 64;

/// The bitmap's leaves by region (1 MiB of zeroed .bss, touched where used).
static DIR: [AtomicPtr<AtomicU64>; REGIONS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; REGIONS];

/// 16 bytes: the size (48 bits, all x86-64 addresses have), family, entry point, stack, a
/// check over those and the block's address, and two canary bytes next to the block, where
/// an underrun lands first: damage confined to them is reported to the byte, with the rest
/// of the header still trusted.
#[repr(C)]
struct Header {
    size_lo: u32,
    size_hi: u16,
    family: u8,
    func: u8,
    stack: u32,
    check: u16,
    canary: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<Header>() == HDR);

/// Largest size a header holds; bigger requests never succeed on x86-64.
const MAX_SIZE: u64 = (1 << 48) - 1;

fn check_of(addr: u64, size: u64, stack: u32, family: u8, func: u8) -> u16 {
    let x = addr
        ^ size.rotate_left(17)
        ^ (u64::from(stack) << 32)
        ^ (u64::from(family) << 8)
        ^ u64::from(func);
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as u16
}

/// What a header said when its block was released.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    None,
    /// Only canary bytes changed: the first changed one at `offset` from the block (-2 or
    /// -1), `len` bytes up to the block. The metadata is intact.
    Canary {
        offset: i64,
        len: u32,
    },
    /// The metadata itself was overwritten (so at least the 16 bytes of the header are
    /// suspect); what `take` returned is not to be trusted.
    Header,
}

impl Damage {
    /// The overwritten bytes as a canary report gives them: the first one's offset from
    /// the block, and how many up to the block.
    pub fn overwritten(self) -> Option<(i64, u32)> {
        match self {
            Damage::None => None,
            Damage::Canary { offset, len } => Some((offset, len)),
            Damage::Header => Some((-(HDR as i64), HDR as u32)),
        }
    }
}

/// The bitmap word and bit for `addr`, if its leaf exists.
#[inline]
fn bit_of(addr: u64) -> Option<(&'static AtomicU64, u64)> {
    let leaf = DIR
        .get((addr >> REGION_SHIFT) as usize)?
        .load(Ordering::Acquire);
    if leaf.is_null() {
        return None;
    }
    let granule = (addr as usize & ((1 << REGION_SHIFT) - 1)) >> GRANULE_SHIFT;
    // SAFETY: granule / 64 < LEAF_WORDS; leaves are never unmapped.
    Some((unsafe { &*leaf.add(granule / 64) }, 1u64 << (granule % 64)))
}

/// Like `bit_of`, making the leaf if it is missing. None if the shim's arena is out of
/// space.
#[inline]
fn bit_for(addr: u64) -> Option<(&'static AtomicU64, u64)> {
    bit_of(addr).or_else(|| new_leaf(addr))
}

/// The first block in its GiB of address space: makes the region's leaf.
#[cold]
#[inline(never)]
fn new_leaf(addr: u64) -> Option<(&'static AtomicU64, u64)> {
    let slot = DIR.get((addr >> REGION_SHIFT) as usize)?;
    arena::shared_table(slot, LEAF_WORDS + SUMMARY_WORDS);
    bit_of(addr)
}

/// Writes the header of the block at `addr` (16-aligned, with HDR bytes of its chunk in
/// front) and marks it live. False when the bitmap has no room for it: the caller then
/// records it in the table. Call with `addr`'s shard locked.
pub fn mark(addr: u64, meta: &BlockMeta) -> bool {
    let size = meta.size.min(MAX_SIZE);
    let header = Header {
        size_lo: size as u32,
        size_hi: (size >> 32) as u16,
        family: meta.family,
        func: meta.func,
        stack: meta.stack,
        check: check_of(addr, size, meta.stack, meta.family, meta.func),
        canary: [CANARY; 2],
    };
    // SAFETY: the HDR bytes before `addr` and the TAIL bytes after its `size` belong to the
    // block's glibc chunk (asked for with room for both) and to no one else; the block is
    // not handed to the program yet.
    unsafe {
        ((addr as usize - HDR) as *mut Header).write(header);
        ((addr + meta.size) as *mut [u8; TAIL]).write_unaligned([CANARY; TAIL]);
    }
    let Some((word, bit)) = bit_for(addr) else {
        return false;
    };
    let w = word.load(Ordering::Relaxed);
    if w == 0 {
        note_page(addr);
    }
    word.store(w | bit, Ordering::Relaxed);
    true
}

/// Sets the summary bit of the bitmap page holding `addr`'s bit (first block in a word: a
/// page already noted is not written again, so this is rare and never contended for long).
#[cold]
fn note_page(addr: u64) {
    let leaf = DIR[(addr >> REGION_SHIFT) as usize].load(Ordering::Acquire);
    let page = (addr as usize & ((1 << REGION_SHIFT) - 1)) >> GRANULE_SHIFT >> 6 >> 9;
    // SAFETY: the summary words follow the LEAF_WORDS bit words in the leaf's mapping.
    let summary = unsafe { &*leaf.add(LEAF_WORDS + page / 64) };
    let bit = 1u64 << (page % 64);
    if summary.load(Ordering::Relaxed) & bit == 0 {
        summary.fetch_or(bit, Ordering::Relaxed);
    }
}

/// What the header of the live inline block at `addr` says, and what was overwritten in
/// it. Only for an address whose bit is set.
///
/// When the metadata itself was overwritten, the size and stack returned are 0 (the
/// analyzer has both; a size read from such a header could send the exit scan anywhere).
fn read(addr: u64) -> (BlockMeta, Damage) {
    // SAFETY: a set bit means a live inline block starts at `addr`, with its header in the
    // HDR bytes before it.
    let h = unsafe { ((addr as usize - HDR) as *const Header).read() };
    let size = u64::from(h.size_lo) | u64::from(h.size_hi) << 32;
    let mut meta = BlockMeta {
        size,
        stack: h.stack,
        family: h.family,
        func: h.func,
        place: PLACE_INLINE,
    };
    let damage = if h.check != check_of(addr, size, h.stack, h.family, h.func) {
        meta.size = 0;
        meta.stack = 0;
        Damage::Header
    } else if let Some(first) = h.canary.iter().position(|&b| b != CANARY) {
        let len = h.canary.len() - first;
        Damage::Canary {
            offset: -(len as i64),
            len: len as u32,
        }
    } else {
        Damage::None
    };
    (meta, damage)
}

/// What was overwritten in the header of the live inline block at `addr` (the exit
/// scan's check of blocks never freed). Call with every shard lock held.
pub fn damage(addr: u64) -> Damage {
    if !is_live(addr) {
        return Damage::None;
    }
    read(addr).1
}

/// The first overwritten byte of the canary after the `size`-byte inline block at `addr`
/// (its offset from the block) and how many bytes from there to the last one; None if
/// intact. The block may be live or being released; its size must come from an intact
/// header.
pub fn tail_damage(addr: u64, size: u64) -> Option<(i64, u32)> {
    // SAFETY: the TAIL bytes after the block are in its chunk (see `mark`).
    let tail = unsafe { ((addr + size) as *const [u8; TAIL]).read_unaligned() };
    let first = tail.iter().position(|&b| b != CANARY)?;
    let last = tail.iter().rposition(|&b| b != CANARY)?;
    Some(((size as usize + first) as i64, (last - first + 1) as u32))
}

/// At most how many bytes the block at `addr` can have, from glibc's header of its chunk
/// (for a copy out of a block whose own header is lost); 0 if that looks wrong too.
pub fn chunk_bound(addr: u64) -> u64 {
    // SAFETY: glibc's size word is the 8 bytes before the chunk, which starts HDR bytes
    // before the block: memory of the same heap, readable.
    let word = unsafe { ((addr as usize - HDR - 8) as *const u64).read() };
    let chunk = word & !7;
    // glibc's chunks are multiples of 16, at least 32 bytes.
    if chunk < 32 || !chunk.is_multiple_of(16) || chunk > 1 << 40 {
        return 0;
    }
    // Room after the header, less glibc's size word and our pad at the end.
    chunk.saturating_sub((HDR + 16) as u64)
}

/// True when a live inline block starts at `addr`.
#[inline]
pub fn is_live(addr: u64) -> bool {
    addr.is_multiple_of(16)
        && bit_of(addr).is_some_and(|(word, bit)| word.load(Ordering::Relaxed) & bit != 0)
}

/// The live inline block at `addr`, if any. Call with `addr`'s shard locked.
pub fn get(addr: u64) -> Option<BlockMeta> {
    is_live(addr).then(|| read(addr).0)
}

/// The live inline block at `addr` if its header is intact. Call with `addr`'s shard
/// locked.
pub fn get_intact(addr: u64) -> Option<BlockMeta> {
    if !is_live(addr) {
        return None;
    }
    let (meta, damage) = read(addr);
    (damage == Damage::None).then_some(meta)
}

/// Ends the live inline block at `addr`: returns its metadata and what was overwritten in
/// its header, or None if no live inline block starts there. Call with `addr`'s shard
/// locked.
#[inline]
pub fn take(addr: u64) -> Option<(BlockMeta, Damage)> {
    if !addr.is_multiple_of(16) {
        return None;
    }
    let (word, bit) = bit_of(addr)?;
    let w = word.load(Ordering::Relaxed);
    if w & bit == 0 {
        return None;
    }
    word.store(w & !bit, Ordering::Relaxed);
    Some(read(addr))
}

/// Live inline blocks. Call with every shard lock held.
pub fn live_count() -> usize {
    let mut n = 0;
    for_each(|_, _| n += 1);
    n
}

/// Calls `f` for every live inline block, in address order. Call with every shard lock
/// held. Only the bitmap pages that were ever written are read.
pub fn for_each(mut f: impl FnMut(u64, BlockMeta)) {
    for (region, slot) in DIR.iter().enumerate() {
        let leaf = slot.load(Ordering::Acquire);
        if leaf.is_null() {
            continue;
        }
        let base = (region as u64) << REGION_SHIFT;
        for page in 0..SUMMARY_WORDS * 64 {
            // SAFETY: the summary words follow the bit words in the leaf.
            let summary = unsafe { &*leaf.add(LEAF_WORDS + page / 64) };
            if summary.load(Ordering::Relaxed) & (1 << (page % 64)) == 0 {
                continue;
            }
            for w in page * WORDS_PER_PAGE..(page + 1) * WORDS_PER_PAGE {
                // SAFETY: w < LEAF_WORDS.
                let mut bits = unsafe { &*leaf.add(w) }.load(Ordering::Relaxed);
                while bits != 0 {
                    let b = bits.trailing_zeros() as u64;
                    bits &= bits - 1;
                    let addr = base + (((w as u64) * 64 + b) << GRANULE_SHIFT);
                    f(addr, read(addr).0);
                }
            }
        }
    }
}
