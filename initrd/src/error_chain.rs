//! The messages of an error's `source()` chain, the one place `/init` walks it.
//!
//! Owns: turning an error and its causes into lines (the failure policy prints one per cause)
//! or into one `: `-joined string (`initrd.json`'s `repart.error`, warnings). Must not: decide
//! what to print or where; callers do.

use std::error::Error;

/// The messages of `err`'s sources, outermost first (not `err` itself).
pub fn error_chain(err: &(dyn Error + 'static)) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push(e.to_string());
        cur = e.source();
    }
    out
}

/// `err` and its causes, joined by `: `.
pub fn joined(err: &(dyn Error + 'static)) -> String {
    std::iter::once(err.to_string())
        .chain(error_chain(err))
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_excludes_the_error_and_joined_includes_it() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&e), ["inner"]);
        assert_eq!(joined(&e), "outer: inner");
    }
}
