//! The typed partial updates of the provisioning API (spec 6.8) as edits of a config.toml's
//! text: a user put or deleted, the `[network]` section deep-merged, a container, container
//! network or container volume put or deleted.
//!
//! The text is edited through [`toml_edit::DocumentMut`], so everything the edit does not touch
//! keeps its comments, its order and its characters: the original parsed the config, changed
//! the data and wrote it out again in a canonical form that lost every comment and the order,
//! escaped non-ASCII as `\uXXXX` and refused floats (spec 9.13). A value the edit replaces keeps
//! the comment at the end of its line and the comments above its key.
//!
//! [`Edit`]'s constructors check the request as the original did (a JSON object, the allowed
//! and the required keys, a valid name), keeping the order of the JSON object's keys for what
//! they add; [`Edit::apply`] makes the new text. Whether the result is a valid config is
//! [`crate::validate`]'s to say.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, TableLike, Value};

use crate::check::join;
use crate::containers::UnitName;
use crate::users::UserName;

/// The keys of a user's entry (`PUT /api/config/users/{name}`).
pub const USER_KEYS: &[&str] = &crate::users::KEYS;
/// The keys `PATCH /api/config/network` may change.
pub const NETWORK_KEYS: &[&str] = &crate::network::KEYS;

/// A kind of Quadlet resource under `[containers]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    /// `[containers.container.<name>]`.
    Container,
    /// `[containers.network.<name>]`.
    Network,
    /// `[containers.volume.<name>]`.
    Volume,
}

impl UnitKind {
    /// Its table under `[containers]`.
    pub fn table(self) -> &'static str {
        match self {
            Self::Container => "container",
            Self::Network => "network",
            Self::Volume => "volume",
        }
    }

    /// The keys of its entry.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Self::Container => &["privileged", "Unit", "Container", "Install"],
            Self::Network => &["Network"],
            Self::Volume => &["Volume"],
        }
    }

    /// The keys its entry must have.
    pub fn required(self) -> &'static [&'static str] {
        match self {
            Self::Container => &["privileged", "Container"],
            Self::Network => &["Network"],
            Self::Volume => &["Volume"],
        }
    }
}

/// Why a partial update cannot be made. Each names what it is about.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The request body is not JSON.
    #[error("the request body is not JSON")]
    Json(#[source] serde_json::Error),
    /// The request body is JSON but not an object.
    #[error("the request body must be a JSON object")]
    NotAnObject,
    /// Keys the entry does not have.
    #[error(
        "unsupported partial request keys: {} (allowed: {})",
        .keys.join(", "),
        .allowed.join(", ")
    )]
    Unsupported {
        /// The TOML path of the entry.
        path: String,
        /// The keys refused, sorted.
        keys: Vec<String>,
        /// The keys allowed.
        allowed: &'static [&'static str],
    },
    /// A key the entry must have.
    #[error("{what} payload missing required key: {key}")]
    Missing {
        /// The TOML path of the entry.
        path: String,
        /// `user`, `container`, `network` or `volume`.
        what: &'static str,
        /// The key.
        key: &'static str,
    },
    /// The name in the route is not a valid user or unit name.
    #[error("{0}")]
    Name(String),
    /// A `null` where only `PATCH /api/config/network` may have one (it deletes the key there).
    #[error("{path}: null has no TOML form (only PATCH /api/config/network deletes a key with it)")]
    Null {
        /// Its TOML path.
        path: String,
    },
    /// The active config.toml is not TOML.
    #[error("the active config.toml cannot be edited")]
    Current(#[source] toml_edit::TomlError),
    /// The active config.toml has something else than a table where the edit goes.
    #[error("{path} is not a table in the active config.toml")]
    NotATable {
        /// Its TOML path.
        path: String,
    },
}

impl EditError {
    /// The TOML path it is about, if any.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Unsupported { path, .. }
            | Self::Missing { path, .. }
            | Self::Null { path }
            | Self::NotATable { path } => Some(path),
            Self::Json(_) | Self::NotAnObject | Self::Name(_) | Self::Current(_) => None,
        }
    }
}

