//! Diagnostics: one finding with its TOML path and `line:col`, and the report of all of them, as
//! text (with the source line and a caret line) or as the JSON of `--json`.

use std::fmt::{self, Write as _};
use std::ops::Range;

use serde::Serialize;

use crate::check::{index, join};

/// One step of a [`TomlPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A table key.
    Key(String),
    /// An array element.
    Index(usize),
}

/// A TOML path, step by step. Findings made on the model, which keeps no positions (Quadlet
/// rendering's), carry one, and the parser's tree locates it. Shown as
/// `containers.container.web.Container.PublishPort[1]`, like [`Diagnostic::path`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TomlPath(Vec<Step>);

impl TomlPath {
    /// The path of these keys.
    pub fn keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        Self(keys.into_iter().map(|k| Step::Key(k.to_owned())).collect())
    }

    /// This path, then `key`.
    #[must_use]
    pub fn key(mut self, key: &str) -> Self {
        self.0.push(Step::Key(key.to_owned()));
        self
    }

    /// This path, then element `i`.
    #[must_use]
    pub fn index(mut self, i: usize) -> Self {
        self.0.push(Step::Index(i));
        self
    }

    /// The steps, from the top.
    pub fn steps(&self) -> &[Step] {
        &self.0
    }
}

impl fmt::Display for TomlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.0.iter().fold(String::new(), |path, step| match step {
            Step::Key(k) => join(&path, k),
            Step::Index(i) => index(&path, *i),
        });
        f.write_str(&path)
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The config is rejected.
    Error,
    /// The config is accepted, but something was changed or is suspicious.
    Warning,
}

/// One finding, located at the offending value (or at the table header or key of a missing or
/// unknown key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The TOML path, `users.admin.ssh_key` or `network.dns_servers[1]`; empty for a syntax
    /// error or a finding about the whole document.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// What is wrong.
    pub message: String,
    /// Error or warning.
    pub severity: Severity,
    /// The byte range in the source the finding points at (for the caret line).
    #[serde(skip)]
    pub span: Range<usize>,
}

/// Byte offsets to `line:col` for one source text.
#[derive(Debug, Clone)]
pub struct LineIndex<'a> {
    source: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes the line starts of `source`.
    pub fn new(source: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        Self { source, starts }
    }

    /// The 1-based line and character column of byte `offset` (clamped to the text).
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.source.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let col = self
            .source
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line, col + 1)
    }

    /// The text of 1-based `line`, without its line ending.
    pub fn line_text(&self, line: usize) -> &'a str {
        let Some(&start) = self.starts.get(line.wrapping_sub(1)) else {
            return "";
        };
        let end = self.starts.get(line).map_or(self.source.len(), |&e| e);
        self.source
            .get(start..end)
            .unwrap_or("")
            .trim_end_matches(['\n', '\r'])
    }
}

