//! `--xml-file` writes valgrind's XML protocol 4 as memcheck does: the document parses, its
//! top-level elements come in memcheck's order, and read with the same parser as
//! memcheck's own XML it carries the same findings (kinds, leaked bytes and blocks, lines,
//! block sizes and offsets, counts) for the same program.

mod support;

use std::path::{Path, PathBuf};

use support::valgrind::{parse_xml, run_valgrind, VgReport};
use support::{prog, run_fencepost, scratch_dir};

/// Runs `fencepost run --xml-file F --show-leak-kinds=all -- prog` and returns F.
fn fencepost_xml(test: &str, program: &Path, extra: &[&str]) -> (PathBuf, support::FencepostRun) {
    let xml = scratch_dir(&format!("{test}-xml")).join("fencepost.xml");
    let xml_arg = xml.to_str().expect("utf-8 path").to_owned();
    let mut options = vec!["--xml-file", xml_arg.as_str(), "--show-leak-kinds=all"];
    options.extend_from_slice(extra);
    let run = run_fencepost(test, &options, program, &[]);
    assert!(
        xml.is_file(),
        "fencepost wrote no XML at {}\nstderr:\n{}",
        xml.display(),
        run.stderr
    );
    (xml, run)
}

/// The top-level element names of a document, consecutive `<error>`s folded into one.
fn outline(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read XML");
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not well-formed XML: {e}\n{text}", path.display()));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "valgrindoutput");
    let mut names: Vec<String> = Vec::new();
    for node in root.children().filter(|n| n.is_element()) {
        let name = node.tag_name().name().to_owned();
        if names.last() != Some(&name) || name != "error" {
            names.push(name);
        }
    }
    names
}

fn child<'a>(node: roxmltree::Node<'a, 'a>, name: &str) -> Option<roxmltree::Node<'a, 'a>> {
    node.children().find(|c| c.has_tag_name(name))
}

/// The document-level facts a consumer reads first.
fn assert_preamble(path: &Path, pid: u64) {
    let text = std::fs::read_to_string(path).expect("read XML");
    let doc = roxmltree::Document::parse(&text).expect("well-formed");
    let root = doc.root_element();
    let field = |name: &str| child(root, name).and_then(|n| n.text()).map(str::trim);
    assert_eq!(field("protocolversion"), Some("4"));
    assert_eq!(field("protocoltool"), Some("memcheck"));
    assert_eq!(field("tool"), Some("memcheck"));
    assert_eq!(field("pid"), Some(pid.to_string().as_str()));
    let states: Vec<&str> = root
        .children()
        .filter(|n| n.has_tag_name("status"))
        .filter_map(|s| child(s, "state").and_then(|n| n.text()))
        .collect();
    assert_eq!(states, ["RUNNING", "FINISHED"]);
    let argv = child(root, "args")
        .and_then(|a| child(a, "argv"))
        .expect("<args><argv>");
    assert!(child(argv, "exe").and_then(|e| e.text()).is_some());
    // Every error has memcheck's fields in memcheck's order.
    for error in root.children().filter(|n| n.has_tag_name("error")) {
        let fields: Vec<&str> = error
            .children()
            .filter(|n| n.is_element())
            .map(|n| n.tag_name().name())
            .collect();
        assert_eq!(&fields[..3], ["unique", "tid", "kind"], "{fields:?}");
        assert!(
            matches!(fields[3], "what" | "xwhat"),
            "<what> or <xwhat> after <kind>: {fields:?}"
        );
        assert_eq!(fields[4], "stack", "{fields:?}");
    }
}

fn fencepost_findings(xml: &Path) -> VgReport {
    VgReport {
        errors: parse_xml(xml),
        files: vec![xml.to_path_buf()],
        status: Default::default(),
    }
}

