//! The live blocks of one process image, by address: the analyzer's hottest structure (an
//! insert for every allocation, a removal for every free).
//!
//! A hash that scatters every address puts neighbouring blocks in far-apart buckets, so with
//! a million live blocks every insert and removal is a cache miss. Allocators hand out
//! neighbouring addresses one after the other (glibc's heap grows and is reused page by
//! page), so here the low bits of the hash, which pick the bucket, keep a block's place in
//! its page: the blocks of a page sit in neighbouring buckets, and a run of allocations or
//! frees walks the table the way it walks the heap. Measured with `analyzer_bench events`
//! (docs/performance.md): on a trace with four million live blocks, 5 million events a
//! second with a scattering hash, 11.6 million with 1 KiB regions, 15.8 million with pages
//! (a page's 128 buckets are 3 KiB of neighbouring lines, which the prefetcher follows);
//! unchanged on traces with few. Larger regions did no better and slowed binary trees.

/// A live block: what an allocation said of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Block {
    pub size: u64,
    pub stack: u32,
    pub func: u8,
}

/// An address hashed with its neighbourhood kept: the low bits (where a table looks first)
/// are the block's offset in its page in 32-byte steps, the rest is the page scattered.
/// hashbrown probes groups of neighbouring buckets and takes a 7-bit tag from the top bits:
/// the offset is mixed into those too, or the blocks of one page would all share a tag.
pub(super) fn near_hash(addr: u64) -> u64 {
    let offset = (addr >> 5) & 127;
    let region = (addr >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((region ^ (region >> 29)) << 7 | offset) ^ (offset << 57)
}

/// [`near_hash`] as the live map's hasher.
#[derive(Default, Clone, Copy)]
pub(super) struct AddrHasher(u64);

impl std::hash::Hasher for AddrHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, addr: u64) {
        self.0 = addr;
    }

    fn finish(&self) -> u64 {
        near_hash(self.0)
    }
}

type Map = std::collections::HashMap<u64, Block, std::hash::BuildHasherDefault<AddrHasher>>;

#[derive(Clone, Default)]
pub(super) struct LiveBlocks {
    map: Map,
}

impl LiveBlocks {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn get(&self, addr: u64) -> Option<&Block> {
        self.map.get(&addr)
    }

    pub fn contains_key(&self, addr: u64) -> bool {
        self.map.contains_key(&addr)
    }

    /// Inserts a block at `addr`, returning the one it replaces.
    pub fn insert(&mut self, addr: u64, block: Block) -> Option<Block> {
        self.map.insert(addr, block)
    }

    /// Removes the block at `addr`, if live.
    pub fn remove(&mut self, addr: u64) -> Option<Block> {
        self.map.remove(&addr)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &Block)> {
        self.map.iter().map(|(&a, b)| (a, b))
    }

    pub fn values(&self) -> impl Iterator<Item = &Block> {
        self.map.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::hash::Hasher;

    fn hash(addr: u64) -> u64 {
        let mut h = AddrHasher::default();
        h.write_u64(addr);
        h.finish()
    }

    /// What the map's speed rests on: the 128 blocks a page can hold (32-byte steps) get
    /// 128 neighbouring buckets (the low bits) and 128 different tags (hashbrown's top 7
    /// bits), and other pages land elsewhere.
    #[test]
    fn a_page_gets_neighbouring_buckets_and_distinct_tags() {
        let page = 0x5555_5555_a000u64;
        let hashes: Vec<u64> = (0..128).map(|i| hash(page + i * 32)).collect();
        let buckets: Vec<u64> = hashes.iter().map(|h| h & 127).collect();
        assert_eq!(buckets, (0..128).collect::<Vec<_>>());
        let high = hashes[0] >> 7 & 0xffff;
        assert!(hashes.iter().all(|h| h >> 7 & 0xffff == high));
        let mut tags: Vec<u64> = hashes.iter().map(|h| h >> 57).collect();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags.len(), 128);
        assert_ne!(hash(page + 4096) >> 7 & 0xffff, high);
    }

    /// The map agrees with std's on a mix of neighbouring and scattered addresses, with
    /// replacements and removals, through several growths.
    #[test]
    fn agrees_with_a_hash_map() {
        let mut live = LiveBlocks::default();
        let mut model: HashMap<u64, Block> = HashMap::new();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for step in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let addr = if step % 5 == 0 {
                x & 0xffff_ffff_fff0 | 16
            } else {
                0x5555_0000_0000 + (x % 64) * 4096 + ((x >> 8) % 256) * 16
            };
            let block = Block {
                size: step,
                stack: step as u32,
                func: (step % 7) as u8,
            };
            if x.is_multiple_of(3) {
                assert_eq!(live.remove(addr), model.remove(&addr));
            } else {
                assert_eq!(live.insert(addr, block), model.insert(addr, block));
            }
            assert_eq!(live.len(), model.len());
        }
        for (addr, block) in &model {
            assert_eq!(live.get(*addr), Some(block));
        }
        assert_eq!(live.iter().count(), model.len());
    }
}
