//! The checker the section validators share: it collects every finding with its path and span,
//! and has the schema-level checks (types, unknown and missing keys, ranges, list lengths).

use std::ops::Range;

use crate::diag::{LineIndex, Report, Severity};
use crate::tree::{Kind, Node};

/// Collects findings for one source text.
#[derive(Debug)]
pub(crate) struct Checker<'s> {
    lines: LineIndex<'s>,
    pub report: Report,
}

/// `parent.key` (or `key` at the top).
pub(crate) fn join(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[index]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

impl<'s> Checker<'s> {
    /// A checker for `source`.
    pub fn new(source: &'s str) -> Self {
        Self {
            lines: LineIndex::new(source),
            report: Report::new(),
        }
    }

    /// Records an error.
    pub fn error(&mut self, path: &str, span: &Range<usize>, message: impl Into<String>) {
        self.report
            .push(&self.lines, Severity::Error, path, span.clone(), message);
    }

    /// Records a warning.
    pub fn warning(&mut self, path: &str, span: &Range<usize>, message: impl Into<String>) {
        self.report
            .push(&self.lines, Severity::Warning, path, span.clone(), message);
    }

    fn expected(&mut self, node: &Node, path: &str, what: &str) {
        let got = node.type_name();
        self.error(path, &node.span, format!("expected {what}, found {got}"));
    }

    /// `node` as a table: unknown keys are reported at their key, missing required ones at the
    /// table. Gives the table even when some keys are wrong, so its other keys get checked.
    pub fn table<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        allowed: &[&str],
        required: &[&str],
    ) -> Option<&'n Node> {
        let Some(entries) = node.entries() else {
            self.expected(node, path, "a table");
            return None;
        };
        for e in entries {
            if !allowed.contains(&e.key.as_str()) {
                let message = format!("unknown key `{}` (allowed: {})", e.key, allowed.join(", "));
                self.error(&join(path, &e.key), &e.key_span, message);
            }
        }
        for key in required {
            if node.get(key).is_none() {
                let message = format!("missing required key `{key}`");
                self.error(&join(path, key), &node.span, message);
            }
        }
        Some(node)
    }

    /// `node` as a table of any keys.
    pub fn any_table<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n Node> {
        if node.entries().is_none() {
            self.expected(node, path, "a table");
            return None;
        }
        Some(node)
    }

    /// `node` as a string.
    pub fn string<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n str> {
        match &node.kind {
            Kind::Str(s) => Some(s),
            _ => {
                self.expected(node, path, "a string");
                None
            }
        }
    }

    /// `node` as a string that is not blank, trimmed.
    pub fn text<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n str> {
        let s = self.string(node, path)?.trim();
        if s.is_empty() {
            self.error(path, &node.span, "must not be empty");
            return None;
        }
        Some(s)
    }

    /// `node` as a boolean.
    pub fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match node.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                self.expected(node, path, "a boolean");
                None
            }
        }
    }

    /// `node` as an integer from `min` to `max`.
    pub fn int(&mut self, node: &Node, path: &str, min: i64, max: i64) -> Option<i64> {
        match node.kind {
            Kind::Int(i) if (min..=max).contains(&i) => Some(i),
            Kind::Int(i) => {
                self.error(path, &node.span, format!("{i} is not in {min}..={max}"));
                None
            }
            _ => {
                self.expected(node, path, "an integer");
                None
            }
        }
    }

    /// `node` as an array of at least `min_items` values.
    pub fn array<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        min_items: usize,
    ) -> Option<&'n [Node]> {
        match &node.kind {
            Kind::Array(items) if items.len() >= min_items => Some(items),
            Kind::Array(_) => {
                let message = format!("expected at least {min_items} item(s)");
                self.error(path, &node.span, message);
                None
            }
            _ => {
                self.expected(node, path, "an array");
                None
            }
        }
    }

    /// `node` as an array (at least `min_items` long) of non-blank strings, trimmed, each with
    /// its node and path. Bad items are reported and left out; `None` if the array is bad.
    pub fn texts<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        min_items: usize,
    ) -> Option<Vec<(&'n str, &'n Node, String)>> {
        let items = self.array(node, path, min_items)?;
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = index(path, i);
            if let Some(s) = self.text(item, &p) {
                out.push((s, item, p));
            }
        }
        Some(out)
    }

    /// The number of errors so far.
    pub fn error_count(&self) -> usize {
        self.report.errors().count()
    }
}
