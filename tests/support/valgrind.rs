//! valgrind memcheck as a second opinion: run a test program under memcheck with XML
//! output, and check that fencepost's report agrees with it.
//!
//! What must agree, and what need not:
//! - Loss records of kind definite, indirect and possible: the same multiset of
//!   (kind, bytes, blocks, file:line of the innermost frame in the program's own
//!   sources). Both tools group blocks by (kind, allocation stack); memcheck is run with
//!   `--num-callers=24` to match fencepost's default depth.
//! - Free errors: the same multiset of (kind, file:line, block size). memcheck's
//!   `InvalidFree` is fencepost's `double-free` when the block was already freed and
//!   `invalid-free` otherwise; `MismatchedFree` is `mismatched-free`.
//! - Bad accesses (guard mode): memcheck's `InvalidRead`/`InvalidWrite`, whose
//!   `<auxwhat>` says where the address is ("N bytes after a block of size S alloc'd",
//!   "N bytes before ...", "N bytes inside a block of size S free'd"), are fencepost's
//!   `heap-buffer-overflow`, `heap-buffer-underflow` and `use-after-free`: the same
//!   multiset of (kind, read/write, access size, user line, block size, offset from the
//!   block's start, alloc and free lines, count) — see [`AccessKey`]. Where the tools
//!   legitimately differ (an access inside libc that memcheck replaces with its own
//!   byte-by-byte code, an underflow fencepost only finds at free) the test compares what
//!   must still agree and says why.
//! - Not compared: `reachable` records. memcheck calls `__libc_freeres` and
//!   `__gnu_cxx::__freeres` before its leak check, freeing libc's and libstdc++'s
//!   own blocks (stdio buffers, the exception emergency pool), which fencepost, tracing
//!   the unmodified program, still sees held by globals. `unreleased` has no memcheck
//!   counterpart (a killed process gets no leak check).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use super::report::{user_line, Frame, Report};
use super::{scratch_dir, spawn_in_own_group, wait_with_output, RUN_TIMEOUT};

/// A loss record or a free error from memcheck's XML.
#[derive(Debug, Clone)]
pub struct VgError {
    /// memcheck's kind: `Leak_DefinitelyLost`, `InvalidFree`, `MismatchedFree`, ...
    pub kind: String,
    /// `<leakedbytes>`: for a definite record with indirect blocks behind it, memcheck
    /// counts those too ("320 (32 direct, 288 indirect) bytes"); see `own_bytes`.
    pub leaked_bytes: Option<u64>,
    /// The `<xwhat><text>` line of a loss record.
    pub leak_text: Option<String>,
    pub leaked_blocks: Option<u64>,
    /// The `<auxwhat>` lines ("Address 0x.. is 0 bytes inside a block of size 32 free'd").
    pub auxwhat: Vec<String>,
    /// The error's own stack (the first `<stack>`).
    pub stack: Vec<Frame>,
    pub pid: u64,
    /// `<what>` ("Invalid read of size 1").
    pub what: Option<String>,
    /// Each `<auxwhat>` with the `<stack>` that follows it, if any: for a bad access,
    /// ("Address .. is 0 bytes after a block of size 13 alloc'd", alloc stack), or
    /// ("Address .. is 5 bytes inside a block of size 24 free'd", free stack) then
    /// ("Block was alloc'd at", alloc stack).
    pub aux_stacks: Vec<(String, Vec<Frame>)>,
    /// Occurrences, from `<errorcounts>` (1 for loss records, which have none).
    pub count: u64,
}

impl VgError {
    /// The bytes of the record's own blocks, which is what fencepost's `bytes` counts:
    /// the "direct" part of "320 (32 direct, 288 indirect) bytes", else `<leakedbytes>`.
    pub fn own_bytes(&self) -> u64 {
        let direct = self.leak_text.as_deref().and_then(|text| {
            let inside = text.split_once('(')?.1;
            inside
                .split_once(" direct")?
                .0
                .replace(',', "")
                .trim()
                .parse()
                .ok()
        });
        direct.or(self.leaked_bytes).expect("leak has leakedbytes")
    }
}

/// Everything memcheck reported, over all processes (one XML file per pid).
#[derive(Debug)]
pub struct VgReport {
    pub errors: Vec<VgError>,
    pub files: Vec<PathBuf>,
    /// How the program (valgrind runs it in its own process) ended.
    pub status: ExitStatus,
}

