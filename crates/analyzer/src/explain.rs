//! Plain explanations of every kind of finding, for people meeting them for the first time:
//! what it means, the usual cause, how to fix it. Written once, here; the text report
//! (`--explain`) and the HTML report both show them.
//!
//! Also: which modules of a report have no debug information, so the reports can say why a
//! frame shows an address instead of a file and line.

use std::collections::BTreeSet;

use crate::report::{ErrorKind, Frame, LeakKind, Report};

/// The three parts of an explanation. Each is one or two plain sentences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explanation {
    /// A short title, e.g. "Reading or writing past the end of a block".
    pub title: &'static str,
    pub meaning: &'static str,
    pub cause: &'static str,
    pub fix: &'static str,
}

/// The explanation of an error kind.
pub fn error(kind: ErrorKind) -> Explanation {
    match kind {
        ErrorKind::HeapBufferOverflow => Explanation {
            title: "Reading or writing past the end of a block",
            meaning: "The program touched bytes just after the end of a block it got from \
                      malloc or new. Those bytes belong to someone else (or to nobody): \
                      a read gets garbage, a write silently corrupts other data.",
            cause: "An off-by-one loop bound (`i <= n` instead of `i < n`), forgetting the \
                    byte for the terminating '\\0' of a string (`malloc(strlen(s))` instead \
                    of `malloc(strlen(s) + 1)`), or a size computed in elements where bytes \
                    were meant.",
            fix: "Look at the line of the access and at the size the block was allocated \
                  with (the allocation stack): make the loop stop at the last valid index, \
                  or allocate enough bytes.",
        },
        ErrorKind::HeapBufferUnderflow => Explanation {
            title: "Reading or writing before the start of a block",
            meaning: "The program touched bytes just before the first byte of a heap block.",
            cause: "An index that became negative (`p[i - 1]` with `i == 0`), a loop running \
                    backwards one step too far, or pointer arithmetic that went below the \
                    block.",
            fix: "Check the index at the line of the access; make the loop stop at index 0.",
        },
        ErrorKind::UseAfterFree => Explanation {
            title: "Using a block after it was freed",
            meaning: "The program read or wrote a block it had already given back with \
                      free or delete. That memory may already hold someone else's data.",
            cause: "A pointer kept after free (a second pointer to the same block, a \
                    pointer stored in a list or a struct), or a function returning a pointer \
                    to memory it freed.",
            fix: "Find who still uses the pointer (the access stack) and who freed it (the \
                  free stack): free the block only after its last use, and set pointers to \
                  NULL after free so a later use crashes at once.",
        },
        ErrorKind::DoubleFree => Explanation {
            title: "Freeing a block twice",
            meaning: "free (or delete) was called on a block that was already freed. glibc \
                      usually aborts the program for this; worse, it can corrupt the heap.",
            cause: "Two owners each freeing the same block, an error path freeing a block \
                    that the normal path frees again, or a pointer not reset after free.",
            fix: "Decide which part of the program owns the block and free it only there; \
                  set the pointer to NULL after free (free(NULL) does nothing).",
        },
        ErrorKind::InvalidFree => Explanation {
            title: "Freeing something that is not a heap block",
            meaning: "free (or delete) was given an address that malloc or new never \
                      returned: the address of a local or global variable, a string \
                      literal, or the middle of a block.",
            cause: "Freeing a pointer that was moved (`p++` then `free(p)`), or freeing \
                    memory that was not allocated with malloc.",
            fix: "Pass free exactly the pointer malloc returned; keep a copy of it if you \
                  move through the block with another pointer.",
        },
        ErrorKind::MismatchedFree => Explanation {
            title: "Releasing a block with the wrong function",
            meaning: "A block was released by a function of another family than the one \
                      that allocated it: `delete` of a `new[]` block, `free` of a `new` \
                      block, `delete[]` of a `malloc` block.",
            cause: "Mixing C and C++ allocation, or forgetting the `[]` of `delete[]`.",
            fix: "Pair them: malloc/free, new/delete, new[]/delete[]. In C++ prefer \
                  std::vector, std::string or std::unique_ptr, which pair them for you.",
        },
        ErrorKind::InvalidAccess => Explanation {
            title: "Access to memory that belongs to no block",
            meaning: "The program touched a guard page of fencepost's heap that is not next \
                      to any block it can name: the pointer was wild.",
            cause: "An uninitialised or corrupted pointer, or an index far past the end of \
                    a block.",
            fix: "Check where the pointer used at the line of the access comes from.",
        },
        ErrorKind::MisalignedAccess => Explanation {
            title: "An aligned instruction on an address that is not aligned",
            meaning: "The program used an instruction that needs an aligned address (such \
                      as an SSE load) on a heap block that fencepost placed at a smaller \
                      alignment than glibc would.",
            cause: "Code that assumes every malloc'd block is 16-byte aligned. C only \
                    promises the alignment the object needs.",
            fix: "Rerun with --alignment=16 to check the rest of the program; to fix the \
                  code, use aligned_alloc or unaligned loads.",
        },
        ErrorKind::FatalSignal => Explanation {
            title: "The program crashed",
            meaning: "The process was killed by a signal: SIGSEGV (an access to memory that \
                      is not mapped, often through a NULL pointer), SIGBUS, SIGFPE (e.g. a \
                      division by zero), SIGILL or SIGABRT (abort(), a failed assert).",
            cause: "Dereferencing NULL or an uninitialised pointer, a failed assertion, or a \
                    division by zero.",
            fix: "Look at the line of the crash (the first frame) and check every pointer \
                  used there; the blocks still held at the crash are listed as \
                  `unreleased`.",
        },
    }
}

