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

/// The block a free error is about.
#[derive(Debug, Clone)]
pub struct Block {
    pub size: u64,
    pub offset: u64,
}

/// A free error: `double-free`, `invalid-free` or `mismatched-free`.
#[derive(Debug, Clone)]
pub struct FreeError {
    pub kind: String,
    pub pid: u64,
    pub block: Option<Block>,
    pub stack: Vec<Frame>,
    pub alloc_stack: Vec<Frame>,
    pub free_stack: Vec<Frame>,
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

    pub fn errors(&self) -> Vec<FreeError> {
        let errors = self
            .field(&self.json, "errors", "report")
            .as_array()
            .expect("errors is an array");
        errors
            .iter()
            .map(|e| FreeError {
                kind: self
                    .field(e, "kind", "error")
                    .as_str()
                    .expect("kind is a string")
                    .to_owned(),
                pid: self.u64_field(e, "pid", "error"),
                block: e.get("block").filter(|b| !b.is_null()).map(|b| Block {
                    size: self.u64_field(b, "size", "error.block"),
                    offset: self.u64_field(b, "offset", "error.block"),
                }),
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
