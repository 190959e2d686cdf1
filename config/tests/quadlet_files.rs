//! The full fixture's Quadlet units and `quadlet-runtime.json` are byte for byte what the
//! original writes (`fixtures/full.expected/quadlet/`, from its `import`, its config root path
//! replaced by `/data/config`), with the same warnings.

use atomix_config::Config;
use atomix_config::quadlet::render;

const FULL: &str = include_str!("fixtures/full.toml");

fn expected(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/full.expected/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_full_fixture_renders_the_originals_quadlets() {
    let config =
        Config::parse(FULL).unwrap_or_else(|r| panic!("{}", r.render_text("full.toml", FULL)));
    let q = render(&config.containers, "/data/config").unwrap();
    let mut names: Vec<&str> = q.files.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    let dir = format!(
        "{}/tests/fixtures/full.expected/quadlet",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut want: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    want.sort();
    assert_eq!(names, want);
    for (name, text) in &q.files {
        assert_eq!(text, &expected(&format!("quadlet/{name}")), "{name}");
    }
    assert_eq!(q.runtime_json(), expected("quadlet-runtime.json"));
    assert_eq!(
        q.warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "container.myapp.Container.Network overridden to pasta for rootless container",
            "container.myapp.Container.PublishPort rewrote non-loopback bind '0.0.0.0:10081:81' \
             to 127.0.0.1",
        ]
    );
}