/// A JSON value whose objects keep the order of their keys (a later duplicate replaces the
/// value in place, as JSON parsers commonly do).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    Object(Object),
}

type Object = Vec<(String, Json)>;

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        i64::try_from(v)
            .map(Json::Int)
            .map_err(|_| E::custom(format!("{v} is beyond TOML's 64-bit integers")))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut object: Object = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            match object.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = value,
                None => object.push((key, value)),
            }
        }
        Ok(Json::Object(object))
    }
}

/// The request body as a JSON object.
fn object(body: &[u8]) -> Result<Object, EditError> {
    match serde_json::from_slice(body).map_err(EditError::Json)? {
        Json::Object(object) => Ok(object),
        _ => Err(EditError::NotAnObject),
    }
}

/// `object`'s keys are among `allowed` and include `required`.
fn check_keys(
    object: &Object,
    path: &str,
    what: &'static str,
    allowed: &'static [&'static str],
    required: &'static [&'static str],
) -> Result<(), EditError> {
    let mut extra: Vec<String> = object
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| !allowed.contains(&k.as_str()))
        .collect();
    if !extra.is_empty() {
        extra.sort();
        return Err(EditError::Unsupported {
            path: path.to_owned(),
            keys: extra,
            allowed,
        });
    }
    match required
        .iter()
        .find(|key| !object.iter().any(|(k, _)| k == *key))
    {
        Some(key) => Err(EditError::Missing {
            path: path.to_owned(),
            what,
            key,
        }),
        None => Ok(()),
    }
}

/// How an object is applied to a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The table becomes the object: keys it lacks are removed (PUT).
    Replace,
    /// The object is deep-merged: tables merge, `null` deletes, scalars and arrays replace
    /// (PATCH).
    Merge,
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    /// The object applied to the table in the mode.
    Apply(Object, Mode),
    /// The table removed.
    Delete,
}

/// One partial update: where in the config, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    /// The keys from the document's root to the table it changes.
    at: Vec<String>,
    op: Op,
}

impl Edit {
    /// `PUT /api/config/users/{name}` with `body`: the user's entry replaced by the body
    /// (`isAdmin` required; `ssh_key`, `shell`).
    pub fn put_user(name: &str, body: &[u8]) -> Result<Self, EditError> {
        let name = UserName::new(name).map_err(EditError::Name)?;
        let entry = object(body)?;
        let at = vec!["users".to_owned(), name.as_str().to_owned()];
        check_keys(&entry, &dotted(&at), "user", USER_KEYS, &["isAdmin"])?;
        Ok(Self {
            at,
            op: Op::Apply(entry, Mode::Replace),
        })
    }

    /// `DELETE /api/config/users/{name}`: the user removed (no error if there is none).
    pub fn delete_user(name: &str) -> Result<Self, EditError> {
        let name = UserName::new(name).map_err(EditError::Name)?;
        Ok(Self {
            at: vec!["users".to_owned(), name.as_str().to_owned()],
            op: Op::Delete,
        })
    }

    /// `PATCH /api/config/network` with `body`: deep-merged into `[network]` (only the keys of
    /// [`NETWORK_KEYS`] at the top).
    pub fn patch_network(body: &[u8]) -> Result<Self, EditError> {
        let patch = object(body)?;
        let at = vec!["network".to_owned()];
        check_keys(&patch, &dotted(&at), "network", NETWORK_KEYS, &[])?;
        Ok(Self {
            at,
            op: Op::Apply(patch, Mode::Merge),
        })
    }

    /// `PUT /api/config/{containers,container-networks,container-volumes}/{name}` with `body`:
    /// the resource replaced by the body ([`UnitKind::keys`], [`UnitKind::required`]).
    pub fn put_unit(kind: UnitKind, name: &str, body: &[u8]) -> Result<Self, EditError> {
        let at = unit_path(kind, name)?;
        let entry = object(body)?;
        check_keys(
            &entry,
            &dotted(&at),
            kind.table(),
            kind.keys(),
            kind.required(),
        )?;
        Ok(Self {
            at,
            op: Op::Apply(entry, Mode::Replace),
        })
    }