/// Runs `valgrind --tool=memcheck --leak-check=full --show-leak-kinds=all --xml=yes`
/// on `prog`, following forks (one XML file per process).
pub fn run_valgrind(test_name: &str, prog: &Path, args: &[&str]) -> VgReport {
    let dir = scratch_dir(&format!("{test_name}-valgrind"));
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "--tool=memcheck",
        "--leak-check=full",
        "--show-leak-kinds=all",
        "--num-callers=24",
        // Keep symbols of libraries unloaded by dlclose (dlopen_leak).
        "--keep-debuginfo=yes",
    ])
    .arg("--xml=yes")
    .arg(format!("--xml-file={}/vg.%p.xml", dir.display()))
    .arg(format!("--log-file={}/vg.%p.log", dir.display()))
    .arg(prog)
    .args(args)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if Command::new("valgrind").arg("--version").output().is_err() {
        panic!("valgrind is not installed: these tests need it (.ci/run installs it)");
    }
    let child = spawn_in_own_group(&mut cmd);
    let (status, _stdout, stderr) =
        wait_with_output(child, RUN_TIMEOUT, &format!("valgrind {}", prog.display()));
    let mut report = VgReport {
        errors: Vec::new(),
        files: Vec::new(),
        status,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read valgrind output dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "valgrind wrote no XML in {}\nstderr:\n{stderr}",
        dir.display()
    );
    for file in &files {
        report.errors.extend(parse_xml(file));
    }
    report.files = files;
    report
}

fn child_text<'a>(node: roxmltree::Node<'a, 'a>, name: &str) -> Option<&'a str> {
    node.children()
        .find(|c| c.has_tag_name(name))
        .and_then(|c| c.text())
}

/// Every error of one memcheck XML file (several documents when a forked child wrote into
/// its parent's file).
pub fn parse_xml(path: &Path) -> Vec<VgError> {
    let text = std::fs::read_to_string(path).expect("read valgrind XML");
    // valgrind 3.19 does not reopen the XML file in a forked child despite `%p`: the
    // child writes a whole document into its parent's file, in the middle of the
    // parent's. Take out the last-begun document (its end is the first one after it)
    // until one is left.
    const END: &str = "</valgrindoutput>";
    let mut text = text;
    let mut errors = Vec::new();
    while let Some(start) = text.rfind("<?xml").filter(|&start| start > 0) {
        let end = text[start..]
            .find(END)
            .map(|e| start + e + END.len())
            .unwrap_or(text.len());
        errors.extend(parse_xml_document(&text[start..end], path));
        text.replace_range(start..end, "");
    }
    errors.extend(parse_xml_document(&text, path));
    errors
}

fn parse_xml_document(text: &str, path: &Path) -> Vec<VgError> {
    let doc = roxmltree::Document::parse(text)
        .unwrap_or_else(|e| panic!("valgrind XML {} does not parse: {e}", path.display()));
    let root = doc.root_element();
    let pid: u64 = child_text(root, "pid")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(0);
    // `<errorcounts><pair><count>3</count><unique>0x0</unique></pair>...`
    let counts: Vec<(String, u64)> = root
        .children()
        .filter(|n| n.has_tag_name("errorcounts"))
        .flat_map(|n| n.children().filter(|p| p.has_tag_name("pair")))
        .filter_map(|pair| {
            let unique = child_text(pair, "unique")?.trim().to_owned();
            let count = child_text(pair, "count")?.trim().parse().ok()?;
            Some((unique, count))
        })
        .collect();
    root.children()
        .filter(|n| n.has_tag_name("error"))
        .map(|error| {
            let xwhat = error.children().find(|c| c.has_tag_name("xwhat"));
            let number = |name| {
                xwhat
                    .and_then(|x| child_text(x, name))
                    .and_then(|t| t.trim().parse().ok())
            };
            let stack = error
                .children()
                .find(|c| c.has_tag_name("stack"))
                .map(frames_of)
                .unwrap_or_default();
            // Pair each <auxwhat> with the <stack> right after it (skipping whitespace).
            let mut aux_stacks: Vec<(String, Vec<Frame>)> = Vec::new();
            for node in error.children().filter(|c| c.is_element()) {
                if node.has_tag_name("auxwhat") {
                    aux_stacks.push((node.text().unwrap_or("").to_owned(), Vec::new()));
                } else if node.has_tag_name("stack") {
                    if let Some((_, frames)) = aux_stacks.last_mut().filter(|(_, f)| f.is_empty()) {
                        *frames = frames_of(node);
                    }
                }
            }
            let unique = child_text(error, "unique").map(str::trim);
            let count = unique
                .and_then(|u| counts.iter().find(|(c, _)| c == u))
                .map(|(_, n)| *n)
                .unwrap_or(1);
            VgError {
                kind: child_text(error, "kind").unwrap_or("").to_owned(),
                leaked_bytes: number("leakedbytes"),
                leaked_blocks: number("leakedblocks"),
                leak_text: xwhat.and_then(|x| child_text(x, "text")).map(str::to_owned),
                auxwhat: error
                    .children()
                    .filter(|c| c.has_tag_name("auxwhat"))
                    .filter_map(|c| c.text().map(str::to_owned))
                    .collect(),
                stack,
                pid,
                what: child_text(error, "what").map(str::to_owned),
                aux_stacks,
                count,
            }
        })
        .collect()
}

