//! Bundles: formats, the member rules, every limit, and what detection calls a bundle.

#![allow(clippy::unwrap_used)]

use std::io::Write;

use atomix_config::bundle::{Bundle, BundleError, Caller, Compression, Input, Limits};
use tar::{EntryType, Header};

const CONFIG: &[u8] = b"version = 1\n";

/// One member: name, type, contents (and link target for links).
struct M<'a>(&'a str, EntryType, &'a [u8]);

/// A tar with `members`; names are written raw, so unsafe ones can be built too.
fn tar(members: &[M<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for M(name, kind, data) in members {
        let mut h = Header::new_gnu();
        let raw = name.as_bytes();
        h.as_old_mut().name[..raw.len()].copy_from_slice(raw);
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(if *kind == EntryType::Regular {
            data.len() as u64
        } else {
            0
        });
        if matches!(kind, EntryType::Symlink | EntryType::Link) {
            h.set_link_name("config.toml").unwrap();
        }
        h.set_cksum();
        let body: &[u8] = if *kind == EntryType::Regular {
            data
        } else {
            &[]
        };
        b.append(&h, body).unwrap();
    }
    b.into_inner().unwrap()
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zst(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

fn read(members: &[M<'_>]) -> Result<Bundle, BundleError> {
    Bundle::read(&gz(&tar(members)), None, &Limits::default())
}

use EntryType::{Directory as D, Regular as F};

#[test]
fn a_gzip_bundle_gives_the_config_and_the_payload() {
    let b = read(&[
        M(".", D, b""),
        M("./config.toml", F, CONFIG),
        M("./files/", D, b""),
        M("./files/app/", D, b""),
        M("./files/app/config.yaml", F, b"a: 1\n"),
        M("files/top.txt", F, b"t"),
    ])
    .unwrap();
    assert_eq!(b.config_toml, "version = 1\n");
    let paths: Vec<_> = b.files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["app/config.yaml", "top.txt"]);
    let f = b.files.get("app/config.yaml").unwrap();
    assert_eq!((f.mode, f.contents.as_slice()), (0o600, &b"a: 1\n"[..]));
}

#[test]
fn a_zstd_bundle_decodes_in_process() {
    let bytes = zst(&tar(&[M("config.toml", F, CONFIG)]));
    assert_eq!(Compression::detect(&bytes, None), Some(Compression::Zstd));
    let b = Bundle::read(&bytes, Some("x.tar.zst"), &Limits::default()).unwrap();
    assert_eq!(b.config_toml, "version = 1\n");
    assert!(b.files.is_empty());
}

#[test]
fn concatenated_zstd_frames_are_one_stream() {
    let archive = tar(&[M("config.toml", F, CONFIG), M("files/a", F, &[7u8; 3000])]);
    let (head, tail) = archive.split_at(1536);
    let bytes = [zst(head), zst(tail)].concat();
    let b = Bundle::read(&bytes, None, &Limits::default()).unwrap();
    assert_eq!(b.files.get("a").unwrap().contents, vec![7u8; 3000]);
}

#[test]
fn the_top_level_is_config_toml_and_files_only() {
    assert!(matches!(
        read(&[M("files/a", F, b"")]),
        Err(BundleError::MissingConfig)
    ));
    let e = read(&[M("config.toml", F, CONFIG), M("extra.txt", F, b"")]).unwrap_err();
    assert!(
        matches!(&e, BundleError::TopLevel { member } if member == "extra.txt"),
        "{e}"
    );
    let e = read(&[M("config.toml/", D, b"")]).unwrap_err();
    assert!(
        matches!(&e, BundleError::WrongType { member } if member == "config.toml/"),
        "{e}"
    );
    let e = read(&[M("config.toml", F, CONFIG), M("files", F, b"")]).unwrap_err();
    assert!(
        matches!(&e, BundleError::WrongType { member } if member == "files"),
        "{e}"
    );
    let e = read(&[M(".", F, b""), M("config.toml", F, CONFIG)]).unwrap_err();
    assert!(matches!(&e, BundleError::WrongType { .. }), "{e}");
    let e = read(&[M("config.toml", F, b"\xff\xfe")]).unwrap_err();
    assert!(matches!(e, BundleError::ConfigNotUtf8));
}

#[test]
fn unsafe_paths_are_rejected_naming_the_member() {
    for name in [
        "/etc/passwd",
        "files/../../x",
        "../config.toml",
        "files/a/../../b",
    ] {
        let e = read(&[M("config.toml", F, CONFIG), M(name, F, b"x")]).unwrap_err();
        assert!(
            matches!(&e, BundleError::UnsafePath { member, .. } if member == name),
            "{name}: {e}"
        );
        assert!(e.to_string().contains(name));
    }
}

#[test]
fn links_devices_and_fifos_are_rejected_not_skipped() {
    for (name, kind, word) in [
        ("./files/evil", EntryType::Symlink, "symlink"),
        ("files/hard", EntryType::Link, "hard link"),
        ("files/tty", EntryType::Char, "character device"),
        ("files/sda", EntryType::Block, "block device"),
        ("files/fifo", EntryType::Fifo, "FIFO"),
    ] {
        let e = read(&[M("config.toml", F, CONFIG), M(name, kind, b"")]).unwrap_err();
        assert!(
            matches!(&e, BundleError::MemberType { member, kind } if member == name && kind == word),
            "{name}: {e}"
        );
    }
}

#[test]
fn member_count_and_member_size_limits() {
    let limits = Limits {
        max_members: 3,
        max_member_bytes: 12,
        ..Limits::default()
    };
    let ok = gz(&tar(&[
        M("config.toml", F, CONFIG),
        M("files/a", F, b"0123456789AB"),
    ]));
    Bundle::read(&ok, None, &limits).unwrap();
    let big = gz(&tar(&[
        M("config.toml", F, CONFIG),
        M("files/a", F, b"0123456789ABC"),
    ]));
    let e = Bundle::read(&big, None, &limits).unwrap_err();
    assert!(
        matches!(&e, BundleError::MemberTooLarge { member, size: 13, limit: 12 } if member == "files/a"),
        "{e}"
    );
    let many = gz(&tar(&[
        M("config.toml", F, CONFIG),
        M("files/a", F, b""),
        M("files/b", F, b""),
        M("files/c", F, b""),
    ]));
    let e = Bundle::read(&many, None, &limits).unwrap_err();
    assert!(matches!(e, BundleError::TooManyMembers { limit: 3 }), "{e}");
}

#[test]
fn a_compression_bomb_stops_at_the_decompressed_limit() {
    let zeros = vec![0u8; 4 << 20];
    let archive = tar(&[M("config.toml", F, CONFIG), M("files/zeros", F, &zeros)]);
    let limits = Limits {
        max_decompressed_bytes: 1 << 20,
        ..Limits::default()
    };
    for bytes in [gz(&archive), zst(&archive)] {
        assert!(bytes.len() < 64 << 10, "{}", bytes.len());
        let e = Bundle::read(&bytes, None, &limits).unwrap_err();
        assert!(
            matches!(e, BundleError::DecompressedTooLarge { limit } if limit == 1 << 20),
            "{e}"
        );
    }
}

#[test]
fn the_upload_limit_applies_to_bundles_and_plain_toml() {
    let limits = Limits {
        max_upload_bytes: 8,
        ..Limits::default()
    };
    let bytes = gz(&tar(&[M("config.toml", F, CONFIG)]));
    let e = Bundle::read(&bytes, None, &limits).unwrap_err();
    assert!(
        matches!(e, BundleError::UploadTooLarge { limit: 8, .. }),
        "{e}"
    );
    let e = Input::detect(b"version = 1\n", Some("c.toml"), Caller::Cli, &limits).unwrap_err();
    assert!(
        matches!(e, BundleError::UploadTooLarge { size: 12, .. }),
        "{e}"
    );
}

#[test]
fn broken_streams_are_decode_errors() {
    let mut bytes = gz(&tar(&[M("config.toml", F, CONFIG)]));
    bytes.truncate(bytes.len() / 2);
    let e = Bundle::read(&bytes, None, &Limits::default()).unwrap_err();
    assert!(
        matches!(
            e,
            BundleError::Decode {
                compression: Compression::Gzip,
                ..
            }
        ),
        "{e}"
    );
    let e = Bundle::read(b"plain text", None, &Limits::default()).unwrap_err();
    assert!(matches!(e, BundleError::NotCompressed));
    let e = Bundle::read(b"\x28\xb5\x2f\xfdjunk", None, &Limits::default()).unwrap_err();
    assert!(
        matches!(
            e,
            BundleError::Decode {
                compression: Compression::Zstd,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn detection_by_magic_and_name_for_the_api_and_the_cli() {
    let l = Limits::default();
    let gzip = gz(b"x");
    let d = |b: &[u8], n: Option<&str>, c| Input::detect(b, n, c, &l);
    assert_eq!(
        d(&gzip, None, Caller::Api).unwrap(),
        Input::Bundle(Compression::Gzip)
    );
    assert_eq!(
        d(b"v=1", Some("B.TGZ"), Caller::Api).unwrap(),
        Input::Bundle(Compression::Gzip)
    );
    for name in ["a.tar.zst", "a.tar.zstd", "a.tzst"] {
        assert_eq!(
            d(b"v", Some(name), Caller::Api).unwrap(),
            Input::Bundle(Compression::Zstd)
        );
    }
    assert_eq!(
        d(b"version = 1", Some("upload.bin"), Caller::Api).unwrap(),
        Input::Toml
    );
    assert_eq!(d(b"version = 1", None, Caller::Api).unwrap(), Input::Toml);
    assert_eq!(
        d(&gzip, Some("config.toml"), Caller::Cli).unwrap(),
        Input::Toml
    );
    assert_eq!(
        d(&gzip, Some("seed"), Caller::Cli).unwrap(),
        Input::Bundle(Compression::Gzip)
    );
    let e = d(b"version = 1", Some("config.txt"), Caller::Cli).unwrap_err();
    assert!(matches!(e, BundleError::UnsupportedInput));
}

#[test]
fn limits_come_from_the_given_lookup() {
    let env = |k: &str| match k {
        "ATOMIXOS_MAX_CONFIG_UPLOAD_BYTES" => Some("100".to_owned()),
        "ATOMIXOS_MAX_BUNDLE_MEMBERS" => Some(" 7 ".to_owned()),
        _ => None,
    };
    let l = Limits::from_env(env).unwrap();
    assert_eq!((l.max_upload_bytes, l.max_members), (100, 7));
    assert_eq!(l.max_decompressed_bytes, 256 << 20);
    assert_eq!(l.max_member_bytes, 64 << 20);
    assert_eq!(Limits::from_env(|_| None).unwrap(), Limits::default());
    let e = Limits::from_env(|k| (k == "ATOMIXOS_MAX_BUNDLE_MEMBER_BYTES").then(|| "lots".into()))
        .unwrap_err();
    assert!(
        e.to_string().contains("ATOMIXOS_MAX_BUNDLE_MEMBER_BYTES"),
        "{e}"
    );
}
