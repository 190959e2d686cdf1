//! How an error and its causes (`source()` chain) are shown to a person, for every crate of
//! the workspace: on one line joined by `: ` (`initrd.json`, `inspect`, warnings), or as the
//! CLI's `atomix: error: …` line followed by one `  caused by: …` line per cause.
//!
//! Owns: walking the chain and these two layouts. Must not: decide whether or where an error
//! is printed, or add words of its own; callers do.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::error::Error;
use std::fmt;
use std::io::{self, Write};

/// The causes of `err`, outermost first (not `err` itself).
pub fn causes<'a>(
    err: &'a (dyn Error + 'static),
) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    let mut next = err.source();
    std::iter::from_fn(move || {
        let cause = next?;
        next = cause.source();
        Some(cause)
    })
}

/// `err` and its causes on one line, joined by `: ` (`outer: inner: root`).
#[derive(Debug)]
pub struct OneLine<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        for cause in causes(self.0) {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

/// `err` and its causes on one line, joined by `: `.
pub fn one_line(err: &(dyn Error + 'static)) -> String {
    OneLine(err).to_string()
}

/// Writes `<tool>: error: <prefix><err>` and then `  caused by: <cause>`, one line per cause.
pub fn write_report(
    out: &mut dyn Write,
    tool: &str,
    prefix: &str,
    err: &(dyn Error + 'static),
) -> io::Result<()> {
    writeln!(out, "{tool}: error: {prefix}{err}")?;
    for cause in causes(err) {
        writeln!(out, "  caused by: {cause}")?;
    }
    Ok(())
}

/// [`write_report`] on stderr; a failure to write there is ignored (nowhere left to say it).
pub fn eprint_report(tool: &str, err: &(dyn Error + 'static)) {
    let _ = write_report(&mut io::stderr().lock(), tool, "", err);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle")]
    struct Middle(#[source] io::Error);

    fn sample() -> Outer {
        Outer(Middle(io::Error::other("root")))
    }

    #[test]
    fn causes_exclude_the_error_itself() {
        let e = sample();
        let names: Vec<String> = causes(&e).map(|c| c.to_string()).collect();
        assert_eq!(names, ["middle", "root"]);
        assert_eq!(causes(&io::Error::other("alone")).count(), 0);
    }

    #[test]
    fn one_line_joins_with_colons() {
        assert_eq!(one_line(&sample()), "outer: middle: root");
        assert_eq!(one_line(&io::Error::other("alone")), "alone");
    }

    #[test]
    fn report_has_one_line_per_cause() {
        let mut out = Vec::new();
        write_report(&mut out, "atomix", "flash: ", &sample()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "atomix: error: flash: outer\n  caused by: middle\n  caused by: root\n"
        );
    }
}