fn frames_of(stack: roxmltree::Node) -> Vec<Frame> {
    stack
        .children()
        .filter(|f| f.has_tag_name("frame"))
        .map(|f| Frame {
            function: child_text(f, "fn").map(str::to_owned),
            file: child_text(f, "file").map(str::to_owned),
            line: child_text(f, "line").and_then(|l| l.trim().parse().ok()),
            module: child_text(f, "obj").map(str::to_owned),
        })
        .collect()
}

/// The key two tools must agree on for a loss record.
pub type LeakKey = (String, u64, u64, Option<(String, u32)>);
/// The key two tools must agree on for a free error: kind, user line, block size.
pub type FreeKey = (String, Option<(String, u32)>, Option<u64>);

impl VgReport {
    /// Definite, indirect and possible loss records, in fencepost's terms.
    pub fn lost_keys(&self, files: &[&str]) -> Vec<LeakKey> {
        let mut keys: Vec<LeakKey> = self
            .errors
            .iter()
            .filter_map(|e| {
                let kind = match e.kind.as_str() {
                    "Leak_DefinitelyLost" => "definite",
                    "Leak_IndirectlyLost" => "indirect",
                    "Leak_PossiblyLost" => "possible",
                    _ => return None,
                };
                Some((
                    kind.to_owned(),
                    e.own_bytes(),
                    e.leaked_blocks.expect("leak has leakedblocks"),
                    user_line(&e.stack, files),
                ))
            })
            .collect();
        keys.sort();
        keys
    }

    /// Free errors, in fencepost's terms.
    pub fn free_keys(&self, files: &[&str]) -> Vec<FreeKey> {
        let mut keys: Vec<FreeKey> = self
            .errors
            .iter()
            .filter_map(|e| {
                let block_size = e.auxwhat.iter().find_map(|a| block_size_in(a));
                let freed_already = e.auxwhat.iter().any(|a| a.contains("free'd"));
                let kind = match e.kind.as_str() {
                    "InvalidFree" if freed_already => "double-free",
                    "InvalidFree" => "invalid-free",
                    "MismatchedFree" => "mismatched-free",
                    _ => return None,
                };
                Some((kind.to_owned(), user_line(&e.stack, files), block_size))
            })
            .collect();
        keys.sort();
        keys
    }

    /// memcheck's errors of any other kind (invalid reads, uninitialised values...):
    /// a test program must have none, or it is not about the one bug it claims.
    pub fn other_errors(&self) -> Vec<&VgError> {
        self.errors
            .iter()
            .filter(|e| {
                !matches!(
                    e.kind.as_str(),
                    "Leak_DefinitelyLost"
                        | "Leak_IndirectlyLost"
                        | "Leak_PossiblyLost"
                        | "Leak_StillReachable"
                        | "InvalidFree"
                        | "MismatchedFree"
                )
            })
            .collect()
    }
}