/// The explanation of a leak kind.
pub fn leak(kind: LeakKind) -> Explanation {
    match kind {
        LeakKind::Definite => Explanation {
            title: "Definitely lost: a leak",
            meaning: "At exit no pointer to this block was left anywhere in the program's \
                      memory: it can never be freed.",
            cause: "The last pointer to a block went away (a local variable going out of \
                    scope, a pointer overwritten) without a free.",
            fix: "Free the block when you are done with it, in the function that owns it \
                  (the allocation stack says where it was made).",
        },
        LeakKind::Indirect => Explanation {
            title: "Indirectly lost: lost through another lost block",
            meaning: "The only pointers to this block are inside blocks that are themselves \
                      lost, like the nodes of a list whose head was lost.",
            cause: "A data structure (list, tree) whose root was lost: its other blocks go \
                    with it.",
            fix: "Fix the definitely lost block that holds them (usually the root): freeing \
                  the structure properly frees these too.",
        },
        LeakKind::Possible => Explanation {
            title: "Possibly lost: only a pointer into the middle is left",
            meaning: "No pointer to the start of this block was found, but a pointer into \
                      its middle was. It may be a leak, or code that keeps pointers to the \
                      inside of blocks on purpose.",
            cause: "A pointer advanced through a block (`p += n`) while the original was \
                    lost, or a custom allocator handing out pieces of a block.",
            fix: "Keep the pointer malloc returned and free it; if the program really keeps \
                  interior pointers, suppress these records.",
        },
        LeakKind::Reachable => Explanation {
            title: "Still reachable: not freed, but not lost",
            meaning: "A pointer to this block still existed at exit (in a global variable, \
                      say). The program could have freed it but did not.",
            cause: "Memory kept for the whole run (caches, globals) and left to the \
                    operating system at exit.",
            fix: "Usually harmless. Free it at exit if you want a clean report.",
        },
        LeakKind::Unreleased => Explanation {
            title: "Unreleased: the process died holding it",
            meaning: "The process did not exit normally (it crashed or was killed), so no \
                      leak check could run; these blocks were still allocated when it died.",
            cause: "The crash or kill itself; these blocks are not necessarily leaks.",
            fix: "Fix the crash first; then the next run will classify these blocks.",
        },
    }
}