/// Compares fencepost's XML with memcheck's for one program: structure and findings.
fn assert_xml_agrees(test: &str, program: &str, files: &[&str]) {
    let bin = prog(program);
    let (xml, run) = fencepost_xml(test, &bin, &[]);
    let memcheck = run_valgrind(test, &bin, &[]);
    let ours = fencepost_findings(&xml);

    let pid = run.report.json["processes"][0]["pid"]
        .as_u64()
        .expect("processes[0].pid");
    assert_preamble(&xml, pid);
    // memcheck writes one document per process; compare with the main process's.
    let theirs_outline = outline(&memcheck.files[0]);
    assert_eq!(
        outline(&xml),
        theirs_outline,
        "top-level elements differ from memcheck's ({})",
        memcheck.files[0].display()
    );

    let context = || {
        format!(
            "fencepost XML: {}\nmemcheck XML: {}",
            std::fs::read_to_string(&xml).unwrap_or_default(),
            memcheck.files[0].display()
        )
    };
    assert_eq!(
        ours.lost_keys(files),
        memcheck.lost_keys(files),
        "{}",
        context()
    );
    assert_eq!(
        ours.free_keys(files),
        memcheck.free_keys(files),
        "{}",
        context()
    );
    assert_eq!(
        ours.access_keys(files),
        memcheck.access_keys(files),
        "{}",
        context()
    );
    let kinds = |r: &VgReport| {
        let mut k: Vec<String> = r
            .errors
            .iter()
            .map(|e| e.kind.clone())
            .filter(|k| k != "Leak_StillReachable") // memcheck runs __libc_freeres first
            .collect();
        k.sort();
        k
    };
    assert_eq!(kinds(&ours), kinds(&memcheck), "{}", context());
    assert!(
        !kinds(&ours).is_empty(),
        "the program must have findings for this test to mean something"
    );
}

#[test]
fn lost_list_definite_and_indirect_records_match_memcheck() {
    assert_xml_agrees("xml_leak_list", "leak_list", &["leak_list.c"]);
}

#[test]
fn off_by_one_read_matches_memcheck() {
    assert_xml_agrees("xml_overrun_read", "overrun_read", &["overrun_read.c"]);
}

#[test]
fn use_after_free_with_free_and_alloc_stacks_matches_memcheck() {
    assert_xml_agrees(
        "xml_use_after_free",
        "use_after_free",
        &["use_after_free.c"],
    );
}

#[test]
fn double_free_matches_memcheck() {
    assert_xml_agrees("xml_double_free", "double_free", &["double_free.c"]);
}

#[test]
fn mismatched_delete_matches_memcheck() {
    assert_xml_agrees("xml_delete_array", "delete_array", &["delete_array.cpp"]);
}

#[test]
fn interior_free_matches_memcheck() {
    assert_xml_agrees("xml_free_middle", "free_middle", &["free_middle.c"]);
}

#[test]
fn possible_leak_matches_memcheck() {
    assert_xml_agrees("xml_possible_leak", "possible_leak", &["possible_leak.c"]);
}

#[test]
fn crash_has_the_invalid_write_and_a_fatal_signal_as_memcheck_writes_them() {
    let bin = prog("null_deref");
    let (xml, _run) = fencepost_xml("xml_null_deref", &bin, &[]);
    let memcheck = run_valgrind("xml_null_deref", &bin, &[]);
    let files = ["null_deref.c"];
    let ours = fencepost_findings(&xml);
    assert_eq!(ours.access_keys(&files), memcheck.access_keys(&files));
    // Loss records differ by design (memcheck classifies a crashed process's blocks,
    // fencepost calls them unreleased and leaves them out of the XML), so compare the
    // outline up to the loss records.
    let upto_finished = |mut o: Vec<String>| {
        let at = o.iter().rposition(|n| n == "status").expect("a status");
        o.truncate(at + 1);
        o
    };
    assert_eq!(
        upto_finished(outline(&xml)),
        upto_finished(outline(&memcheck.files[0]))
    );
    let text = std::fs::read_to_string(&xml).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let fatal = child(doc.root_element(), "fatal_signal").expect("<fatal_signal>");
    let field = |n: &str| child(fatal, n).and_then(|x| x.text()).map(str::to_owned);
    assert_eq!(field("signo").as_deref(), Some("11"));
    assert_eq!(field("signame").as_deref(), Some("SIGSEGV"));
    assert_eq!(field("siaddr").as_deref(), Some("0x0"));
    let frame = child(fatal, "stack")
        .and_then(|s| child(s, "frame"))
        .expect("frame");
    assert_eq!(
        child(frame, "line").and_then(|l| l.text()),
        Some(
            support::marker_line("c/null_deref.c", "crash")
                .to_string()
                .as_str()
        )
    );
}

#[test]
fn text_that_needs_escaping_stays_well_formed() {
    // A program path with XML's special characters ends up in <argv> and <preamble>.
    let dir = scratch_dir("xml_escaping-prog");
    let odd = dir.join("a&b<c>'d\"");
    std::fs::copy(prog("leak_definite"), &odd).expect("copy program");
    let (xml, _run) = fencepost_xml("xml_escaping", &odd, &[]);
    let text = std::fs::read_to_string(&xml).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed despite & < > in a path");
    let exe = child(doc.root_element(), "args")
        .and_then(|a| child(a, "argv"))
        .and_then(|a| child(a, "exe"))
        .and_then(|e| e.text())
        .expect("<exe>");
    assert!(exe.ends_with("a&b<c>'d\""), "{exe}");
}