    /// `DELETE /api/config/{containers,container-networks,container-volumes}/{name}`: the
    /// resource removed (no error if there is none).
    pub fn delete_unit(kind: UnitKind, name: &str) -> Result<Self, EditError> {
        Ok(Self {
            at: unit_path(kind, name)?,
            op: Op::Delete,
        })
    }

    /// The config text `toml` with the edit made.
    pub fn apply(&self, toml: &str) -> Result<String, EditError> {
        let mut doc: DocumentMut = toml.parse().map_err(EditError::Current)?;
        let Some((last, parents)) = self.at.split_last() else {
            return Ok(doc.to_string());
        };
        let mut item = doc.as_item_mut();
        let mut path = String::new();
        for key in parents {
            let inline = item.is_value();
            let table = table_like(item, &path)?;
            if table.get(key).is_none() {
                if self.op == Op::Delete {
                    return Ok(doc.to_string());
                }
                table.insert(key, empty_table(inline));
            }
            path = join(&path, key);
            item = table.get_mut(key).ok_or_else(|| not_a_table(&path))?;
        }
        let inline = item.is_value();
        let table = table_like(item, &path)?;
        let at = join(&path, last);
        match &self.op {
            Op::Delete => {
                table.remove(last);
            }
            Op::Apply(object, mode) => set_object(table, inline, last, object, *mode, &at)?,
        }
        Ok(doc.to_string())
    }
}

fn unit_path(kind: UnitKind, name: &str) -> Result<Vec<String>, EditError> {
    let name = UnitName::new(name).map_err(EditError::Name)?;
    Ok(vec![
        "containers".to_owned(),
        kind.table().to_owned(),
        name.as_str().to_owned(),
    ])
}

fn dotted(keys: &[String]) -> String {
    keys.iter()
        .fold(String::new(), |path, key| join(&path, key))
}

fn not_a_table(path: &str) -> EditError {
    EditError::NotATable {
        path: path.to_owned(),
    }
}

/// The table (or inline table) `item` is; `path` names it in the error.
fn table_like<'i>(item: &'i mut Item, path: &str) -> Result<&'i mut dyn TableLike, EditError> {
    item.as_table_like_mut().ok_or_else(|| not_a_table(path))
}

/// An empty table to fill: inline inside an inline table, else a standard table, implicit (no
/// header of its own unless it gets values; see [`set_object`]).
fn empty_table(inline: bool) -> Item {
    if inline {
        Item::Value(Value::InlineTable(InlineTable::new()))
    } else {
        let mut table = Table::new();
        table.set_implicit(true);
        Item::Table(table)
    }
}

/// Applies `object` at `table[key]` in `mode` (`inline`: `table` is an inline table). An
/// existing table is edited in place, so its comments, its order and the decor of the values
/// it keeps stay; anything else is replaced by a new table filled from `object`.
fn set_object(
    table: &mut dyn TableLike,
    inline: bool,
    key: &str,
    object: &Object,
    mode: Mode,
    path: &str,
) -> Result<(), EditError> {
    let fresh = !table.get(key).is_some_and(Item::is_table_like);
    if fresh {
        set(table, inline, key, empty_table(inline));
    }
    let item = table.get_mut(key).ok_or_else(|| not_a_table(path))?;
    apply_object(item, object, mode, path)?;
    // A new standard table left empty needs its header, or it would vanish from the text.
    if fresh
        && let Some(new) = item.as_table_mut()
        && new.is_empty()
    {
        new.set_implicit(false);
    }
    Ok(())
}

