//! How every `atomix-bench` subcommand prints its result: its tables ([`Table`] in one of three
//! [`Layout`]s: the plain markdown of most subcommands, the padded markdown of `boot`, plain
//! fixed-width columns), the cells they share ([`fixed`] numbers, a [`Target`]'s
//! `<= 0.50 (met)` cell) and the `--json` text ([`json_text`]).
//!
//! Owns: layout only. Must not: measure, pick the numbers or their precision (callers format
//! their own cells, or pass the places to [`fixed`]), or print (callers write the text).

use std::fmt::Write as _;

use serde_json::Value;

/// How a column's cells are padded to its width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Padded on the right (`{:<w$}`).
    Left,
    /// Padded on the left (`{:>w$}`).
    Right,
}

/// How a [`Table`] is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// `| a | b |` lines, the cells as they are; the header over a `|---|---|` rule.
    Markdown,
    /// `| a   |    b |` lines, every column as wide as its widest cell (the header's
    /// included) and aligned as given; the header over a rule of dashes as wide as each column.
    Padded(Vec<Align>),
    /// Plain text: the cells joined by one space, each padded to at least its column's width
    /// and aligned as given (a longer cell is not cut); cells beyond the given columns are not
    /// padded. The header, if any, is just the first line.
    Columns(Vec<(usize, Align)>),
}

/// A table: an optional title line, a header and rows of cells, laid out by its [`Layout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    layout: Layout,
    title: Option<String>,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty [`Layout::Markdown`] table with `header`.
    pub fn markdown<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Self::new(Layout::Markdown, header)
    }

    /// An empty [`Layout::Padded`] table with `header`, its columns aligned as `align`.
    pub fn padded<S: Into<String>>(header: impl IntoIterator<Item = S>, align: &[Align]) -> Self {
        Self::new(Layout::Padded(align.to_vec()), header)
    }

    /// An empty [`Layout::Columns`] table of `columns` (width, alignment) with `header`
    /// (none when empty).
    pub fn columns<S: Into<String>>(
        header: impl IntoIterator<Item = S>,
        columns: &[(usize, Align)],
    ) -> Self {
        Self::new(Layout::Columns(columns.to_vec()), header)
    }

    fn new<S: Into<String>>(layout: Layout, header: impl IntoIterator<Item = S>) -> Self {
        Self {
            layout,
            title: None,
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// The line printed above the table.
    #[must_use]
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Adds a row of `cells`.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    /// The table as printed: the title line, the header (and its rule) and the rows, each line
    /// ending in a newline.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(title) = &self.title {
            let _ = writeln!(out, "{title}");
        }
        let header = (!self.header.is_empty()).then_some(&self.header);
        match &self.layout {
            Layout::Markdown => {
                if let Some(header) = header {
                    markdown_line(&mut out, header);
                    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
                }
                for row in &self.rows {
                    markdown_line(&mut out, row);
                }
            }
            Layout::Padded(align) => {
                let mut width: Vec<usize> = Vec::new();
                for row in header.into_iter().chain(&self.rows) {
                    for (i, cell) in row.iter().enumerate() {
                        let n = cell.chars().count();
                        match width.get_mut(i) {
                            Some(w) => *w = (*w).max(n),
                            None => width.push(n),
                        }
                    }
                }
                let columns: Vec<(usize, Align)> = width
                    .iter()
                    .enumerate()
                    .map(|(i, &w)| (w, align.get(i).copied().unwrap_or(Align::Left)))
                    .collect();
                let line = |out: &mut String, row: &[String]| {
                    let cells: Vec<String> = row
                        .iter()
                        .zip(&columns)
                        .map(|(cell, &(w, a))| pad(cell, w, a))
                        .collect();
                    let _ = writeln!(out, "| {} |", cells.join(" | "));
                };
                if let Some(header) = header {
                    line(&mut out, header);
                    let rule: Vec<String> = width.iter().map(|&w| "-".repeat(w)).collect();
                    line(&mut out, &rule);
                }
                for row in &self.rows {
                    line(&mut out, row);
                }
            }
            Layout::Columns(columns) => {
                for row in header.into_iter().chain(&self.rows) {
                    let cells: Vec<String> = row
                        .iter()
                        .enumerate()
                        .map(|(i, cell)| match columns.get(i) {
                            Some(&(w, a)) => pad(cell, w, a),
                            None => cell.clone(),
                        })
                        .collect();
                    let _ = writeln!(out, "{}", cells.join(" "));
                }
            }
        }
        out
    }
}

fn markdown_line(out: &mut String, cells: &[String]) {
    let _ = writeln!(out, "| {} |", cells.join(" | "));
}

/// `cell` padded to `width` characters as `align` says (as `{:<w$}` / `{:>w$}` do).
fn pad(cell: &str, width: usize, align: Align) -> String {
    match align {
        Align::Left => format!("{cell:<width$}"),
        Align::Right => format!("{cell:>width$}"),
    }
}

