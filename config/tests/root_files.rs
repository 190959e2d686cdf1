//! The whole config root the full fixture renders is the tree the original's `import` wrote
//! (`fixtures/full.expected/`): the same paths and bytes (its config root path replaced by
//! `/data/config` in the Quadlet units), and its modes.

#![allow(clippy::unwrap_used)]

use atomix_config::Config;
use atomix_config::root_files::render;

const FULL: &str = include_str!("fixtures/full.toml");

#[test]
fn the_full_fixture_renders_the_originals_config_root() {
    let config =
        Config::parse(FULL).unwrap_or_else(|r| panic!("{}", r.render_text("full.toml", FULL)));
    let root = render(&config, FULL.as_bytes(), "/data/config").unwrap();
    let expected = format!(
        "{}/tests/fixtures/full.expected",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut want = Vec::new();
    collect(std::path::Path::new(&expected), "", &mut want);
    let got: Vec<(String, u32, Vec<u8>)> = root
        .files
        .iter()
        .map(|(p, f)| (p.to_string(), f.mode, f.contents.clone()))
        .collect();
    let names = |v: &[(String, u32, Vec<u8>)]| v.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&got), names(&want));
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(
            String::from_utf8_lossy(&g.2),
            String::from_utf8_lossy(&w.2),
            "{}",
            g.0
        );
        // The original's modes (spec 3.1; git does not keep them in the fixture).
        let mode = if g.0.starts_with("quadlet/") {
            0o644
        } else {
            0o600
        };
        assert_eq!(g.1, mode, "mode of {}", g.0);
    }
}

/// The expected tree: every file.
fn collect(dir: &std::path::Path, prefix: &str, out: &mut Vec<(String, u32, Vec<u8>)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        if e.file_type().unwrap().is_dir() {
            collect(&e.path(), &format!("{name}/"), out);
        } else {
            out.push((name, 0, std::fs::read(e.path()).unwrap()));
        }
    }
    out.sort();
}