/// Applies `object` to the table-like `item` in `mode`.
fn apply_object(item: &mut Item, object: &Object, mode: Mode, path: &str) -> Result<(), EditError> {
    let inline = item.is_value();
    let table = table_like(item, path)?;
    if mode == Mode::Replace {
        let gone: Vec<String> = table
            .iter()
            .map(|(k, _)| k.to_owned())
            .filter(|k| !object.iter().any(|(o, _)| o == k))
            .collect();
        for key in gone {
            table.remove(&key);
        }
    }
    for (key, value) in object {
        let child = join(path, key);
        match value {
            Json::Null if mode == Mode::Merge => {
                table.remove(key);
            }
            Json::Object(inner) => set_object(table, inline, key, inner, mode, &child)?,
            _ => set(table, inline, key, Item::Value(value_of(value, &child)?)),
        }
    }
    Ok(())
}

/// Sets `table[key]` to `item` (`inline`: `table` is an inline table). An existing entry keeps
/// its key (and the comments above it) and, when both are values, the value's decor (the
/// comment after it). A new last entry of an inline table takes over the space before its `}`.
fn set(table: &mut dyn TableLike, inline: bool, key: &str, mut item: Item) {
    match table.get_mut(key) {
        Some(existing) => {
            if let (Some(old), Some(new)) = (existing.as_value(), item.as_value_mut()) {
                *new.decor_mut() = old.decor().clone();
            }
            *existing = item;
        }
        None => {
            if inline
                && let Some(new) = item.as_value_mut()
                && let Some(last) = table.iter_mut().last().and_then(|(_, v)| v.as_value_mut())
                && let Some(suffix) = last.decor().suffix().cloned()
            {
                last.decor_mut().set_suffix("");
                new.decor_mut().set_suffix(suffix);
            }
            table.insert(key, item);
        }
    }
}

