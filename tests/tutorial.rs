//! docs/tutorial.md shows real reports: it must be exactly what
//! `docs/tutorial/generate.py` produces from its template with the fencepost under test
//! (the script masks pids and addresses). When this fails, rerun the script and review
//! the diff it prints.

mod support;

use std::process::Command;

use support::*;

#[test]
fn the_tutorial_shows_what_fencepost_prints_today() {
    let out = Command::new("python3")
        .arg(repo_root().join("docs/tutorial/generate.py"))
        .arg("--check")
        .env("FENCEPOST", fencepost_bin())
        .output()
        .expect("run python3 docs/tutorial/generate.py (python3 is installed by .ci/run)");
    assert!(
        out.status.success(),
        "docs/tutorial.md is stale (run docs/tutorial/generate.py):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