/// The explanation as indented text lines, for the text report.
pub fn as_text(e: &Explanation) -> String {
    let mut out = format!(" explanation: {}\n", e.title);
    for (label, text) in [
        ("what it means", e.meaning),
        ("usual cause", e.cause),
        ("how to fix", e.fix),
    ] {
        out.push_str(&wrap(&format!("{label}: {text}"), "   ", 92));
    }
    out
}

/// Wraps `text` at word boundaries into lines of at most `width` columns, each starting
/// with `indent`.
fn wrap(text: &str, indent: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::from(indent);
    for word in text.split_whitespace() {
        if line.len() > indent.len() && line.len() + 1 + word.len() > width {
            out.push_str(line.trim_end());
            out.push('\n');
            line = String::from(indent);
        }
        if line.len() > indent.len() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if line.len() > indent.len() {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Modules of the given frames that show no debug information: some frame is in them and
/// none of their frames has a source file. System libraries (under `/lib`, `/usr/lib`,
/// ...) are left out: compiling with -g is not the user's fix there. Sorted.
pub fn modules_without_debug_info<'a>(frames: impl IntoIterator<Item = &'a Frame>) -> Vec<String> {
    let mut without = BTreeSet::new();
    let mut with = BTreeSet::new();
    for f in frames {
        let Some(module) = f.module.as_deref() else {
            continue;
        };
        if f.file.is_some() {
            with.insert(module);
        } else {
            without.insert(module);
        }
    }
    without
        .into_iter()
        .filter(|m| !with.contains(m) && !is_system_library(m))
        .map(str::to_string)
        .collect()
}

/// The note the reports print for such a module.
pub fn no_debug_info_note(module: &str) -> String {
    format!("note: no debug information for {module}: compile with -g to see file and line")
}

fn is_system_library(path: &str) -> bool {
    [
        "/lib/",
        "/lib64/",
        "/usr/lib/",
        "/usr/lib64/",
        "/usr/libexec/",
    ]
    .iter()
    .any(|dir| path.starts_with(dir))
}

/// Every frame of the report's errors and loss records (for the HTML report, which shows
/// them all).
pub fn all_frames(report: &Report) -> impl Iterator<Item = &Frame> {
    report
        .errors
        .iter()
        .flat_map(|e| {
            e.stack
                .iter()
                .chain(e.alloc_stack.iter().flatten())
                .chain(e.free_stack.iter().flatten())
        })
        .chain(report.leaks.iter().flat_map(|l| l.stack.iter()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(module: &str, file: Option<&str>) -> Frame {
        Frame {
            address: 0x1000,
            module: Some(module.into()),
            function: None,
            file: file.map(Into::into),
            line: None,
            inlined: false,
        }
    }

    #[test]
    fn every_kind_has_all_three_parts() {
        let all = ErrorKind::ALL
            .iter()
            .map(|k| error(*k))
            .chain(LeakKind::ALL.iter().map(|k| leak(*k)));
        for e in all {
            for part in [e.title, e.meaning, e.cause, e.fix] {
                assert!(part.len() > 10 && !part.contains("  "), "{e:?}");
            }
        }
    }

    #[test]
    fn text_is_wrapped_and_labelled() {
        let t = as_text(&error(ErrorKind::HeapBufferOverflow));
        assert!(t.starts_with(" explanation: Reading or writing past the end of a block\n"));
        assert!(t.contains("   what it means: The program touched"), "{t}");
        assert!(t.contains("   how to fix: "), "{t}");
        assert!(t.lines().all(|l| l.len() <= 92), "{t}");
    }

    #[test]
    fn modules_with_no_file_anywhere_are_named_once() {
        let frames = [
            frame("/tmp/stripped", None),
            frame("/tmp/stripped", None),
            frame("/tmp/prog", Some("prog.c")),
            frame("/tmp/prog", None), // crt code in a -g program: not a missing -g
            frame("/usr/lib/x86_64-linux-gnu/libc.so.6", None),
        ];
        assert_eq!(modules_without_debug_info(&frames), ["/tmp/stripped"]);
        assert_eq!(
            no_debug_info_note("/tmp/stripped"),
            "note: no debug information for /tmp/stripped: compile with -g to see file and line"
        );
    }
}
