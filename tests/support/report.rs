//! Reading fencepost's JSON report (`--json FILE`, schema `fencepost-report/1`).
//!
//! The accessors are strict: a field the schema promises but the report lacks fails
//! the test with the report attached, so the JSON contract is checked by every test.

use std::path::Path;

use serde_json::Value;

/// One stack frame: `{"address", "module", "function", "file", "line", "inlined"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub function: Option<String>,
    /// As reported: may be a full path.
    pub file: Option<String>,
    pub line: Option<u32>,
    pub module: Option<String>,
}

impl Frame {
    /// The file's base name (`leak_list.c`), which is what tests compare.
    pub fn file_name(&self) -> Option<&str> {
        self.file
            .as_deref()
            .map(|f| f.rsplit('/').next().unwrap_or(f))
    }
}

/// The innermost frame of `stack` whose source file is one of `files` (base names):
/// the user's line, below which everything is allocator or library code.
pub fn innermost_in<'a>(stack: &'a [Frame], files: &[&str]) -> Option<&'a Frame> {
    stack
        .iter()
        .find(|f| f.file_name().is_some_and(|name| files.contains(&name)))
}

/// A loss record.
#[derive(Debug, Clone)]
pub struct LossRecord {
    pub kind: String,
    pub bytes: u64,
    pub blocks: u64,
    pub pid: u64,
    pub stack: Vec<Frame>,
}

impl LossRecord {
    /// `(file, line)` of the innermost frame in one of `files`.
    pub fn user_line(&self, files: &[&str]) -> Option<(String, u32)> {
        user_line(&self.stack, files)
    }
}

/// The heap block an error is about.
#[derive(Debug, Clone)]
pub struct Block {
    pub address: u64,
    pub size: u64,
    /// The error's address minus the block's: negative before the block (an underflow),
    /// `size` or more past its end (an overflow).
    pub offset: i64,
    /// The allocating entry point: `"malloc"`, `"realloc"`, `"operator new[]"`, ...
    pub allocated_by: Option<String>,
}

/// The bad access of an error: `{"op": "read"|"write", "size", "address"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    pub op: String,
    pub size: u64,
    pub address: u64,
}

/// An entry of `errors[]`: a bad free (`double-free`, `invalid-free`, `mismatched-free`),
/// a bad access (`heap-buffer-overflow`, `heap-buffer-underflow`, `use-after-free`,
/// `misaligned-access`), or a crash (`fatal-signal`).
#[derive(Debug, Clone)]
pub struct ReportedError {
    pub kind: String,
    pub pid: u64,
    /// Occurrences of this error (identical errors are reported once, counted).
    pub count: u64,
    pub access: Option<Access>,
    pub block: Option<Block>,
    /// The signal number of a `fatal-signal`.
    pub signal: Option<i64>,
    /// Where a canary finding was made: `"free"` or `"exit"`; None for an error caught
    /// at the instruction.
    pub found_at: Option<String>,
    pub message: Option<String>,
    pub stack: Vec<Frame>,
    pub alloc_stack: Vec<Frame>,
    pub free_stack: Vec<Frame>,
}

impl ReportedError {
    /// `(file, line)` of the innermost frame of `stack` in one of `files`.
    pub fn user_line(&self, files: &[&str]) -> Option<(String, u32)> {
        user_line(&self.stack, files)
    }

    /// The same for `alloc_stack`.
    pub fn alloc_line(&self, files: &[&str]) -> Option<(String, u32)> {
        user_line(&self.alloc_stack, files)
    }

    /// The same for `free_stack`.
    pub fn free_line(&self, files: &[&str]) -> Option<(String, u32)> {
        user_line(&self.free_stack, files)
    }
}

pub fn user_line(stack: &[Frame], files: &[&str]) -> Option<(String, u32)> {
    innermost_in(stack, files).and_then(|f| Some((f.file_name()?.to_owned(), f.line?)))
}

/// A parsed report.
pub struct Report {
    pub json: Value,
}