/// `value` with `places` decimals (`{:.places$}`), or `-` without one.
pub fn fixed(value: Option<f64>, places: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.places$}"))
}

/// A target on a ratio (ours / the anchor's): at most or at least a limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// The ratio is at most this.
    AtMost(f64),
    /// The ratio is at least this.
    AtLeast(f64),
}

impl Target {
    /// Whether `ratio` meets the target (never for NaN).
    pub fn met(self, ratio: f64) -> bool {
        match self {
            Self::AtMost(limit) => ratio <= limit,
            Self::AtLeast(limit) => ratio >= limit,
        }
    }

    /// The target cell of a markdown table for `ratio`: `<= 0.50 (met)`, `>= 0.90 (NOT met)`.
    pub fn cell(self, ratio: f64) -> String {
        let (op, limit) = match self {
            Self::AtMost(limit) => ("<=", limit),
            Self::AtLeast(limit) => (">=", limit),
        };
        let verdict = if self.met(ratio) { "met" } else { "NOT met" };
        format!("{op} {limit:.2} ({verdict})")
    }
}

/// How `--json` prints a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonStyle {
    /// On one line.
    Line,
    /// Indented by two spaces, one member a line.
    Pretty,
}

/// `value` as `--json` prints it, ending in a newline.
pub fn json_text(value: &Value, style: JsonStyle) -> String {
    match style {
        JsonStyle::Line => format!("{value}\n"),
        JsonStyle::Pretty => format!("{value:#}\n"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn markdown_table_with_title() {
        let mut t = Table::markdown(["metric", "ours", "anchor"]).with_title("a title");
        t.row(["time (s)", "1.00", "2.00"]);
        t.row([
            "of which x (s)".to_owned(),
            "-".to_owned(),
            fixed(Some(0.5), 2),
        ]);
        assert_eq!(
            t.render(),
            "a title\n\
             | metric | ours | anchor |\n\
             |---|---|---|\n\
             | time (s) | 1.00 | 2.00 |\n\
             | of which x (s) | - | 0.50 |\n"
        );
    }

    #[test]
    fn padded_table_sizes_columns_to_the_widest_cell() {
        let mut t = Table::padded(["metric", "ours"], &[Align::Left, Align::Right]);
        t.row(["a", "1.0 ms"]);
        t.row(["longer metric", ""]);
        assert_eq!(
            t.render(),
            "| metric        |   ours |\n\
             | ------------- | ------ |\n\
             | a             | 1.0 ms |\n\
             | longer metric |        |\n"
        );
        // Width counts characters, not bytes.
        let mut t = Table::padded(["x"], &[Align::Right]);
        t.row(["→→"]);
        assert_eq!(t.render(), "|  x |\n| -- |\n| →→ |\n");
    }

    #[test]
    fn columns_pad_to_a_minimum_and_never_cut() {
        let columns = [(6, Align::Left), (4, Align::Right)];
        let mut t = Table::columns(["metric", "n"], &columns);
        t.row(["a", "1"]);
        t.row(["too long", "12345", "(more)"]);
        t.row(["b"]);
        assert_eq!(
            t.render(),
            "metric    n\na         1\ntoo long 12345 (more)\nb     \n"
        );
        let mut bare = Table::columns(Vec::<String>::new(), &columns);
        bare.row(["x", "2"]);
        assert_eq!(bare.render(), "x         2\n");
    }

    #[test]
    fn fixed_places_or_a_dash() {
        assert_eq!(fixed(Some(715.83), 0), "716");
        assert_eq!(fixed(Some(1.5), 2), "1.50");
        assert_eq!(fixed(None, 2), "-");
    }

    #[test]
    fn target_cells_at_most_and_at_least() {
        assert_eq!(Target::AtMost(0.5).cell(0.4), "<= 0.50 (met)");
        assert_eq!(Target::AtMost(0.5).cell(0.5), "<= 0.50 (met)");
        assert_eq!(Target::AtMost(1.0).cell(1.75), "<= 1.00 (NOT met)");
        assert_eq!(Target::AtLeast(0.9).cell(1.33), ">= 0.90 (met)");
        assert_eq!(Target::AtLeast(0.9).cell(0.67), ">= 0.90 (NOT met)");
        assert!(!Target::AtLeast(0.9).met(f64::NAN));
        assert!(!Target::AtMost(0.9).met(f64::NAN));
    }

    #[test]
    fn json_on_one_line_or_pretty() {
        let v = json!({"b": [1, 2.5], "a": null});
        assert_eq!(
            json_text(&v, JsonStyle::Line),
            "{\"a\":null,\"b\":[1,2.5]}\n"
        );
        assert_eq!(
            json_text(&v, JsonStyle::Pretty),
            "{\n  \"a\": null,\n  \"b\": [\n    1,\n    2.5\n  ]\n}\n"
        );
        assert_eq!(
            json_text(&v, JsonStyle::Pretty),
            serde_json::to_string_pretty(&v).unwrap() + "\n"
        );
    }
}
