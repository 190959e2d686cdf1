//! The parsed TOML document as a plain tree with a byte span on every value and key, in
//! document order: what the validators walk. Built from a `toml_edit` document once.

use std::ops::Range;

use toml_edit::{Item, Table, Value};

use crate::diag::{Step, TomlPath};

/// A value's kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Str(String),
    Int(i64),
    Float,
    Bool(bool),
    Datetime,
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

/// A value with the byte range it occupies (for a table: its header, or its key when the
/// table is implicit or dotted).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub kind: Kind,
    pub span: Range<usize>,
}

/// A key of a table, with its span, and its value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_span: Range<usize>,
    pub node: Node,
}

impl Node {
    /// The name of this kind, for messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Str(_) => "a string",
            Kind::Int(_) => "an integer",
            Kind::Float => "a float",
            Kind::Bool(_) => "a boolean",
            Kind::Datetime => "a date-time",
            Kind::Array(_) => "an array",
            Kind::Table(_) => "a table",
        }
    }

    /// The entries when this is a table.
    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.kind {
            Kind::Table(e) => Some(e),
            _ => None,
        }
    }

    /// The entry `key` of this table.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries()?.iter().find(|e| e.key == key)
    }

    /// The value at `key` of this table.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.node)
    }

    /// The value at `path` under this node.
    pub fn at(&self, path: &TomlPath) -> Option<&Node> {
        path.steps()
            .iter()
            .try_fold(self, |node, step| match (step, &node.kind) {
                (Step::Key(key), _) => node.get(key),
                (Step::Index(i), Kind::Array(items)) => items.get(*i),
                (Step::Index(_), _) => None,
            })
    }
}

/// Parses `source` into the tree, or gives the syntax error's message and span.
pub(crate) fn parse(source: &str) -> Result<Node, (String, Range<usize>)> {
    let doc = toml_edit::Document::parse(source).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        (e.message().trim_end().to_owned(), span)
    })?;
    Ok(table(doc.as_table(), 0..0))
}

fn table(t: &Table, fallback: Range<usize>) -> Node {
    let span = t.span().unwrap_or(fallback);
    let mut entries = Vec::new();
    for (name, item) in t.iter() {
        let key_span = t.key(name).and_then(|k| k.span()).unwrap_or(span.clone());
        let node = match item {
            Item::None => continue,
            Item::Value(v) => value(v, key_span.clone()),
            Item::Table(t) => table(t, key_span.clone()),
            Item::ArrayOfTables(a) => Node {
                kind: Kind::Array(a.iter().map(|t| table(t, key_span.clone())).collect()),
                span: a.span().unwrap_or(key_span.clone()),
            },
        };
        entries.push(Entry {
            key: name.to_owned(),
            key_span,
            node,
        });
    }
    Node {
        kind: Kind::Table(entries),
        span,
    }
}

fn value(v: &Value, fallback: Range<usize>) -> Node {
    let span = v.span().unwrap_or(fallback);
    let kind = match v {
        Value::String(s) => Kind::Str(s.value().clone()),
        Value::Integer(i) => Kind::Int(*i.value()),
        Value::Float(_) => Kind::Float,
        Value::Boolean(b) => Kind::Bool(*b.value()),
        Value::Datetime(_) => Kind::Datetime,
        Value::Array(a) => Kind::Array(a.iter().map(|v| value(v, span.clone())).collect()),
        Value::InlineTable(t) => {
            let mut entries = Vec::new();
            for (name, v) in t.iter() {
                let key_span = t.key(name).and_then(|k| k.span()).unwrap_or(span.clone());
                entries.push(Entry {
                    key: name.to_owned(),
                    key_span: key_span.clone(),
                    node: value(v, key_span),
                });
            }
            Kind::Table(entries)
        }
    };
    Node { kind, span }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_spans_and_document_order() {
        let src = "version = 1\n[users.admin]\nisAdmin = true\n[users.b]\nshell = 'sh'\n";
        let root = parse(src).unwrap();
        let users = root.get("users").unwrap();
        let names: Vec<_> = users.entries().unwrap().iter().map(|e| &e.key).collect();
        assert_eq!(names, ["admin", "b"]);
        let admin = users.get("admin").unwrap();
        assert_eq!(&src[admin.span.clone()], "[users.admin]");
        let shell = users.get("b").unwrap().get("shell").unwrap();
        assert_eq!(&src[shell.span.clone()], "'sh'");
        assert_eq!(shell.kind, Kind::Str("sh".into()));
    }

    #[test]
    fn paths_find_values_and_array_elements() {
        let src = "[a.b]\nc = [1, \"two\"]\nd = { e = true }\n";
        let root = parse(src).unwrap();
        let span = |p: &TomlPath| root.at(p).map(|n| &src[n.span.clone()]);
        assert_eq!(
            span(&TomlPath::keys(["a", "b", "c"]).index(1)),
            Some("\"two\"")
        );
        assert_eq!(span(&TomlPath::keys(["a", "b", "d", "e"])), Some("true"));
        assert_eq!(span(&TomlPath::keys(["a", "b"])), Some("[a.b]"));
        assert_eq!(span(&TomlPath::keys(["a", "b", "c"]).index(2)), None);
        assert_eq!(span(&TomlPath::keys(["a", "b", "d"]).index(0)), None);
        assert_eq!(span(&TomlPath::keys(["a", "x"])), None);
    }

    #[test]
    fn a_syntax_error_has_a_span() {
        let (msg, span) = parse("a = \"open\n").unwrap_err();
        assert!(!msg.is_empty());
        assert!(span.start >= 4, "{span:?}");
    }
}