impl Report {
    /// Reads and parses the report file; `stderr` of the run is shown if that fails.
    pub fn read(path: &Path, stderr: &str) -> Report {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!(
                "no JSON report at {}: {e}\nfencepost stderr:\n{stderr}",
                path.display()
            )
        });
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("report {} is not JSON: {e}\n{text}", path.display()));
        let report = Report { json };
        assert_eq!(
            report.json["schema"],
            "fencepost-report/1",
            "unexpected schema\n{}",
            report.pretty()
        );
        report
    }

    pub fn pretty(&self) -> String {
        serde_json::to_string_pretty(&self.json).unwrap_or_default()
    }

    fn field<'a>(&'a self, value: &'a Value, key: &str, what: &str) -> &'a Value {
        match value.get(key) {
            Some(v) => v,
            None => panic!("{what} has no {key:?}: {value}\nreport:\n{}", self.pretty()),
        }
    }

    fn u64_field(&self, value: &Value, key: &str, what: &str) -> u64 {
        self.field(value, key, what)
            .as_u64()
            .unwrap_or_else(|| panic!("{what}.{key} is not an unsigned integer: {value}"))
    }

    /// `summary.<key>` as a number.
    pub fn summary_u64(&self, key: &str) -> u64 {
        let summary = self.field(&self.json, "summary", "report");
        self.u64_field(summary, key, "summary")
    }

    /// `exit`: `Ok(code)` for `{"code": N}`, `Err(signal)` for `{"signal": N}`.
    pub fn exit(&self) -> Result<i64, i64> {
        let exit = self.field(&self.json, "exit", "report");
        if let Some(code) = exit.get("code").and_then(Value::as_i64) {
            Ok(code)
        } else if let Some(signal) = exit.get("signal").and_then(Value::as_i64) {
            Err(signal)
        } else {
            panic!("exit is neither {{\"code\": N}} nor {{\"signal\": N}}: {exit}")
        }
    }

    pub fn command(&self) -> Vec<String> {
        self.field(&self.json, "command", "report")
            .as_array()
            .expect("command is an array")
            .iter()
            .map(|v| v.as_str().expect("command items are strings").to_owned())
            .collect()
    }

    fn stack(&self, value: &Value, key: &str, what: &str) -> Vec<Frame> {
        let Some(frames) = value.get(key) else {
            panic!("{what} has no {key:?}: {value}")
        };
        if frames.is_null() {
            return Vec::new();
        }
        frames
            .as_array()
            .unwrap_or_else(|| panic!("{what}.{key} is not an array: {frames}"))
            .iter()
            .map(|f| Frame {
                function: f.get("function").and_then(Value::as_str).map(str::to_owned),
                file: f.get("file").and_then(Value::as_str).map(str::to_owned),
                line: f.get("line").and_then(Value::as_u64).map(|l| l as u32),
                module: f.get("module").and_then(Value::as_str).map(str::to_owned),
            })
            .collect()
    }

    pub fn leaks(&self) -> Vec<LossRecord> {
        let leaks = self
            .field(&self.json, "leaks", "report")
            .as_array()
            .expect("leaks is an array");
        leaks
            .iter()
            .map(|l| LossRecord {
                kind: self
                    .field(l, "kind", "loss record")
                    .as_str()
                    .expect("kind is a string")
                    .to_owned(),
                bytes: self.u64_field(l, "bytes", "loss record"),
                blocks: self.u64_field(l, "blocks", "loss record"),
                pid: self.u64_field(l, "pid", "loss record"),
                stack: self.stack(l, "stack", "loss record"),
            })
            .collect()
    }

    pub fn errors(&self) -> Vec<ReportedError> {
        let errors = self
            .field(&self.json, "errors", "report")
            .as_array()
            .expect("errors is an array");
        errors
            .iter()
            .map(|e| ReportedError {
                kind: self
                    .field(e, "kind", "error")
                    .as_str()
                    .expect("kind is a string")
                    .to_owned(),
                pid: self.u64_field(e, "pid", "error"),
                count: self.u64_field(e, "count", "error"),
                access: e.get("access").filter(|a| !a.is_null()).map(|a| Access {
                    op: self
                        .field(a, "op", "error.access")
                        .as_str()
                        .unwrap_or_else(|| panic!("error.access.op is not a string: {a}"))
                        .to_owned(),
                    size: self.u64_field(a, "size", "error.access"),
                    address: self.u64_field(a, "address", "error.access"),
                }),
                block: e.get("block").filter(|b| !b.is_null()).map(|b| Block {
                    address: self.u64_field(b, "address", "error.block"),
                    size: self.u64_field(b, "size", "error.block"),
                    offset: self
                        .field(b, "offset", "error.block")
                        .as_i64()
                        .unwrap_or_else(|| panic!("error.block.offset is not an integer: {b}")),
                    allocated_by: b
                        .get("allocated_by")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                }),
                signal: e.get("signal").and_then(Value::as_i64),
                found_at: e.get("found_at").and_then(Value::as_str).map(str::to_owned),
                message: e.get("message").and_then(Value::as_str).map(str::to_owned),
                stack: self.stack(e, "stack", "error"),
                alloc_stack: e
                    .get("alloc_stack")
                    .map(|_| self.stack(e, "alloc_stack", "error"))
                    .unwrap_or_default(),
                free_stack: e
                    .get("free_stack")
                    .map(|_| self.stack(e, "free_stack", "error"))
                    .unwrap_or_default(),
            })
            .collect()
    }
}
