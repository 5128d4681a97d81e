//! Heap bytes in use over time, per process image, for the HTML report's chart.
//!
//! Every allocation, free and realloc moves the image's bytes in use; the analyzer samples
//! the level after each such event into buckets of `width` events. A bucket ends as one
//! [`TimelinePoint`] (its last time, the level at its end, the highest level inside it, so a
//! short spike is not lost). When [`MAX_POINTS`] points are kept, neighbours are merged in
//! pairs and the bucket width doubles: memory stays bounded however long the run, and the
//! points always cover the whole run evenly (between `MAX_POINTS / 2` and `MAX_POINTS`).
//!
//! Times come from the shim's coarse monotonic clock (a few milliseconds of resolution),
//! so a short program may have all its points at one time; `events` (allocations and frees
//! so far) orders them anyway.

use serde::{Deserialize, Serialize};

/// Points kept per process image, at most.
pub const MAX_POINTS: usize = 1000;

/// One process image's curve (JSON `timeline[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessTimeline {
    /// Index of the image in the report's `processes`.
    pub process: usize,
    pub pid: u32,
    /// Bytes in use before the first point: 0, or what a forked child inherited.
    pub start_bytes: u64,
    /// In order of time and events.
    pub points: Vec<TimelinePoint>,
}

/// The end of one bucket of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Nanoseconds since the first timed event of the run (all processes share the origin).
    pub t_ns: u64,
    /// Allocations and frees of this image so far, this bucket's included.
    pub events: u64,
    /// Bytes in use after the bucket's last event.
    pub bytes: u64,
    /// The most bytes in use after any event of the bucket (`bytes` when it has one event).
    pub peak: u64,
}

/// Builds one image's curve as events arrive.
#[derive(Debug, Clone)]
pub(crate) struct TimelineBuilder {
    start_bytes: u64,
    bytes: u64,
    events: u64,
    width: u64,
    in_bucket: u64,
    peak: u64,
    last_t: u64,
    points: Vec<TimelinePoint>,
}

impl TimelineBuilder {
    /// A curve starting at `bytes` in use (a forked child's inheritance, else 0).
    pub(crate) fn starting_at(bytes: u64) -> Self {
        TimelineBuilder {
            start_bytes: bytes,
            bytes,
            events: 0,
            width: 1,
            in_bucket: 0,
            peak: 0,
            last_t: 0,
            points: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, size: u64) {
        self.bytes = self.bytes.saturating_add(size);
    }

    pub(crate) fn sub(&mut self, size: u64) {
        self.bytes = self.bytes.saturating_sub(size);
    }

    /// Counts one event that happened at `t_ns` (since the run's origin) and samples the
    /// level after it.
    pub(crate) fn sample(&mut self, t_ns: u64) {
        // Threads' clocks are read before their records are ordered in the ring: keep the
        // curve monotonic in time.
        self.last_t = self.last_t.max(t_ns);
        self.events += 1;
        self.in_bucket += 1;
        self.peak = self.peak.max(self.bytes);
        if self.in_bucket >= self.width {
            self.close_bucket();
        }
    }

    fn close_bucket(&mut self) {
        self.points.push(TimelinePoint {
            t_ns: self.last_t,
            events: self.events,
            bytes: self.bytes,
            peak: self.peak,
        });
        self.in_bucket = 0;
        self.peak = 0;
        if self.points.len() >= MAX_POINTS {
            let merged: Vec<TimelinePoint> = self
                .points
                .chunks(2)
                .map(|pair| {
                    let last = pair[pair.len() - 1];
                    TimelinePoint {
                        peak: pair.iter().map(|p| p.peak).max().unwrap_or(last.peak),
                        ..last
                    }
                })
                .collect();
            self.points = merged;
            self.width *= 2;
        }
    }

    /// The curve so far, the open bucket included; `None` when no event was seen.
    pub(crate) fn finish(&self, process: usize, pid: u32) -> Option<ProcessTimeline> {
        let mut points = self.points.clone();
        if self.in_bucket > 0 {
            points.push(TimelinePoint {
                t_ns: self.last_t,
                events: self.events,
                bytes: self.bytes,
                peak: self.peak,
            });
        }
        if points.is_empty() {
            return None;
        }
        Some(ProcessTimeline {
            process,
            pid,
            start_bytes: self.start_bytes,
            points,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_events_are_kept_one_point_each() {
        let mut b = TimelineBuilder::starting_at(0);
        b.add(100);
        b.sample(5);
        b.add(50);
        b.sample(7);
        b.sub(100);
        b.sample(6); // an earlier clock reading from another thread
        let t = b.finish(0, 42).unwrap();
        assert_eq!(t.points.len(), 3);
        assert_eq!(
            t.points.iter().map(|p| p.bytes).collect::<Vec<_>>(),
            [100, 150, 50]
        );
        assert_eq!(t.points[2].t_ns, 7);
        assert_eq!(t.points[2].events, 3);
    }

    #[test]
    fn long_runs_stay_bounded_and_keep_the_peak() {
        let mut b = TimelineBuilder::starting_at(10);
        for i in 0..1_000_000u64 {
            if i == 654_321 {
                b.add(1 << 30);
                b.sample(i);
                b.sub(1 << 30);
                b.sample(i);
                continue;
            }
            b.add(8);
            b.sample(i);
        }
        let t = b.finish(1, 7).unwrap();
        assert!(t.points.len() <= MAX_POINTS, "{}", t.points.len());
        assert!(t.points.len() >= MAX_POINTS / 2, "{}", t.points.len());
        assert_eq!(t.start_bytes, 10);
        let last = t.points.last().unwrap();
        assert_eq!(last.events, 1_000_001); // the spike is two events
        assert_eq!(last.bytes, 10 + 8 * 999_999);
        let top = t.points.iter().map(|p| p.peak).max().unwrap();
        assert!(top >= 1 << 30, "the spike survives downsampling");
        assert!(t.points.windows(2).all(|w| w[0].events < w[1].events));
    }

    #[test]
    fn the_documented_example_reads_back() {
        let doc = include_str!("../../../docs/report-format.md");
        let section = &doc[doc.find("## `timeline`").expect("timeline section")..];
        let block = &section[section.find("```json\n").expect("example") + 8..];
        let json = format!("{{{}}}", &block[..block.find("```").unwrap()]);
        #[derive(Deserialize)]
        struct Doc {
            timeline: Vec<ProcessTimeline>,
        }
        let doc: Doc = serde_json::from_str(&json).unwrap();
        assert_eq!(doc.timeline[0].points[1].bytes, 64);
    }

    #[test]
    fn no_events_no_curve() {
        assert!(TimelineBuilder::starting_at(0).finish(0, 1).is_none());
    }
}
