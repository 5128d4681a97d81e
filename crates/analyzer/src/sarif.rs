//! SARIF 2.1.0 (`--sarif FILE`): the findings for code-scanning tools (GitHub code
//! scanning, IDE viewers), documented in `docs/sarif.md`.
//!
//! One rule per kind of finding (`fencepost/heap-buffer-overflow`, …,
//! `fencepost/leak-definite`); one result per error and per loss record of the kinds asked
//! for. A result's location is the first frame in the user's code of the bad access (of the
//! allocation, for a leak), with its file relative to the current directory (`uriBaseId`
//! `SRCROOT`) when it lies below it; the full stacks are in `stacks`, the allocation and free
//! sites in `relatedLocations`; `partialFingerprints` carries the
//! [fingerprint](crate::fingerprint).

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::fingerprint::user_frames;
use crate::report::{ErrorKind, ErrorReport, Frame, LeakKind, LossRecord, Report};

pub const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";
/// The `partialFingerprints` key; the suffix is bumped if the fingerprint ever changes.
pub const FINGERPRINT_KEY: &str = "fencepostFingerprint/v1";

const ERROR_KINDS: [ErrorKind; 9] = [
    ErrorKind::HeapBufferOverflow,
    ErrorKind::HeapBufferUnderflow,
    ErrorKind::UseAfterFree,
    ErrorKind::DoubleFree,
    ErrorKind::InvalidFree,
    ErrorKind::MismatchedFree,
    ErrorKind::InvalidAccess,
    ErrorKind::MisalignedAccess,
    ErrorKind::FatalSignal,
];

/// (short description, help) of an error kind.
fn error_rule_text(kind: ErrorKind) -> (&'static str, &'static str) {
    match kind {
        ErrorKind::HeapBufferOverflow => (
            "Read or write past the end of a heap block",
            "The program accessed bytes after the end of a block it allocated: an off-by-one loop bound, a missing room for the terminating NUL, a size computed in elements instead of bytes. Check the index or length at the access against the size the block was allocated with.",
        ),
        ErrorKind::HeapBufferUnderflow => (
            "Read or write before the start of a heap block",
            "The program accessed bytes before the start of a block: a negative index, or pointer arithmetic that went one step too far back. Check the index at the access.",
        ),
        ErrorKind::UseAfterFree => (
            "Read or write of a freed heap block",
            "The program used a block after freeing it: a dangling pointer kept in another structure, or a free that happens too early. The free stack shows where it was released; set the pointer to NULL there or free later.",
        ),
        ErrorKind::DoubleFree => (
            "A heap block freed twice",
            "The same block was released twice. Two owners think they own it; decide which one frees it and clear the other pointer.",
        ),
        ErrorKind::InvalidFree => (
            "free of a pointer that malloc did not return",
            "The program released an address that is not the start of a live heap block: a stack or global address, a pointer into the middle of a block, or garbage.",
        ),
        ErrorKind::MismatchedFree => (
            "Block released with the wrong function",
            "A block was released by a function of another family than the one that allocated it: delete of a new[] block, free of a new block, delete[] of a malloc block. Use the matching release function.",
        ),
        ErrorKind::InvalidAccess => (
            "Access to heap guard memory outside any block",
            "The program touched fencepost's guard memory that belongs to no block: a wild or stale pointer, or an index far past a block's end.",
        ),
        ErrorKind::MisalignedAccess => (
            "Aligned access to a heap block that is not aligned enough",
            "An instruction that needs 16-byte alignment (e.g. movdqa) accessed a heap block fencepost aligned to less. The program assumes glibc's 16-byte alignment; rerun with --alignment=16.",
        ),
        ErrorKind::FatalSignal => (
            "The program died of a signal",
            "The program crashed (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, ...). The stack shows the faulting instruction; a null or wild pointer is the usual cause of SIGSEGV.",
        ),
    }
}

fn leak_rule_text(kind: LeakKind) -> (&'static str, &'static str) {
    match kind {
        LeakKind::Definite => (
            "Memory definitely lost",
            "No pointer to the block remains anywhere when the program exits: it can never be freed. Free it when its last user is done with it.",
        ),
        LeakKind::Indirect => (
            "Memory indirectly lost",
            "The block is only pointed to by blocks that are themselves lost (the nodes of a lost list). Fixing the definite leak that owns it fixes this one.",
        ),
        LeakKind::Possible => (
            "Memory possibly lost",
            "Only pointers into the middle of the block remain at exit. Either the program keeps an interior pointer on purpose, or the block leaked.",
        ),
        LeakKind::Reachable => (
            "Memory still reachable at exit",
            "A pointer to the block still exists at exit (a global, a cache). Not a leak in itself; free it at exit to keep leak reports clean.",
        ),
        LeakKind::Unreleased => (
            "Memory of a process that died",
            "The process was killed or crashed before exiting, so its blocks were never classified.",
        ),
    }
}

