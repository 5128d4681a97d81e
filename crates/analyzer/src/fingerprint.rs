//! Fingerprints: a finding's identity across runs, for baselines and SARIF's
//! `partialFingerprints`.
//!
//! A fingerprint hashes what a finding *is* — its kind, and the function and source file
//! (base name only) of its first few frames in the user's own code — and nothing that
//! changes from run to run or build to build: no addresses (ASLR), no line numbers (an
//! edit above the function moves them), no pids, no sizes. Frames in the C runtime, the C++
//! runtime, the dynamic loader and fencepost's shim are skipped: they are the same for every
//! finding and only shift with the system's library versions.
//!
//! The hash is 64-bit FNV-1a, written as 16 hex digits: defined here, so it does not change
//! with the Rust version (std's `DefaultHasher` may).

use crate::report::{ErrorReport, Frame, LossRecord, Report};

/// User frames hashed per finding. Three tell apart two leaks through one wrapper
/// (`xmalloc` ← `make_node` ← `main`) without making the fingerprint fragile to distant
/// callers.
pub const USER_FRAMES: usize = 3;

/// Sets `fingerprint` on every error and loss record of the report.
pub fn assign(report: &mut Report) {
    for e in &mut report.errors {
        e.fingerprint = of_error(e);
    }
    for l in &mut report.leaks {
        l.fingerprint = of_leak(l);
    }
}

/// The fingerprint of an error: its kind and the top user frames of where it happened (of
/// the allocation when the error has no stack of its own, e.g. a canary found at exit).
pub fn of_error(e: &ErrorReport) -> String {
    let stack = if user_frames(&e.stack).next().is_some() || e.alloc_stack.is_none() {
        &e.stack
    } else {
        e.alloc_stack.as_deref().unwrap_or_default()
    };
    hash_finding(e.kind.as_str(), stack)
}

/// The fingerprint of a loss record: `leak/KIND` and the top user frames of its allocation.
pub fn of_leak(l: &LossRecord) -> String {
    hash_finding(&format!("leak/{}", l.kind), &l.stack)
}

fn hash_finding(kind: &str, stack: &[Frame]) -> String {
    let mut h = Fnv1a::new();
    h.write(kind.as_bytes());
    let mut frames: Vec<&Frame> = user_frames(stack).take(USER_FRAMES).collect();
    if frames.is_empty() {
        // Nothing of the user's (a stripped program, a leak inside libc): the runtime
        // frames are all there is.
        frames = stack.iter().take(USER_FRAMES).collect();
    }
    for f in frames {
        h.write(b"\n");
        h.write(f.function.as_deref().unwrap_or("?").as_bytes());
        h.write(b"|");
        // No file: the module's name says at least where it was (never its address).
        let place = f.file.as_deref().or(f.module.as_deref()).unwrap_or("?");
        h.write(basename(place).as_bytes());
    }
    format!("{:016x}", h.0)
}

/// Frames in the user's code: not in the C or C++ runtime, the loader or the shim.
pub fn user_frames(stack: &[Frame]) -> impl Iterator<Item = &Frame> {
    stack
        .iter()
        .filter(|f| !is_runtime_module(f.module.as_deref()))
}

/// The C runtime (libc, libm, libpthread), the C++ runtime (libstdc++, libgcc_s), the
/// dynamic loader and fencepost's shim.
pub fn is_runtime_module(module: Option<&str>) -> bool {
    let Some(module) = module else { return false };
    let name = basename(module);
    const PREFIXES: [&str; 9] = [
        "libc.so",
        "libc-",
        "libm.so",
        "libpthread.so",
        "libstdc++.so",
        "libgcc_s.so",
        "ld-linux",
        "ld-2.",
        "libfencepost_shim.so",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::LeakKind;

    fn frame(address: u64, module: &str, function: &str, file: &str, line: u32) -> Frame {
        Frame {
            address,
            module: Some(module.into()),
            function: Some(function.into()),
            file: Some(file.into()),
            line: Some(line),
            inlined: false,
        }
    }

    fn leak(stack: Vec<Frame>, kind: LeakKind) -> LossRecord {
        LossRecord {
            kind,
            bytes: 32,
            blocks: 1,
            pid: 100,
            allocated_by: Some("malloc".into()),
            stack,
            fingerprint: String::new(),
        }
    }

    #[test]
    fn ignores_addresses_lines_pids_and_directories() {
        let a = leak(
            vec![
                frame(
                    0x5555_0000_1234,
                    "/a/prog",
                    "make_node",
                    "/src/a/list.c",
                    26,
                ),
                frame(0x5555_0000_1300, "/a/prog", "main", "/src/a/list.c", 47),
            ],
            LeakKind::Definite,
        );
        let mut b = leak(
            vec![
                frame(
                    0x7777_0000_9999,
                    "/b/prog",
                    "make_node",
                    "/build/b/list.c",
                    30,
                ),
                frame(0x7777_0000_9a00, "/b/prog", "main", "/build/b/list.c", 52),
            ],
            LeakKind::Definite,
        );
        b.pid = 4242;
        b.bytes = 64;
        assert_eq!(of_leak(&a), of_leak(&b));
        assert_eq!(of_leak(&a).len(), 16);
    }

    #[test]
    fn differs_by_kind_function_and_file() {
        let base = vec![frame(1, "/p", "make_node", "list.c", 1)];
        let a = of_leak(&leak(base.clone(), LeakKind::Definite));
        assert_ne!(a, of_leak(&leak(base, LeakKind::Possible)));
        assert_ne!(
            a,
            of_leak(&leak(
                vec![frame(1, "/p", "make_tree", "list.c", 1)],
                LeakKind::Definite
            ))
        );
        assert_ne!(
            a,
            of_leak(&leak(
                vec![frame(1, "/p", "make_node", "tree.c", 1)],
                LeakKind::Definite
            ))
        );
    }

    /// The fingerprints in docs/report-format.md's examples are the ones computed.
    #[test]
    fn documented_fingerprints_are_computed_ones() {
        let doc = include_str!("../../../docs/report-format.md");
        let example = doc.find("\n## Example").expect("example section");
        let mut checked = 0;
        for block in doc[..example].split("```json\n").skip(1) {
            let json = &block[..block.find("```").expect("end")];
            let e: ErrorReport = serde_json::from_str(json).unwrap();
            assert_eq!(e.fingerprint, of_error(&e), "{json}");
            checked += 1;
        }
        let start = example + doc[example..].find("```json\n").unwrap() + "```json\n".len();
        let end = start + doc[start..].find("```").unwrap();
        let report = Report::from_json(&doc[start..end]).unwrap();
        assert_eq!(report.errors[0].fingerprint, of_error(&report.errors[0]));
        assert_eq!(report.leaks[0].fingerprint, of_leak(&report.leaks[0]));
        assert_eq!(checked, 3);
    }

    #[test]
    fn skips_runtime_frames() {
        let user = frame(1, "/p", "main", "x.c", 3);
        let libc = frame(
            2,
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "strdup",
            "strdup.c",
            9,
        );
        let a = of_leak(&leak(vec![user.clone()], LeakKind::Definite));
        let b = of_leak(&leak(vec![libc, user], LeakKind::Definite));
        assert_eq!(a, b);
    }
}
