//! The HTML report (`--html FILE`), loaded in headless Chromium: the page runs its script
//! without errors (it writes `#fp-loaded`, and `#fp-js-errors` on any error) and the DOM
//! shows the findings — kinds, file:line, byte counts, the source line, the drawing of the
//! block, the heap chart with the leaked bytes. A screenshot is kept under
//! `target/html-report/` for people to look at. Chromium (Debian's `chromium`, installed
//! by `.ci/run`) is required: without it these tests fail, they do not skip.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

/// `$CHROMIUM`, else `chromium` on the PATH.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "chromium not found: the HTML report tests need it (apt-get install chromium, as \
         .ci/run does), or set CHROMIUM to the browser"
    );
}

/// Runs headless Chromium on `html` with `extra` arguments; returns its stdout.
fn run_chromium(test_name: &str, html: &Path, extra: &[String]) -> String {
    let profile = scratch_dir(&format!("{test_name}-chromium-profile"));
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(format!("file://{}", html.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = spawn_in_own_group(&mut cmd);
    let (status, stdout, stderr) =
        wait_with_output(child, Duration::from_secs(120), "headless chromium");
    assert!(status.success(), "chromium failed: {status:?}\n{stderr}");
    stdout
}

/// `fencepost run --html OUT -- prog`: the HTML file and the JSON report.
fn html_of(test_name: &str, program: &str, options: &[&str]) -> (PathBuf, Report) {
    let dir = scratch_dir(test_name);
    let html = dir.join(format!("{program}.html"));
    let json = dir.join("report.json");
    let mut opts = vec!["--html", html.to_str().unwrap()];
    opts.extend_from_slice(options);
    let mut cmd = fencepost_command(&opts, &json, &prog(program), &[]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = spawn_in_own_group(&mut cmd);
    let (_, _, stderr) = wait_with_output(child, RUN_TIMEOUT, "fencepost run --html");
    assert!(html.is_file(), "no HTML written\n{stderr}");
    let report = Report::read(&json, &stderr);
    (html, report)
}

/// The DOM after the page's script ran; checks the script's marker and that no script
/// error was recorded.
fn loaded_dom(test_name: &str, html: &Path) -> String {
    let dom = run_chromium(test_name, html, &["--dump-dom".to_string()]);
    assert!(
        dom.contains("id=\"fp-loaded\""),
        "the page's script did not run to the end:\n{dom}"
    );
    assert!(
        !dom.contains("id=\"fp-js-errors\""),
        "the page had script errors:\n{dom}"
    );
    dom
}

/// The `data-NAME="…"` value of the `#fp-loaded` marker.
fn marker_attr(dom: &str, name: &str) -> String {
    let at = dom.find("id=\"fp-loaded\"").expect("marker");
    let tag_start = dom[..at].rfind('<').unwrap();
    let tag = &dom[tag_start..tag_start + dom[tag_start..].find('>').unwrap()];
    let key = format!("data-{name}=\"");
    let v = &tag[tag.find(&key).unwrap_or_else(|| panic!("{key} in {tag}")) + key.len()..];
    v[..v.find('"').unwrap()].to_string()
}

/// The highlighted source line (`<span class="hl">`) shows the marked line.
fn assert_highlighted(dom: &str, source: &str, marker: &str) {
    let line = marker_line(source, marker);
    let expected = format!("<span class=\"hl\"><span class=\"ln\">{line}</span>");
    let at = dom
        .find(&expected)
        .unwrap_or_else(|| panic!("no highlighted line {line} ({marker}):\n{dom}"));
    let rest = &dom[at..at + 300.min(dom.len() - at)];
    assert!(
        rest.contains(&format!("FP:{marker}")),
        "line {line} highlighted, but it is not the FP:{marker} line: {rest}"
    );
}

#[test]
fn html_overflow_shows_the_access_the_block_and_the_source() {
    let (html, report) = html_of("html_overflow", "overrun_read", &[]);
    assert_eq!(report.errors().len(), 1);
    let dom = loaded_dom("html_overflow", &html);
    assert_eq!(marker_attr(&dom, "errors"), "1");
    assert_eq!(marker_attr(&dom, "leaks"), "0");
    let line = marker_line("c/overrun_read.c", "bad_read");
    for needle in [
        "data-kind=\"heap-buffer-overflow\"",
        "read of 1 byte, 0 bytes after a 13-byte block",
        &format!("overrun_read.c:{line} in main"),
        "block: 13 bytes",
        "guard page",
        "read 1 byte at offset 13",
        "Reading or writing past the end of a block",
        "overrun_read.c:26", // the allocation stack
        "class=\"timeline-chart\"",
    ] {
        assert!(
            dom.contains(needle),
            "{needle:?} missing from the DOM:\n{dom}"
        );
    }
    assert_highlighted(&dom, "c/overrun_read.c", "bad_read");
}

#[test]
fn html_use_after_free_shows_both_errors_and_the_freed_blocks() {
    let (html, report) = html_of("html_uaf", "use_after_free", &[]);
    assert_eq!(report.errors().len(), 2);
    let dom = loaded_dom("html_uaf", &html);
    assert_eq!(marker_attr(&dom, "errors"), "2");
    let src = "c/use_after_free.c";
    for needle in [
        "data-kind=\"use-after-free\"".to_string(),
        "freed block: 24 bytes".to_string(),
        "freed block: 40 bytes".to_string(),
        "read 1 byte at offset 5".to_string(),
        "write 4 bytes at offset 12".to_string(),
        "class=\"cross\"".to_string(),
        format!("use_after_free.c:{} in main", marker_line(src, "uaf_read")),
        format!("use_after_free.c:{} in main", marker_line(src, "uaf_write")),
        format!("use_after_free.c:{}", marker_line(src, "free_read")),
        format!("use_after_free.c:{}", marker_line(src, "alloc_write")),
        "block freed by free".to_string(),
        "Using a block after it was freed".to_string(),
    ] {
        assert!(
            dom.contains(&needle),
            "{needle:?} missing from the DOM:\n{dom}"
        );
    }
    assert_highlighted(&dom, src, "uaf_read");
    assert_highlighted(&dom, src, "uaf_write");
}

#[test]
fn html_lost_list_shows_both_loss_records_and_the_leak_on_the_chart() {
    let (html, report) = html_of("html_leak_list", "leak_list", &[]);
    assert_eq!(report.leaks().len(), 2);
    let dom = loaded_dom("html_leak_list", &html);
    assert_eq!(marker_attr(&dom, "leaks"), "2");
    assert_eq!(marker_attr(&dom, "errors"), "0");
    let line = marker_line("c/leak_list.c", "node");
    for needle in [
        "32 bytes in 1 block definitely lost (loss record 2 of 2)".to_string(),
        "288 bytes in 9 blocks indirectly lost (loss record 1 of 2)".to_string(),
        format!("leak_list.c:{line} in new_node"),
        "build_and_drop".to_string(),
        "leaked at exit: 320 bytes".to_string(),
        "Definitely lost: a leak".to_string(),
        "Indirectly lost".to_string(),
        "No heap errors were found.".to_string(),
    ] {
        assert!(
            dom.contains(&needle),
            "{needle:?} missing from the DOM:\n{dom}"
        );
    }
    assert_highlighted(&dom, "c/leak_list.c", "node");
    // The JSON carries the curve the chart was drawn from: 13 allocations and 3 frees,
    // ending at the 320 bytes still in use.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(html.with_file_name("report.json")).unwrap())
            .unwrap();
    let points = json["timeline"][0]["points"].as_array().expect("timeline");
    let last = points.last().unwrap();
    assert_eq!(last["events"], 16, "{last}");
    assert_eq!(last["bytes"], 320, "{last}");
}

#[test]
fn html_screenshot_is_kept_under_target() {
    let (html, _) = html_of("html_screenshot", "use_after_free", &[]);
    let dir = target_dir().join("html-report");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("use_after_free.png");
    let _ = std::fs::remove_file(&png);
    std::fs::copy(&html, dir.join("use_after_free.html")).unwrap();
    run_chromium(
        "html_screenshot",
        &html,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1200,2000".to_string(),
        ],
    );
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1200, 2000));
    // A blank page compresses to a few kilobytes; text, tables and drawings do not.
    assert!(
        bytes.len() > 60_000,
        "screenshot {} is only {} bytes: is the page blank?",
        png.display(),
        bytes.len()
    );
}
