//! The module lists `/etc/atomix/modules.load` (loaded by the modules stage on every boot) and
//! `/etc/atomix/modules-repart.load` (loaded by the repart stage only when it has work), written
//! by the initramfs builder.
//!
//! One module per line in load order: `<name> <absolute path inside the initramfs>`. `#` starts a
//! comment; blank lines are fine. Dependencies and softdeps were resolved when the list was
//! written: there is no modprobe at boot. [`load_list`] loads a list in order.

use std::io;
use std::path::{Path, PathBuf};

use crate::report::{ModuleRecord, ms};
use crate::system::{Clock, Files, ModuleLoad, ModuleLoadError, ModuleLoader};

/// Where the initramfs builder puts the list.
pub const MODULES_LOAD: &str = "/etc/atomix/modules.load";

/// The modules for repartitioning (f2fs, vfat and what they need, minus [`MODULES_LOAD`]).
pub const MODULES_REPART_LOAD: &str = "/etc/atomix/modules-repart.load";

/// One line of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleEntry {
    /// Module name (as in `lsmod`).
    pub name: String,
    /// The `.ko` file inside the initramfs.
    pub path: PathBuf,
}

/// A malformed line of the list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file} line {line}: {problem}")]
pub struct ModuleListError {
    /// The list file.
    pub file: &'static str,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

/// A module list that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModulesError {
    /// The list exists but cannot be read.
    #[error("cannot read {file}")]
    ReadList {
        /// The list file.
        file: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The list is malformed.
    #[error(transparent)]
    List(#[from] ModuleListError),
    /// A listed module file cannot be opened.
    #[error("cannot open module {name} at {}", path.display())]
    Open {
        /// Module name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `finit_module` failed for a listed module.
    #[error("cannot load module {name} from {}", path.display())]
    Load {
        /// Module name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// The errno from `finit_module`.
        #[source]
        source: io::Error,
    },
}

/// Parses the text of the list `file` (named in errors).
///
/// # Errors
///
/// The first malformed line: not exactly two fields, or a relative path.
pub fn parse_list(file: &'static str, text: &str) -> Result<Vec<ModuleEntry>, ModuleListError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let bad = |problem: String| ModuleListError {
            file,
            line: i + 1,
            problem,
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, path] = fields[..] else {
            return Err(bad(format!(
                "expected `<name> <absolute path>`, got {line:?}"
            )));
        };
        if !path.starts_with('/') {
            return Err(bad(format!("module path {path:?} is not absolute")));
        }
        out.push(ModuleEntry {
            name: name.to_owned(),
            path: PathBuf::from(path),
        });
    }
    Ok(out)
}

/// A list that was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListLoaded {
    /// Modules in the list.
    pub modules: usize,
    /// Of those, already loaded.
    pub already: usize,
}

/// Loads the module list `file` in order, recording each module in `records`; `None` if there
/// is no such file.
///
/// # Errors
///
/// The list cannot be read or parsed, or a module does not load.
pub fn load_list<S: Files + ModuleLoader + Clock>(
    sys: &mut S,
    file: &'static str,
    records: &mut Vec<ModuleRecord>,
) -> Result<Option<ListLoaded>, ModulesError> {
    let text = match sys.read_file(Path::new(file)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ModulesError::ReadList { file, source }),
    };
    let list = parse_list(file, &text)?;
    let mut already = 0;
    for m in &list {
        let t0 = sys.now();
        let load = sys.load_module(&m.path).map_err(|e| match e {
            ModuleLoadError::Open(source) => ModulesError::Open {
                name: m.name.clone(),
                path: m.path.clone(),
                source,
            },
            ModuleLoadError::Init(source) => ModulesError::Load {
                name: m.name.clone(),
                path: m.path.clone(),
                source,
            },
        })?;
        let took = sys.now().saturating_sub(t0);
        if load == ModuleLoad::AlreadyLoaded {
            already += 1;
        }
        log::debug!(
            "module {}: {} in {:.1} ms",
            m.name,
            load.as_str(),
            took.as_secs_f64() * 1000.0
        );
        records.push(ModuleRecord {
            name: m.name.clone(),
            ms: ms(took),
            result: load,
        });
    }
    Ok(Some(ListLoaded {
        modules: list.len(),
        already,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_in_order_with_comments() {
        let l = parse_list(
            MODULES_LOAD,
            "# generated\n\nvirtio_blk /lib/modules/x/virtio_blk.ko\n  squashfs\t/lib/modules/x/squashfs.ko # fs\n",
        )
        .unwrap();
        assert_eq!(
            l,
            [
                ModuleEntry {
                    name: "virtio_blk".into(),
                    path: "/lib/modules/x/virtio_blk.ko".into()
                },
                ModuleEntry {
                    name: "squashfs".into(),
                    path: "/lib/modules/x/squashfs.ko".into()
                },
            ]
        );
        assert!(parse_list(MODULES_LOAD, "").unwrap().is_empty());
    }

    #[test]
    fn rejects_malformed_lines() {
        let e = parse_list(MODULES_LOAD, "a /a.ko\nb\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(
            e.to_string(),
            "/etc/atomix/modules.load line 2: expected `<name> <absolute path>`, got \"b\""
        );
        let e = parse_list(MODULES_REPART_LOAD, "a lib/a.ko").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/atomix/modules-repart.load line 1: module path \"lib/a.ko\" is not absolute"
        );
        assert!(parse_list(MODULES_LOAD, "a /a.ko extra").is_err());
    }
}