/// Every finding of one check, errors and warnings, sorted by position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    diagnostics: Vec<Diagnostic>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    valid: bool,
    errors: Vec<&'a Diagnostic>,
    warnings: Vec<&'a Diagnostic>,
}

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a finding at byte range `span` of the source `lines` indexes.
    pub fn push(
        &mut self,
        lines: &LineIndex<'_>,
        severity: Severity,
        path: impl Into<String>,
        span: Range<usize>,
        message: impl Into<String>,
    ) {
        let (line, col) = lines.line_col(span.start);
        self.diagnostics.push(Diagnostic {
            path: path.into(),
            line,
            col,
            message: message.into(),
            severity,
            span,
        });
    }

    /// Sorts the findings by position (then path), keeping the order of equal ones.
    pub fn sort(&mut self) {
        self.diagnostics
            .sort_by(|a, b| (a.line, a.col, &a.path).cmp(&(b.line, b.col, &b.path)));
    }

    /// Every finding, in position order once [`Report::sort`] ran.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    /// Whether there is at least one error.
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// `file:line:col: path: message`, then the source line and a caret line under the span,
    /// for every finding (warnings say `warning:`).
    pub fn render_text(&self, file_name: &str, source: &str) -> String {
        let lines = LineIndex::new(source);
        let mut out = String::new();
        for d in &self.diagnostics {
            let level = match d.severity {
                Severity::Error => "",
                Severity::Warning => "warning: ",
            };
            let _ = write!(out, "{file_name}:{}:{}: {level}", d.line, d.col);
            if !d.path.is_empty() {
                let _ = write!(out, "{}: ", d.path);
            }
            let _ = writeln!(out, "{}", d.message);
            let text = lines.line_text(d.line);
            let (end_line, end_col) = lines.line_col(d.span.end);
            let width = if end_line == d.line && end_col > d.col {
                end_col - d.col
            } else if d.span.is_empty() {
                1
            } else {
                text.chars().count().saturating_sub(d.col - 1).max(1)
            };
            let _ = writeln!(out, "{text}");
            // Tabs stay tabs under the line, so the caret lines up however tabs are shown.
            let pad: String = text
                .chars()
                .take(d.col - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = writeln!(out, "{pad}{}", "^".repeat(width));
        }
        out
    }

    /// `{"valid":bool,"errors":[...],"warnings":[...]}`, each finding as
    /// `{"path","line","col","message","severity"}`.
    pub fn to_json(&self) -> serde_json::Value {
        let report = JsonReport {
            valid: !self.has_errors(),
            errors: self.errors().collect(),
            warnings: self.warnings().collect(),
        };
        serde_json::to_value(report).unwrap_or(serde_json::Value::Null)
    }
}

impl Serialize for Report {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        JsonReport {
            valid: !self.has_errors(),
            errors: self.errors().collect(),
            warnings: self.warnings().collect(),
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_paths_show_as_diagnostic_paths() {
        let p = TomlPath::keys(["containers", "container", "we.b"])
            .key("PublishPort")
            .index(1);
        assert_eq!(
            p.to_string(),
            "containers.container.\"we.b\".PublishPort[1]"
        );
        assert_eq!(p.steps()[4], Step::Index(1));
        assert_eq!(TomlPath::default().to_string(), "");
    }

    #[test]
    fn offsets_become_one_based_lines_and_character_columns() {
        let src = "a = 1\nb = \"é\"x\n\nc";
        let idx = LineIndex::new(src);
        assert_eq!(idx.line_col(0), (1, 1));
        assert_eq!(idx.line_col(6), (2, 1));
        assert_eq!(idx.line_col(src.find('x').unwrap()), (2, 8));
        assert_eq!(idx.line_col(src.len()), (4, 2));
        assert_eq!(idx.line_text(2), "b = \"é\"x");
        assert_eq!(idx.line_text(9), "");
    }

    #[test]
    fn text_has_location_path_source_and_caret_sorted_by_position() {
        let src = "[users.admin]\nssh_key = 7\nshell = \"fish\"\n";
        let idx = LineIndex::new(src);
        let mut r = Report::new();
        let shell = src.find("\"fish\"").unwrap();
        r.push(
            &idx,
            Severity::Error,
            "users.admin.shell",
            shell..shell + 6,
            "bad shell",
        );
        let key = src.find('7').unwrap();
        r.push(
            &idx,
            Severity::Error,
            "users.admin.ssh_key",
            key..key + 1,
            "not a string",
        );
        r.sort();
        assert_eq!(
            r.render_text("config.toml", src),
            "config.toml:2:11: users.admin.ssh_key: not a string\nssh_key = 7\n          ^\n\
             config.toml:3:9: users.admin.shell: bad shell\nshell = \"fish\"\n        ^^^^^^\n"
        );
        let tabbed = "[users.admin]\n\tshell = 1\n";
        let idx = LineIndex::new(tabbed);
        let mut t = Report::new();
        t.push(&idx, Severity::Warning, "users.admin.shell", 23..24, "w");
        assert_eq!(
            t.render_text("c.toml", tabbed),
            "c.toml:2:10: warning: users.admin.shell: w\n\tshell = 1\n\t        ^\n"
        );
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.starts_with("{\"valid\":false,\"errors\":[{\"path\":\"users.admin.ssh_key\""));
        assert!(json.ends_with("\"warnings\":[]}"));
        assert_eq!(r.to_json()["errors"][1]["line"], 3);
    }
}