/// "Address 0x4a40050 is 16 bytes inside a block of size 64 alloc'd" → 64.
pub fn block_size_in(auxwhat: &str) -> Option<u64> {
    let rest = auxwhat.split("block of size ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit() && c != ',')
        .next()?
        .replace(',', "")
        .parse()
        .ok()
}

/// fencepost's definite, indirect and possible loss records as comparison keys.
pub fn fencepost_lost_keys(report: &Report, files: &[&str]) -> Vec<LeakKey> {
    let mut keys: Vec<LeakKey> = report
        .leaks()
        .into_iter()
        .filter(|l| matches!(l.kind.as_str(), "definite" | "indirect" | "possible"))
        .map(|l| {
            let line = l.user_line(files);
            (l.kind, l.bytes, l.blocks, line)
        })
        .collect();
    keys.sort();
    keys
}

/// fencepost's free errors as comparison keys.
pub fn fencepost_free_keys(report: &Report, files: &[&str]) -> Vec<FreeKey> {
    let mut keys: Vec<FreeKey> = report
        .errors()
        .into_iter()
        .filter(|e| {
            matches!(
                e.kind.as_str(),
                "double-free" | "invalid-free" | "mismatched-free"
            )
        })
        .map(|e| {
            (
                e.kind.clone(),
                user_line(&e.stack, files),
                e.block.map(|b| b.size),
            )
        })
        .collect();
    keys.sort();
    keys
}

/// Asserts that fencepost and memcheck agree on the loss records (definite, indirect,
/// possible) and the free errors of one run. `files` are the base names of the
/// program's own sources: the user's line is the innermost frame in one of them.
pub fn assert_agrees_with_memcheck(report: &Report, memcheck: &VgReport, files: &[&str]) {
    let others = memcheck.other_errors();
    assert!(
        others.is_empty(),
        "memcheck found errors the test program is not about: {others:#?}"
    );
    assert_losses_and_free_errors_agree(report, memcheck, files);
}

/// The loss-record and free-error half of [`assert_agrees_with_memcheck`], for programs
/// whose bad accesses are compared separately.
pub fn assert_losses_and_free_errors_agree(report: &Report, memcheck: &VgReport, files: &[&str]) {
    let (fp, vg) = (
        fencepost_lost_keys(report, files),
        memcheck.lost_keys(files),
    );
    assert_eq!(
        fp, vg,
        "loss records differ (kind, bytes, blocks, user line)\nfencepost: {fp:#?}\nmemcheck:  {vg:#?}\n\
         memcheck XML: {:?}\nfencepost report:\n{}",
        memcheck.files,
        report.pretty()
    );

    let (fp, vg) = (
        fencepost_free_keys(report, files),
        memcheck.free_keys(files),
    );
    assert_eq!(
        fp, vg,
        "free errors differ (kind, user line, block size)\nfencepost: {fp:#?}\nmemcheck:  {vg:#?}\n\
         memcheck XML: {:?}\nfencepost report:\n{}",
        memcheck.files,
        report.pretty()
    );
}

/// A bad access as both tools describe it. memcheck's block offset is rebuilt from its
/// `<auxwhat>`: "N bytes after a block of size S" is offset S + N, "N bytes before" is
/// -N, "N bytes inside" is N.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AccessKey {
    /// `heap-buffer-overflow`, `heap-buffer-underflow`, `use-after-free`; for memcheck
    /// also `wild` (an address in no block: "not stack'd, malloc'd or (recently) free'd")
    /// and `other` (anything else, e.g. "in a --- anonymous segment").
    pub kind: String,
    /// `read` or `write`.
    pub op: Option<String>,
    /// Bytes accessed.
    pub size: Option<u64>,
    /// The user's line of the access: the innermost frame in the program's sources.
    pub line: Option<(String, u32)>,
    pub block_size: Option<u64>,
    pub offset: Option<i64>,
    pub alloc_line: Option<(String, u32)>,
    pub free_line: Option<(String, u32)>,
    pub count: u64,
}

/// Where memcheck says an address is: (kind, block size, offset from the block's start).
pub fn memcheck_address(auxwhat: &str) -> (String, Option<u64>, Option<i64>) {
    let number_before = |marker: &str| -> Option<i64> {
        let head = auxwhat.split(marker).next()?;
        head.rsplit(' ').next()?.replace(',', "").parse().ok()
    };
    let size = block_size_in(auxwhat);
    let (kind, offset) = if auxwhat.contains(" bytes after a block of size ") {
        let n = number_before(" bytes after");
        (
            "heap-buffer-overflow",
            n.zip(size).map(|(n, s)| s as i64 + n),
        )
    } else if auxwhat.contains(" bytes before a block of size ") {
        (
            "heap-buffer-underflow",
            number_before(" bytes before").map(|n| -n),
        )
    } else if auxwhat.contains(" bytes inside a block of size ") && auxwhat.contains("free'd") {
        ("use-after-free", number_before(" bytes inside"))
    } else if auxwhat.contains(" bytes inside a block of size ") {
        // An access that starts inside a live block and runs past its end.
        ("heap-buffer-overflow", number_before(" bytes inside"))
    } else if auxwhat.contains("not stack'd, malloc'd or (recently) free'd") {
        ("wild", None)
    } else {
        ("other", None)
    };
    (kind.to_owned(), size, offset)
}

