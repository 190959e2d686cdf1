//! `atomix-bench boot`: the initramfs benchmark's command line and output; the benchmark itself
//! (building, booting, measuring, its table's rows) is `atomix_systests::bench`.

use anyhow::Result;
use atomix_systests::bench;
use atomix_systests::bench_table::{JsonStyle, json_text};

/// Our initramfs against a busybox-script baseline (DESIGN section 8).
///
/// Builds our initramfs and a busybox-script baseline, boots each N times (alternating) in QEMU
/// with the same kernel and disk image, and prints the per-boot numbers and one table
/// (metric | ours | baseline (anchor) | ratio | target); --json prints the result as JSON
/// instead. Progress goes to stderr; console logs stay in <target>/qemu-logs/bench-*.log.
/// Run it through scripts/bench.sh.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
#[allow(
    rustdoc::invalid_html_tags,
    reason = "the doc comment is the --help text, where <target> is a placeholder, not HTML"
)]
pub struct Args {
    /// Boots of each side.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = crate::at_least_one)]
    pub boots: usize,
    /// Print the result as JSON instead of the tables.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark and prints its result.
///
/// # Errors
/// A build step or a boot failed.
pub fn run(args: &Args) -> Result<()> {
    let result = bench::run(args.boots, &mut |step| eprintln!("atomix-bench: {step}"))?;
    crate::print(&if args.json {
        json_text(&result.to_json(), JsonStyle::Pretty)
    } else {
        result.render()
    })
}
