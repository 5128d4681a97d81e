//! The consumer side of the event ring: creates the shared memfd and drains records.
//!
//! The memory is shared with the program under test, which may be buggy: every header read
//! is validated before it is trusted, and a bad one ends the stream with an error naming the
//! ring position instead of a crash.

use fencepost_analyzer::wire::{self, ring_off};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub struct Ring {
    fd: OwnedFd,
    base: *mut u8,
    map_len: usize,
    cap: u64,
    /// The producers' reservation counter as last read.
    known_reserve: u64,
}

// SAFETY: the mapping is shared memory accessed only through atomics and bounded copies;
// the consumer is used by one thread at a time.
unsafe impl Send for Ring {}

#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("cannot create the event ring: {0}")]
    Create(std::io::Error),
    #[error("the event ring was corrupted at position {pos}: {what}")]
    Corrupt { pos: u64, what: &'static str },
}

impl Ring {
    /// A sealed memfd of `capacity` data bytes (a power of two) plus the header page.
    pub fn create(capacity: usize) -> Result<Ring, RingError> {
        let cap = capacity.next_power_of_two().max(1 << 16);
        let len = cap + wire::RING_HEADER_SIZE;
        // SAFETY: memfd_create with a static name; the fd is owned right away.
        let raw = unsafe {
            libc::memfd_create(
                c"fencepost-ring".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        if raw < 0 {
            return Err(RingError::Create(std::io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: plain syscalls on our fd; results checked. A memfd is created with mode
        // 0777; only its owner may open it again through /proc/PID/fd.
        unsafe {
            if libc::fchmod(fd.as_raw_fd(), 0o600) != 0
                || libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) != 0
                || libc::fcntl(
                    fd.as_raw_fd(),
                    libc::F_ADD_SEALS,
                    libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
                ) != 0
            {
                return Err(RingError::Create(std::io::Error::last_os_error()));
            }
        }
        // SAFETY: mapping our own memfd of `len` bytes.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(RingError::Create(std::io::Error::last_os_error()));
        }
        let ring = Ring {
            fd,
            base: p as *mut u8,
            map_len: len,
            cap: cap as u64,
            known_reserve: 0,
        };
        ring.u64_at(ring_off::CAPACITY)
            .store(cap as u64, Ordering::Relaxed);
        ring.u32_at(ring_off::VERSION)
            .store(wire::VERSION, Ordering::Relaxed);
        ring.u32_at(ring_off::CONSUMER_PID)
            .store(std::process::id(), Ordering::Relaxed);
        ring.u32_at(ring_off::CONSUMER_STATE)
            .store(wire::CONSUMER_ALIVE, Ordering::Relaxed);
        ring.u64_at(ring_off::MAGIC)
            .store(wire::RING_MAGIC, Ordering::Release);
        Ok(ring)
    }

    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    fn u64_at(&self, off: usize) -> &AtomicU64 {
        // SAFETY: `off` is an 8-aligned offset inside the header page of our live mapping.
        unsafe { &*(self.base.add(off) as *const AtomicU64) }
    }

    fn u32_at(&self, off: usize) -> &AtomicU32 {
        // SAFETY: as above, 4-aligned.
        unsafe { &*(self.base.add(off) as *const AtomicU32) }
    }

    fn data_word(&self, pos: u64) -> &AtomicU64 {
        let at = (pos & (self.cap - 1)) as usize;
        // SAFETY: `at` is 8-aligned (positions advance by multiples of 8) and < cap.
        unsafe { &*(self.base.add(wire::RING_HEADER_SIZE + at) as *const AtomicU64) }
    }

    /// Data bytes the ring holds.
    pub fn capacity(&self) -> u64 {
        self.cap
    }

    /// Records published but not consumed, or reserved and not yet published.
    pub fn pending(&self) -> bool {
        self.u64_at(ring_off::RESERVE).load(Ordering::Acquire)
            != self.u64_at(ring_off::TAIL).load(Ordering::Relaxed)
    }

    /// Records the shim could not write (the analyzer was gone, or the pre-start buffer
    /// overflowed).
    pub fn dropped(&self) -> u64 {
        self.u64_at(ring_off::DROPPED).load(Ordering::Relaxed)
    }

    /// Takes the published records at the tail into `out`, whole records laid end to end,
    /// until one is not published yet or `out` holds at least `max_bytes`. Ok(false) when
    /// none is ready. A bad record after good ones is reported by the next call.
    ///
    /// One batch costs one copy, one clear and one `tail` store, and usually one read of
    /// the producers' contended `reserve` counter, where record by record each costs one.
    pub fn next_batch(&mut self, out: &mut Vec<u8>, max_bytes: usize) -> Result<bool, RingError> {
        out.clear();
        let tail = self.u64_at(ring_off::TAIL).load(Ordering::Relaxed);
        let mut end = tail;
        while end - tail < max_bytes as u64 {
            let word = self.data_word(end).load(Ordering::Acquire);
            if word == 0 {
                break;
            }
            match self.check_record(end, word) {
                Ok(len) => end += len,
                Err(e) if end == tail => return Err(e),
                Err(_) => break,
            }
        }
        if end == tail {
            return Ok(false);
        }
        out.reserve((end - tail) as usize);
        let data = unsafe { self.base.add(wire::RING_HEADER_SIZE) };
        let mut pos = tail;
        while pos < end {
            let at = (pos & (self.cap - 1)) as usize;
            let n = ((end - pos) as usize).min(self.cap as usize - at);
            // SAFETY: [at, at+n) is inside the data area; the producers published it (each
            // record's header was loaded with acquire ordering above). It is copied out
            // before anything reads it, and cleared before `tail` gives it back.
            unsafe {
                out.extend_from_slice(std::slice::from_raw_parts(data.add(at), n));
                std::ptr::write_bytes(data.add(at), 0, n);
            }
            pos += n as u64;
        }
        self.u64_at(ring_off::TAIL).store(end, Ordering::Release);
        Ok(true)
    }

    /// Validates the published header `word` of the record at `pos`; returns its length.
    fn check_record(&mut self, pos: u64, word: u64) -> Result<u64, RingError> {
        let (len, _kind) = wire::split_header(word);
        let len = len as u64;
        if len < wire::RECORD_HEADER_LEN as u64
            || !len.is_multiple_of(8)
            || len > wire::MAX_RECORD_LEN as u64
        {
            return Err(RingError::Corrupt {
                pos,
                what: "bad record length",
            });
        }
        // `reserve` is the producers' hot counter: re-read it only when the cached value
        // cannot vouch for this record.
        if pos + len > self.known_reserve {
            self.known_reserve = self.u64_at(ring_off::RESERVE).load(Ordering::Acquire);
            if pos + len > self.known_reserve {
                return Err(RingError::Corrupt {
                    pos,
                    what: "record runs past the reserved space",
                });
            }
        }
        Ok(len)
    }

    /// When every producer is dead and the record at the tail was reserved but never
    /// published, skips the hole: never-written space is zero and every record starts with
    /// a non-zero header. Returns false when there is nothing to skip to.
    pub fn skip_dead_hole(&mut self) -> bool {
        let tail = self.u64_at(ring_off::TAIL).load(Ordering::Relaxed);
        let reserve = self.u64_at(ring_off::RESERVE).load(Ordering::Acquire);
        let mut pos = tail;
        while pos < reserve && self.data_word(pos).load(Ordering::Acquire) == 0 {
            pos += 8;
        }
        if pos == tail {
            return false;
        }
        self.u64_at(ring_off::TAIL).store(pos, Ordering::Release);
        true
    }

    /// Tells producers that nobody will read any more.
    pub fn close(&self) {
        self.u32_at(ring_off::CONSUMER_STATE)
            .store(wire::CONSUMER_GONE, Ordering::Release);
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        self.close();
        // SAFETY: unmapping our own mapping; no references into it outlive `self`.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.map_len) };
    }
}