impl VgReport {
    /// memcheck's `InvalidRead` and `InvalidWrite` errors, in fencepost's terms.
    pub fn access_keys(&self, files: &[&str]) -> Vec<AccessKey> {
        let mut keys: Vec<AccessKey> = self
            .errors
            .iter()
            .filter_map(|e| {
                let op = match e.kind.as_str() {
                    "InvalidRead" => "read",
                    "InvalidWrite" => "write",
                    _ => return None,
                };
                // "Invalid read of size 4"
                let size = e
                    .what
                    .as_deref()
                    .and_then(|w| w.rsplit(' ').next())
                    .and_then(|n| n.parse().ok());
                let address = e
                    .aux_stacks
                    .first()
                    .map(|(text, _)| text.as_str())
                    .unwrap_or("");
                let (kind, block_size, offset) = memcheck_address(address);
                let line_after = |what: &str| {
                    e.aux_stacks
                        .iter()
                        .find(|(text, _)| text.contains(what))
                        .and_then(|(_, stack)| user_line(stack, files))
                };
                Some(AccessKey {
                    kind,
                    op: Some(op.to_owned()),
                    size,
                    line: user_line(&e.stack, files),
                    block_size,
                    offset,
                    alloc_line: line_after("alloc'd"),
                    free_line: line_after("free'd"),
                    count: e.count,
                })
            })
            .collect();
        keys.sort();
        keys
    }

    /// memcheck's errors that are neither loss records, free errors nor bad accesses.
    pub fn errors_other_than_accesses(&self) -> Vec<&VgError> {
        self.other_errors()
            .into_iter()
            .filter(|e| !matches!(e.kind.as_str(), "InvalidRead" | "InvalidWrite"))
            .collect()
    }
}

/// fencepost's bad accesses (overflow, underflow, use after free, and canary findings of
/// those kinds) as comparison keys.
pub fn fencepost_access_keys(report: &Report, files: &[&str]) -> Vec<AccessKey> {
    let mut keys: Vec<AccessKey> = report
        .errors()
        .into_iter()
        .filter(|e| {
            matches!(
                e.kind.as_str(),
                "heap-buffer-overflow" | "heap-buffer-underflow" | "use-after-free"
            )
        })
        .map(|e| AccessKey {
            kind: e.kind.clone(),
            op: e.access.as_ref().map(|a| a.op.clone()),
            size: e.access.as_ref().map(|a| a.size),
            line: e.user_line(files),
            block_size: e.block.as_ref().map(|b| b.size),
            offset: e.block.as_ref().map(|b| b.offset),
            alloc_line: e.alloc_line(files),
            free_line: e.free_line(files),
            count: e.count,
        })
        .collect();
    keys.sort();
    keys
}

/// Asserts that fencepost and memcheck report the same bad accesses (every field of
/// [`AccessKey`]), the same loss records and free errors, and that memcheck found
/// nothing else.
pub fn assert_accesses_agree(report: &Report, memcheck: &VgReport, files: &[&str]) {
    let others = memcheck.errors_other_than_accesses();
    assert!(
        others.is_empty(),
        "memcheck found errors the test program is not about: {others:#?}"
    );
    let (fp, vg) = (
        fencepost_access_keys(report, files),
        memcheck.access_keys(files),
    );
    assert!(
        !vg.is_empty(),
        "memcheck found no bad access: {:#?}",
        memcheck.errors
    );
    assert_eq!(
        fp,
        vg,
        "bad accesses differ\nfencepost: {fp:#?}\nmemcheck:  {vg:#?}\nmemcheck XML: {:?}\n\
         fencepost report:\n{}",
        memcheck.files,
        report.pretty()
    );
    assert_losses_and_free_errors_agree(report, memcheck, files);
}
