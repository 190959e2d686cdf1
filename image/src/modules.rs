//! Kernel module index and load-order closure, computed from the modules' own `.modinfo`.
//!
//! The initramfs has no modprobe: `/init` loads a fixed list with `finit_module`, so everything
//! modprobe would do at run time is done here at build time — hard dependencies (`depends=`),
//! soft dependencies (`softdep=pre: … post: …`) and name/alias resolution — on an unpacked
//! kernel package (`<root>/lib/modules/<version>/kernel/**/*.ko`, no `modules.dep` needed).
//!
//! Name resolution follows kmod's lookup order: a module of that name (with `-` read as `_`),
//! then modules whose `alias=` equals it exactly (all of them, as modprobe loads every match),
//! then a built-in module of that name, then a built-in alias (from `modules.builtin.modinfo`).
//! So f2fs's `softdep pre: crc32` resolves to `crc32_generic` (alias `crc32`) although
//! `lib/crc32` is built in, which is what the kernel needs (research P14).
//!
//! Must not: load modules, write into the kernel package, or know the initramfs layout.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection};

/// A failure to index a kernel package or to compute a module closure.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// Neither `<root>/lib/modules` nor `<root>/usr/lib/modules` can be read.
    #[error("cannot read the module directory {path}")]
    ModulesDir {
        /// The directory tried first.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The module directory holds no kernel version directory.
    #[error("no kernel version directory in {path}")]
    NoVersion {
        /// The `lib/modules` directory.
        path: PathBuf,
    },
    /// The module directory holds several versions and none was named.
    #[error("several kernel versions in {path} ({found}); name one")]
    AmbiguousVersion {
        /// The `lib/modules` directory.
        path: PathBuf,
        /// The versions found, comma separated.
        found: String,
    },
    /// The named version is not there.
    #[error("kernel version `{version}` not found in {path} (found: {found})")]
    VersionNotFound {
        /// The version asked for.
        version: String,
        /// The `lib/modules` directory.
        path: PathBuf,
        /// The versions found, comma separated (may be empty).
        found: String,
    },
    /// A directory of the module tree cannot be listed.
    #[error("cannot list {path}")]
    ListDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A module file cannot be read.
    #[error("cannot read module {path}")]
    ReadModule {
        /// The `.ko` file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A module file is not a parsable ELF object.
    #[error("cannot parse module {path} as ELF")]
    ParseModule {
        /// The `.ko` file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: object::Error,
    },
    /// A module has no `.modinfo` section.
    #[error("module {path} has no .modinfo section")]
    NoModinfo {
        /// The `.ko` file.
        path: PathBuf,
    },
    /// `modules.builtin` (or `modules.builtin.modinfo`) cannot be read.
    #[error("cannot read {path}")]
    ReadBuiltin {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A wanted name is neither a module, a module alias, nor built in.
    #[error("`{name}` is neither a module nor built into kernel {version}")]
    NotFound {
        /// The wanted name.
        name: String,
        /// The kernel version searched.
        version: String,
    },
    /// A module's `depends=` names something that is neither a module nor built in.
    #[error("module `{wanted_by}` depends on `{name}`, which is neither a module nor built in")]
    MissingDependency {
        /// The dependency.
        name: String,
        /// The module whose `depends=` names it.
        wanted_by: String,
    },
    /// Hard dependencies form a cycle (the kernel could not load these either).
    #[error("dependency cycle: {cycle}")]
    DependencyCycle {
        /// The modules of the cycle, ` -> ` separated.
        cycle: String,
    },
}

/// One loadable module of the kernel package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Module name (`name=` of `.modinfo`, else the file stem with `-` as `_`).
    pub name: String,
    /// Absolute path of the `.ko` on the host.
    pub path: PathBuf,
    /// Path relative to `lib/modules/<version>/`, e.g. `kernel/fs/f2fs/f2fs.ko`.
    pub relative_path: PathBuf,
    /// File size in bytes.
    pub size: u64,
    /// Hard dependencies (`depends=`), module names.
    pub depends: Vec<String>,
    /// Soft dependencies to load before it (`softdep=pre:`), names or aliases.
    pub softdep_pre: Vec<String>,
    /// Soft dependencies to load after it (`softdep=post:`), names or aliases.
    pub softdep_post: Vec<String>,
    /// `alias=` values.
    pub aliases: Vec<String>,
}

/// What a name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved<'a> {
    /// Loadable modules (one for a name, possibly several for an alias), sorted by name.
    Modules(Vec<&'a Module>),
    /// Built into the kernel image: nothing to load.
    Builtin(String),
}

/// The modules of one kernel version of an unpacked kernel package.
#[derive(Debug, Clone)]
pub struct ModuleIndex {
    version: String,
    dir: PathBuf,
    modules: BTreeMap<String, Module>,
    aliases: BTreeMap<String, BTreeSet<String>>,
    builtin: BTreeSet<String>,
    builtin_aliases: BTreeMap<String, String>,
}

/// Module names and exact aliases compare with `-` read as `_`, as kmod does.
fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

impl ModuleIndex {
    /// Index `<root>/lib/modules/<version>` (or `<root>/usr/lib/modules/<version>`). Without
    /// `version`, the directory must hold exactly one version.
    pub fn open(root: &Path, version: Option<&str>) -> Result<Self, ModuleError> {
        let root = std::path::absolute(root).map_err(|source| ModuleError::ModulesDir {
            path: root.to_path_buf(),
            source,
        })?;
        let (base, found) = list_versions(&root)?;
        let version = match version {
            Some(v) if found.iter().any(|f| f == v) => v.to_owned(),
            Some(v) => {
                return Err(ModuleError::VersionNotFound {
                    version: v.to_owned(),
                    path: base,
                    found: found.join(", "),
                });
            }
            None => match found.as_slice() {
                [one] => one.clone(),
                [] => return Err(ModuleError::NoVersion { path: base }),
                _ => {
                    return Err(ModuleError::AmbiguousVersion {
                        path: base,
                        found: found.join(", "),
                    });
                }
            },
        };
        let dir = base.join(&version);
        let mut index = Self {
            version,
            dir,
            modules: BTreeMap::new(),
            aliases: BTreeMap::new(),
            builtin: BTreeSet::new(),
            builtin_aliases: BTreeMap::new(),
        };
        let mut files = Vec::new();
        walk_ko(&index.dir.join("kernel"), &mut files)?;
        for path in files {
            let module = read_module(&index.dir, path)?;
            index.add(module);
        }
        index.read_builtin()?;
        log::debug!(
            "indexed {} modules and {} built-in names of kernel {}",
            index.modules.len(),
            index.builtin.len(),
            index.version
        );
        Ok(index)
    }

    fn add(&mut self, module: Module) {
        if let Some(first) = self.modules.get(&module.name) {
            log::warn!(
                "module `{}` found twice: keeping {}, ignoring {}",
                module.name,
                first.path.display(),
                module.path.display()
            );
            return;
        }
        for alias in &module.aliases {
            self.aliases
                .entry(normalize(alias))
                .or_default()
                .insert(module.name.clone());
        }
        self.modules.insert(module.name.clone(), module);
    }

    fn read_builtin(&mut self) -> Result<(), ModuleError> {
        let path = self.dir.join("modules.builtin");
        let text = fs::read_to_string(&path)
            .map_err(|source| ModuleError::ReadBuiltin { path, source })?;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            self.builtin.insert(module_name_from_path(Path::new(line)));
        }
        // Aliases of built-in code (e.g. `crypto-crc32c`); absent before Linux 5.2.
        let path = self.dir.join("modules.builtin.modinfo");
        match fs::read(&path) {
            Ok(bytes) => {
                for record in bytes.split(|b| *b == 0) {
                    let Ok(record) = std::str::from_utf8(record) else {
                        continue;
                    };
                    let Some((module, rest)) = record.split_once('.') else {
                        continue;
                    };
                    if let Some(alias) = rest.strip_prefix("alias=") {
                        let module = normalize(module);
                        self.builtin_aliases
                            .entry(normalize(alias))
                            .or_insert_with(|| module.clone());
                        self.builtin.insert(module);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(ModuleError::ReadBuiltin { path, source }),
        }
        Ok(())
    }

    /// The kernel version indexed.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The `lib/modules/<version>` directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// All loadable modules, sorted by name.
    pub fn modules(&self) -> impl Iterator<Item = &Module> {
        self.modules.values()
    }

    /// The loadable module of this name (`-` read as `_`).
    pub fn module(&self, name: &str) -> Option<&Module> {
        self.modules.get(&normalize(name))
    }

    /// Whether `name` is built into the kernel image (by name or built-in alias).
    pub fn is_builtin(&self, name: &str) -> bool {
        let name = normalize(name);
        self.builtin.contains(&name) || self.builtin_aliases.contains_key(&name)
    }

    /// Resolve a module name or alias in kmod's order (see the module docs); `None` when
    /// nothing matches.
    pub fn resolve(&self, name: &str) -> Option<Resolved<'_>> {
        let key = normalize(name);
        if let Some(m) = self.modules.get(&key) {
            return Some(Resolved::Modules(vec![m]));
        }
        if let Some(names) = self.aliases.get(&key) {
            let found: Vec<&Module> = names.iter().filter_map(|n| self.modules.get(n)).collect();
            if !found.is_empty() {
                return Some(Resolved::Modules(found));
            }
        }
        if self.builtin.contains(&key) {
            return Some(Resolved::Builtin(key));
        }
        self.builtin_aliases
            .get(&key)
            .map(|m| Resolved::Builtin(m.clone()))
    }

    /// The wanted modules plus everything they need, in a load order: each module comes after
    /// its `depends=` and `softdep pre:` modules, and its `softdep post:` modules follow it
    /// (unless something earlier already needed them). The order is deterministic: the
    /// wanted list in order, dependencies depth-first in their `.modinfo` order; no duplicates.
    /// Built-in names are satisfied and skipped. A soft dependency that resolves to nothing
    /// is skipped with a warning, as modprobe does; a soft-dependency cycle is broken where it
    /// closes.
    pub fn closure(&self, wanted: &[String]) -> Result<Vec<Module>, ModuleError> {
        let mut walk = Walk::default();
        for name in wanted {
            match self.resolve(name) {
                None => {
                    return Err(ModuleError::NotFound {
                        name: name.clone(),
                        version: self.version.clone(),
                    });
                }
                Some(Resolved::Builtin(b)) => {
                    log::info!("`{name}` is built into the kernel (`{b}`): nothing to load");
                }
                Some(Resolved::Modules(found)) => {
                    for m in found {
                        self.visit(m, &mut walk)?;
                    }
                }
            }
        }
        Ok(walk.order.into_iter().cloned().collect())
    }

    fn visit<'a>(&'a self, m: &'a Module, walk: &mut Walk<'a>) -> Result<(), ModuleError> {
        if walk.done.contains(m.name.as_str()) {
            return Ok(());
        }
        walk.stack.push(m.name.as_str());
        for dep in &m.depends {
            if let Some(d) = self.modules.get(&normalize(dep)) {
                if let Some(pos) = walk.stack.iter().position(|s| *s == d.name) {
                    let mut cycle = walk.stack[pos..].to_vec();
                    cycle.push(d.name.as_str());
                    return Err(ModuleError::DependencyCycle {
                        cycle: cycle.join(" -> "),
                    });
                }
                self.visit(d, walk)?;
            } else if !self.is_builtin(dep) {
                return Err(ModuleError::MissingDependency {
                    name: dep.clone(),
                    wanted_by: m.name.clone(),
                });
            }
        }
        for soft in &m.softdep_pre {
            self.visit_soft(m, soft, walk)?;
        }
        walk.stack.pop();
        walk.done.insert(m.name.as_str());
        walk.order.push(m);
        for soft in &m.softdep_post {
            self.visit_soft(m, soft, walk)?;
        }
        Ok(())
    }

    fn visit_soft<'a>(
        &'a self,
        m: &'a Module,
        soft: &str,
        walk: &mut Walk<'a>,
    ) -> Result<(), ModuleError> {
        match self.resolve(soft) {
            None => log::warn!(
                "module `{}`: soft dependency `{soft}` not found, skipped",
                m.name
            ),
            Some(Resolved::Builtin(_)) => {}
            Some(Resolved::Modules(found)) => {
                for d in found {
                    if walk.stack.contains(&d.name.as_str()) {
                        log::debug!("soft dependency cycle {} -> {} broken", m.name, d.name);
                        continue;
                    }
                    self.visit(d, walk)?;
                }
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Walk<'a> {
    order: Vec<&'a Module>,
    done: HashSet<&'a str>,
    stack: Vec<&'a str>,
}

/// `<root>/lib/modules` (or `<root>/usr/lib/modules`) and its version directories, sorted.
fn list_versions(root: &Path) -> Result<(PathBuf, Vec<String>), ModuleError> {
    let base = root.join("lib/modules");
    let entries = match fs::read_dir(&base) {
        Ok(entries) => (base, entries),
        Err(first) => {
            let usr = root.join("usr/lib/modules");
            match fs::read_dir(&usr) {
                Ok(entries) => (usr, entries),
                Err(_) => {
                    return Err(ModuleError::ModulesDir {
                        path: base,
                        source: first,
                    });
                }
            }
        }
    };
    let (base, entries) = entries;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ModuleError::ListDir {
            path: base.clone(),
            source,
        })?;
        if entry.path().is_dir()
            && let Some(name) = entry.file_name().to_str()
        {
            found.push(name.to_owned());
        }
    }
    found.sort();
    Ok((base, found))
}

/// All `*.ko` files under `dir`, sorted by path.
fn walk_ko(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ModuleError> {
    let list_err = |source| ModuleError::ListDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = fs::read_dir(dir)
        .map_err(list_err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(list_err)?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk_ko(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "ko") {
            out.push(path);
        }
    }
    Ok(())
}

/// The name a module file has without `name=`: the stem, `-` as `_`.
fn module_name_from_path(path: &Path) -> String {
    let stem = path
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default();
    normalize(stem.strip_suffix(".ko").unwrap_or(stem))
}

fn read_module(version_dir: &Path, path: PathBuf) -> Result<Module, ModuleError> {
    let file = fs::File::open(&path).map_err(|source| ModuleError::ReadModule {
        path: path.clone(),
        source,
    })?;
    let size = file
        .metadata()
        .map_err(|source| ModuleError::ReadModule {
            path: path.clone(),
            source,
        })?
        .len();
    // Reads only the headers and the `.modinfo` section, not the whole module.
    let cache = object::ReadCache::new(file);
    let elf = object::File::parse(&cache).map_err(|source| ModuleError::ParseModule {
        path: path.clone(),
        source,
    })?;
    let Some(section) = elf.section_by_name(".modinfo") else {
        return Err(ModuleError::NoModinfo { path });
    };
    let data = section.data().map_err(|source| ModuleError::ParseModule {
        path: path.clone(),
        source,
    })?;
    let info = Modinfo::parse(data);
    let relative_path = path
        .strip_prefix(version_dir)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.clone());
    Ok(Module {
        name: info
            .name
            .map(|n| normalize(&n))
            .unwrap_or_else(|| module_name_from_path(&path)),
        path,
        relative_path,
        size,
        depends: info.depends,
        softdep_pre: info.softdep_pre,
        softdep_post: info.softdep_post,
        aliases: info.aliases,
    })
}

/// The fields of a `.modinfo` section this module uses.
#[derive(Debug, Default, PartialEq, Eq)]
struct Modinfo {
    name: Option<String>,
    depends: Vec<String>,
    softdep_pre: Vec<String>,
    softdep_post: Vec<String>,
    aliases: Vec<String>,
}

impl Modinfo {
    /// Parse NUL-separated `key=value` records (padding NULs between them are skipped).
    fn parse(data: &[u8]) -> Self {
        let mut info = Self::default();
        for record in data.split(|b| *b == 0).filter(|r| !r.is_empty()) {
            let Ok(record) = std::str::from_utf8(record) else {
                continue;
            };
            let Some((key, value)) = record.split_once('=') else {
                continue;
            };
            match key {
                "name" => info.name = Some(value.to_owned()),
                "depends" => info.depends.extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|d| !d.is_empty())
                        .map(str::to_owned),
                ),
                "softdep" => info.parse_softdep(value),
                "alias" => info.aliases.push(value.to_owned()),
                _ => {}
            }
        }
        info
    }

    /// `pre: a b post: c`; words before the first `pre:`/`post:` are ignored, as kmod does.
    fn parse_softdep(&mut self, value: &str) {
        #[derive(Clone, Copy)]
        enum Mode {
            None,
            Pre,
            Post,
        }
        let mut mode = Mode::None;
        for word in value.split_whitespace() {
            match (word, mode) {
                ("pre:", _) => mode = Mode::Pre,
                ("post:", _) => mode = Mode::Post,
                (_, Mode::Pre) => self.softdep_pre.push(word.to_owned()),
                (_, Mode::Post) => self.softdep_post.push(word.to_owned()),
                (_, Mode::None) => {
                    log::debug!("softdep `{value}`: `{word}` has no pre:/post:, ignored");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modinfo_fields() {
        let data = b"\0\0alias=fs-f2fs\0softdep=pre: crc32\0license=GPL\0depends=zstd_compress,lz4_compress\0name=f2fs\0vermagic=6.1.0 SMP\0\0\0";
        let info = Modinfo::parse(data);
        assert_eq!(info.name.as_deref(), Some("f2fs"));
        assert_eq!(info.depends, ["zstd_compress", "lz4_compress"]);
        assert_eq!(info.softdep_pre, ["crc32"]);
        assert!(info.softdep_post.is_empty());
        assert_eq!(info.aliases, ["fs-f2fs"]);
    }

    #[test]
    fn empty_depends_and_softdep_modes() {
        let mut info = Modinfo::parse(b"depends=\0softdep=gcm pre: a b post: c\0softdep=post: d\0");
        assert!(info.depends.is_empty());
        assert_eq!(info.softdep_pre, ["a", "b"]);
        assert_eq!(info.softdep_post, ["c", "d"]);
        info.parse_softdep("pre: e");
        assert_eq!(info.softdep_pre, ["a", "b", "e"]);
    }

    #[test]
    fn name_from_path() {
        assert_eq!(
            module_name_from_path(Path::new("kernel/fs/nls/nls_iso8859-1.ko")),
            "nls_iso8859_1"
        );
        assert_eq!(
            module_name_from_path(Path::new("kernel/lib/crc32.ko")),
            "crc32"
        );
    }
}