fn error_rule_id(kind: ErrorKind) -> String {
    format!("fencepost/{kind}")
}

fn leak_rule_id(kind: LeakKind) -> String {
    format!("fencepost/leak-{kind}")
}

fn leak_level(kind: LeakKind) -> &'static str {
    match kind {
        LeakKind::Definite | LeakKind::Possible => "error",
        LeakKind::Indirect | LeakKind::Unreleased => "warning",
        LeakKind::Reachable => "note",
    }
}

fn rule(id: String, short: &str, help: &str, level: &str) -> Value {
    let name: String = id
        .trim_start_matches("fencepost/")
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    json!({
        "id": id,
        "name": name,
        "shortDescription": {"text": short},
        "fullDescription": {"text": help},
        "help": {"text": help},
        "defaultConfiguration": {"level": level},
    })
}

/// The SARIF log for `report`: every error, and the loss records of `leak_kinds`. File
/// locations under `cwd` are written relative to it.
pub fn render(report: &Report, leak_kinds: &[LeakKind], cwd: &Path) -> String {
    let mut rules = Vec::new();
    let mut rule_index = Map::new();
    for kind in ERROR_KINDS {
        let (short, help) = error_rule_text(kind);
        rule_index.insert(error_rule_id(kind), json!(rules.len()));
        rules.push(rule(error_rule_id(kind), short, help, "error"));
    }
    for kind in LeakKind::ALL {
        let (short, help) = leak_rule_text(kind);
        rule_index.insert(leak_rule_id(kind), json!(rules.len()));
        rules.push(rule(leak_rule_id(kind), short, help, leak_level(kind)));
    }
    let locator = Locator::new(cwd);
    let mut results = Vec::new();
    for e in &report.errors {
        results.push(error_result(e, &rule_index, &locator));
    }
    for l in report.leaks.iter().filter(|l| leak_kinds.contains(&l.kind)) {
        results.push(leak_result(l, &rule_index, &locator));
    }
    let mut run = json!({
        "tool": {"driver": {
            "name": "fencepost",
            "semanticVersion": env!("CARGO_PKG_VERSION"),
            "rules": rules,
        }},
        "invocations": [{
            "executionSuccessful": true,
            "commandLine": report.command.join(" "),
        }],
        "columnKind": "unicodeCodePoints",
        "results": results,
    });
    if let Some(root) = locator.root_uri() {
        run["originalUriBaseIds"] = json!({"SRCROOT": {"uri": root}});
    }
    let log = json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [run],
    });
    serde_json::to_string_pretty(&log).unwrap_or_default()
}

fn error_result(e: &ErrorReport, rule_index: &Map<String, Value>, loc: &Locator) -> Value {
    let id = error_rule_id(e.kind);
    // A canary found at exit has no stack: the block's allocation is where to look.
    let main_stack: &[Frame] = if e.stack.is_empty() {
        e.alloc_stack.as_deref().unwrap_or_default()
    } else {
        &e.stack
    };
    let mut result = json!({
        "ruleId": id,
        "ruleIndex": rule_index[&id],
        "level": "error",
        "message": {"text": format!("{}: {}", e.kind, e.message)},
        "locations": [loc.location(main_stack, None)],
        "partialFingerprints": {FINGERPRINT_KEY: e.fingerprint},
        "occurrenceCount": e.count.max(1),
        "properties": {"pid": e.pid, "thread": e.thread},
    });
    let mut related = Vec::new();
    let mut stacks = vec![loc.stack("where the error happened", &e.stack)];
    if let Some(s) = &e.alloc_stack {
        related.push(loc.location(s, Some((related.len() + 1, "the block was allocated here"))));
        stacks.push(loc.stack("where the block was allocated", s));
    }
    if let Some(s) = &e.free_stack {
        related.push(loc.location(s, Some((related.len() + 1, "the block was freed here"))));
        stacks.push(loc.stack("where the block was freed", s));
    }
    stacks.retain(|s| s["frames"].as_array().is_some_and(|f| !f.is_empty()));
    if !related.is_empty() {
        result["relatedLocations"] = json!(related);
    }
    if !stacks.is_empty() {
        result["stacks"] = json!(stacks);
    }
    result
}