/// The TOML value of `json` (objects inline); `path` names it in the error.
fn value_of(json: &Json, path: &str) -> Result<Value, EditError> {
    Ok(match json {
        Json::Null => {
            return Err(EditError::Null {
                path: path.to_owned(),
            });
        }
        Json::Bool(b) => Value::from(*b),
        Json::Int(i) => Value::from(*i),
        Json::Float(f) => Value::from(*f),
        Json::Str(s) => Value::from(s.as_str()),
        Json::Array(items) => {
            let mut array = Array::new();
            for (i, item) in items.iter().enumerate() {
                array.push(value_of(item, &format!("{path}[{i}]"))?);
            }
            Value::Array(array)
        }
        Json::Object(object) => {
            let mut table = InlineTable::new();
            for (key, value) in object {
                table.insert(key, value_of(value, &join(path, key))?);
            }
            Value::InlineTable(table)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"# Top comment.
version = 1

# The admin.
[users.admin]
isAdmin = true # always
ssh_key = "ssh-ed25519 AAAA admin"
shell = "bash"

[network]
dns_servers = ["1.1.1.1"] # Cloudflare
# The router: Ünïcode 😀
default_gateway = "192.168.1.1"

[network.firewall.inbound.wan]
tcp = [22]

[containers.container.web]
privileged = false

[containers.container.web.Container]
Image = "docker.io/library/nginx:1.27" # pinned
PublishPort = "8081:80"
"#;

    fn edit(edit: Result<Edit, EditError>) -> String {
        edit.unwrap().apply(CONFIG).unwrap()
    }

    #[test]
    fn a_new_user_goes_after_the_others_and_nothing_else_changes() {
        let got = edit(Edit::put_user(
            "bob",
            br#"{"isAdmin": false, "shell": "sh", "ssh_key": "ssh-ed25519 BBBB bob"}"#,
        ));
        let want = CONFIG.replace(
            "shell = \"bash\"\n",
            "shell = \"bash\"\n\n[users.bob]\nisAdmin = false\nshell = \"sh\"\n\
             ssh_key = \"ssh-ed25519 BBBB bob\"\n",
        );
        assert_eq!(got, want);
    }

    #[test]
    fn a_user_is_replaced_in_place_keeping_its_comments() {
        let got = edit(Edit::put_user(
            "admin",
            br#"{"ssh_key": "ssh-ed25519 CCCC new", "isAdmin": true}"#,
        ));
        let want = CONFIG
            .replace("AAAA admin", "CCCC new")
            .replace("shell = \"bash\"\n", "");
        assert_eq!(got, want);
    }

    #[test]
    fn deleting_a_user_removes_its_table_and_a_missing_one_changes_nothing() {
        let got = edit(Edit::delete_user("admin"));
        let start = CONFIG.find("# The admin.").unwrap();
        let end = CONFIG.find("[network]").unwrap();
        assert_eq!(got, format!("{}{}", &CONFIG[..start], &CONFIG[end..]));
        assert_eq!(edit(Edit::delete_user("nobody-here")), CONFIG);
        assert_eq!(
            edit(Edit::delete_unit(UnitKind::Volume, "data")),
            CONFIG,
            "no [containers.volume] at all"
        );
    }

    #[test]
    fn the_network_is_deep_merged_and_null_deletes() {
        let got = edit(Edit::patch_network(
            br#"{"dns_servers": ["9.9.9.9", "149.112.112.112"], "default_gateway": null,
                 "firewall": {"inbound": {"wan": {"udp": [53]}, "lan": {"tcp": [80]}}},
                 "ntp": {"servers": ["time.example.com"]}}"#,
        ));
        let want = CONFIG
            .replace(
                "[\"1.1.1.1\"] # Cloudflare\n# The router: Ünïcode 😀\ndefault_gateway = \"192.168.1.1\"\n",
                "[\"9.9.9.9\", \"149.112.112.112\"] # Cloudflare\n",
            )
            .replace(
                "tcp = [22]\n",
                "tcp = [22]\nudp = [53]\n\n[network.firewall.inbound.lan]\ntcp = [80]\n\n\
                 [network.ntp]\nservers = [\"time.example.com\"]\n",
            );
        assert_eq!(got, want);
        // Nulls inside a table the patch adds delete nothing; a scalar replaces a table.
        let got = edit(Edit::patch_network(
            br#"{"dnsmasq": {"enable": null}, "firewall": "none"}"#,
        ));
        assert!(got.contains("[network.dnsmasq]\n"), "{got}");
        assert!(got.contains("firewall = \"none\""), "{got}");
        assert!(!got.contains("inbound"), "{got}");
    }

    #[test]
    fn units_are_put_with_their_sections_in_the_bodys_order() {
        let got = edit(Edit::put_unit(
            UnitKind::Container,
            "app",
            r#"{"privileged": false, "Unit": {"Description": "Ünïcode 😀 app"},
                "Container": {"Image": "localhost/app:1", "Ulimit": 1024, "Weight": 0.5,
                              "Environment": ["A=1", "B=2"]}}"#
                .as_bytes(),
        ));
        let want = format!(
            "{CONFIG}\n[containers.container.app]\nprivileged = false\n\n\
             [containers.container.app.Unit]\nDescription = \"Ünïcode 😀 app\"\n\n\
             [containers.container.app.Container]\nImage = \"localhost/app:1\"\nUlimit = 1024\n\
             Weight = 0.5\nEnvironment = [\"A=1\", \"B=2\"]\n"
        );
        assert_eq!(got, want);
        // Replacing web keeps the comment of the value it keeps; Install goes.
        let got = edit(Edit::put_unit(
            UnitKind::Container,
            "web",
            br#"{"privileged": true, "Container": {"Image": "docker.io/library/nginx:1.28"}}"#,
        ));
        let want = CONFIG
            .replace("privileged = false", "privileged = true")
            .replace(
                "nginx:1.27\" # pinned\nPublishPort = \"8081:80\"\n",
                "nginx:1.28\" # pinned\n",
            );
        assert_eq!(got, want);
        let got = edit(Edit::put_unit(
            UnitKind::Network,
            "appnet",
            br#"{"Network": {"Subnet": "10.89.0.0/24"}}"#,
        ));
        assert_eq!(
            got,
            format!("{CONFIG}\n[containers.network.appnet.Network]\nSubnet = \"10.89.0.0/24\"\n")
        );
        let start = CONFIG.find("[containers.container.web]").unwrap();
        assert_eq!(
            edit(Edit::delete_unit(UnitKind::Container, "web")),
            CONFIG[..start].trim_end_matches('\n').to_owned() + "\n"
        );
    }

    #[test]
    fn edits_of_the_full_fixture_stay_valid_and_keep_the_rest() {
        const FULL: &str = include_str!("../tests/fixtures/full.toml");
        let edits = [
            Edit::put_user("viewer", br#"{"isAdmin": false, "shell": "bash"}"#),
            Edit::delete_user("ops"),
            Edit::patch_network(
                br#"{"ntp": {"servers": ["pool.ntp.org"]},
                     "firewall": {"inbound": {"wan": {"tcp": [22]}}}}"#,
            ),
            Edit::put_unit(
                UnitKind::Volume,
                "caddy-data",
                br#"{"Volume": {"Label": "app=caddy"}}"#,
            ),
            Edit::put_unit(
                UnitKind::Container,
                "metrics",
                br#"{"privileged": false, "Container": {"Image": "docker.io/prom/node-exporter:v1.9.0"}}"#,
            ),
        ];
        for edit in edits {
            let edit = edit.unwrap();
            let text = edit.apply(FULL).unwrap();
            if let Err(report) = crate::validate::validate(&text, "/data/config") {
                panic!("{edit:?}: {}", report.render_text("config.toml", &text));
            }
            let changed = FULL
                .lines()
                .zip(text.lines())
                .filter(|(a, b)| a != b)
                .count();
            assert!(changed > 0, "{edit:?}");
            assert!(text.starts_with("# A realistic AtomixOS config.toml v1"));
            assert!(text.contains("[containers.build.myapp-image.Build]\n"));
        }
    }

    #[test]
    fn inline_tables_stay_inline() {
        let config = "version = 1\nusers = { admin = { isAdmin = true, ssh_key = \"k\" } }\n";
        let got = Edit::put_user("bob", br#"{"isAdmin": false, "shell": "sh"}"#)
            .unwrap()
            .apply(config)
            .unwrap();
        assert_eq!(
            got,
            "version = 1\nusers = { admin = { isAdmin = true, ssh_key = \"k\" }, bob = { isAdmin = false, shell = \"sh\" } }\n"
        );
    }

    #[test]
    fn requests_are_checked_as_the_original_does_and_say_what_is_wrong() {
        let err = Edit::put_user("bob", br#"{"isAdmin": true, "shel": "sh", "a": 1}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported partial request keys: a, shel (allowed: isAdmin, ssh_key, shell)"
        );
        assert_eq!(err.path(), Some("users.bob"));
        let err = Edit::put_user("bob", br#"{"shell": "sh"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "user payload missing required key: isAdmin"
        );
        let err = Edit::put_unit(UnitKind::Container, "web", br#"{"Container": {}}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "container payload missing required key: privileged"
        );
        assert!(matches!(
            Edit::put_user("Root", b"{}").unwrap_err(),
            EditError::Name(_)
        ));
        assert!(matches!(
            Edit::delete_user("root").unwrap_err(),
            EditError::Name(_)
        ));
        assert!(matches!(
            Edit::put_unit(UnitKind::Volume, "a.b", b"{}").unwrap_err(),
            EditError::Name(_)
        ));
        assert!(matches!(
            Edit::patch_network(b"[1]").unwrap_err(),
            EditError::NotAnObject
        ));
        assert!(matches!(
            Edit::patch_network(b"{nope").unwrap_err(),
            EditError::Json(_)
        ));
        let err = Edit::patch_network(br#"{"mtu": 1500}"#).unwrap_err();
        assert!(
            err.to_string().contains("keys: mtu (allowed: dns_servers"),
            "{err}"
        );
        // What the active config makes impossible.
        let put = Edit::put_user("bob", br#"{"isAdmin": true, "shell": null}"#).unwrap();
        let err = put.apply(CONFIG).unwrap_err();
        assert_eq!(err.path(), Some("users.bob.shell"));
        assert!(matches!(
            put.apply("users = 3\n").unwrap_err(),
            EditError::NotATable { path } if path == "users"
        ));
        assert!(matches!(
            put.apply("users = [\n").unwrap_err(),
            EditError::Current(_)
        ));
    }
}