fn leak_result(l: &LossRecord, rule_index: &Map<String, Value>, loc: &Locator) -> Value {
    let id = leak_rule_id(l.kind);
    let what = match l.kind {
        LeakKind::Definite => "definitely lost",
        LeakKind::Indirect => "indirectly lost",
        LeakKind::Possible => "possibly lost",
        LeakKind::Reachable => "still reachable",
        LeakKind::Unreleased => "never released (the process died)",
    };
    let mut result = json!({
        "ruleId": id,
        "ruleIndex": rule_index[&id],
        "level": leak_level(l.kind),
        "message": {"text": format!(
            "{} {} in {} {} {what}",
            l.bytes,
            crate::analysis::plural(l.bytes, "byte", "bytes"),
            l.blocks,
            crate::analysis::plural(l.blocks, "block", "blocks"),
        )},
        "locations": [loc.location(&l.stack, None)],
        "partialFingerprints": {FINGERPRINT_KEY: l.fingerprint},
        "properties": {"pid": l.pid, "bytes": l.bytes, "blocks": l.blocks},
    });
    let stack = loc.stack("where the blocks were allocated", &l.stack);
    if stack["frames"].as_array().is_some_and(|f| !f.is_empty()) {
        result["stacks"] = json!([stack]);
    }
    result
}

/// Turns frames into SARIF locations, with paths relative to the current directory.
pub struct Locator {
    cwd: Option<String>,
}

impl Locator {
    pub fn new(cwd: &Path) -> Self {
        let cwd = cwd.to_str().map(|s| s.trim_end_matches('/').to_string());
        Locator { cwd }
    }

    fn root_uri(&self) -> Option<String> {
        self.cwd
            .as_ref()
            .map(|c| format!("file://{}/", uri_escape(c)))
    }

    /// The path relative to the current directory, when it is an absolute path below it.
    /// (A relative path in debug information, without its compilation directory, is
    /// relative to a build directory we do not know, e.g. glibc's `./string/strdup.c`.)
    pub fn relative<'a>(&self, path: &'a str) -> Option<&'a str> {
        let cwd = self.cwd.as_deref()?;
        path.strip_prefix(cwd).and_then(|r| r.strip_prefix('/'))
    }

    fn artifact(&self, path: &str) -> Value {
        match self.relative(path) {
            Some(rel) => json!({"uri": uri_escape(rel), "uriBaseId": "SRCROOT"}),
            None if path.starts_with('/') => json!({"uri": format!("file://{}", uri_escape(path))}),
            None => json!({"uri": uri_escape(path)}),
        }
    }

    /// The location of a stack's first user frame (the first frame if none is the user's).
    fn location(&self, stack: &[Frame], id_and_message: Option<(usize, &str)>) -> Value {
        let frame = user_frames(stack).next().or(stack.first());
        let mut loc = match frame {
            Some(f) => self.frame_location(f),
            None => json!({}),
        };
        if let Some((id, message)) = id_and_message {
            loc["id"] = json!(id);
            loc["message"] = json!({"text": message});
        }
        loc
    }

    fn frame_location(&self, f: &Frame) -> Value {
        let mut loc = Map::new();
        let physical = match (&f.file, &f.module) {
            (Some(file), _) => {
                let mut p = json!({"artifactLocation": self.artifact(file)});
                if let Some(line) = f.line.filter(|l| *l > 0) {
                    p["region"] = json!({"startLine": line});
                }
                Some(p)
            }
            (None, Some(module)) => Some(json!({
                "artifactLocation": self.artifact(module),
                "address": {"absoluteAddress": f.address},
            })),
            (None, None) => None,
        };
        if let Some(p) = physical {
            loc.insert("physicalLocation".into(), p);
        }
        if let Some(func) = &f.function {
            loc.insert(
                "logicalLocations".into(),
                json!([{"fullyQualifiedName": func, "kind": "function"}]),
            );
        }
        Value::Object(loc)
    }

    fn stack(&self, message: &str, frames: &[Frame]) -> Value {
        let frames: Vec<Value> = frames
            .iter()
            .map(|f| {
                let mut frame = json!({"location": self.frame_location(f)});
                if let Some(m) = &f.module {
                    frame["module"] = json!(m);
                }
                frame
            })
            .collect();
        json!({"message": {"text": message}, "frames": frames})
    }
}

/// Percent-encodes what may not appear raw in a URI path.
fn uri_escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' | b'+' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_and_escaping() {
        let l = Locator::new(Path::new("/home/u/proj"));
        assert_eq!(l.relative("/home/u/proj/src/a.c"), Some("src/a.c"));
        assert_eq!(l.relative("/home/u/project/a.c"), None);
        assert_eq!(l.relative("./string/strdup.c"), None);
        assert_eq!(uri_escape("/a b/c#.c"), "/a%20b/c%23.c");
    }
}
