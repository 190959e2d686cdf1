//! `atomix-bench`: the benchmarks (DESIGN section 8) as one command with a subcommand each
//! (`boot`, `api`, `flash`, `image`, `repart`, `rootfs`), and `target-dir` for the wrapper
//! scripts (`scripts/bench*.sh`).
//!
//! Owns: the command line (clap; the options' checks shared by several subcommands), the
//! dispatch to the subcommands' modules, writing their results to stdout and the exit status: 0
//! when a run measured everything (met targets or not), 1 when it failed (its error chain on one
//! line on stderr), 2 on bad arguments (clap). Must not: measure (the modules do) or lay out a
//! table (`atomix_systests::bench_table`).

mod api;
mod boot;
mod flash;
mod image;
mod repart;
mod rootfs;
mod target_dir;

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// The benchmarks (DESIGN section 8): ours against an anchor measured in the same run.
///
/// Each subcommand prints its table(s) on stdout (with --json, JSON instead) and its progress on
/// stderr. Exit status: 0 when everything was measured (whether or not the targets are met), 1
/// when a step failed, 2 on bad arguments. The scripts scripts/bench*.sh build what a
/// subcommand needs and run it.
// args_override_self: an option given twice takes its last value (as the hand-written parsers
// of the former binaries did); clap propagates it to the subcommands.
#[derive(Debug, Parser)]
#[command(name = "atomix-bench", verbatim_doc_comment, args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Boot(boot::Args),
    Api(api::Args),
    Flash(flash::Args),
    Image(image::Args),
    Repart(repart::Args),
    Rootfs(rootfs::Args),
    TargetDir(target_dir::Args),
}

impl Command {
    /// The subcommand's name, as typed.
    fn name(&self) -> &'static str {
        match self {
            Self::Boot(_) => "boot",
            Self::Api(_) => "api",
            Self::Flash(_) => "flash",
            Self::Image(_) => "image",
            Self::Repart(_) => "repart",
            Self::Rootfs(_) => "rootfs",
            Self::TargetDir(_) => "target-dir",
        }
    }

    fn run(&self) -> anyhow::Result<()> {
        match self {
            Self::Boot(args) => boot::run(args),
            Self::Api(args) => api::run(args),
            Self::Flash(args) => flash::run(args),
            Self::Image(args) => image::run(args),
            Self::Repart(args) => repart::run(args),
            Self::Rootfs(args) => rootfs::run(args),
            Self::TargetDir(args) => target_dir::run(args),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "atomix-bench {}: error: {}",
                cli.command.name(),
                atomix_errchain::OneLine(&*e)
            );
            ExitCode::FAILURE
        }
    }
}

/// Writes `text` (a subcommand's result) to stdout.
fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

/// A count of at least 1 (`--boots`, `--rounds`, `--runs`, ...).
fn at_least_one(value: &str) -> Result<usize, String> {
    match value.parse() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("expected a number >= 1".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;
    use clap::error::ErrorKind;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("atomix-bench").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn counts_are_at_least_one() {
        assert_eq!(at_least_one("3"), Ok(3));
        assert!(at_least_one("0").is_err());
        assert!(at_least_one("-1").is_err());
        assert!(at_least_one("x").is_err());
    }

    #[test]
    fn every_subcommand_has_its_name_and_help() {
        let cli = Cli::command();
        let names: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).collect();
        assert_eq!(
            names,
            [
                "boot",
                "api",
                "flash",
                "image",
                "repart",
                "rootfs",
                "target-dir"
            ]
        );
        for sub in cli.get_subcommands() {
            assert!(sub.get_about().is_some(), "{} has no about", sub.get_name());
        }
        for (args, name) in [
            (&["boot"][..], "boot"),
            (&["target-dir"], "target-dir"),
            (&["rootfs", "--provision"], "rootfs"),
            (&["repart", "--atomix", "a"], "repart"),
        ] {
            assert_eq!(parse(args).unwrap().command.name(), name);
        }
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for args in [
            &["boot", "--boots", "0"][..],
            &["boot", "--nope"],
            &["flash", "--atomix", "a", "--rounds", "0"],
            &["flash", "--atomix", "a", "--size", "127"],
            &["flash"],
            &["flash", "--atomix", ""],
            &["nope"],
        ] {
            let e = parse(args).map(|_| ()).unwrap_err();
            assert_ne!(e.kind(), ErrorKind::DisplayHelp, "{args:?}");
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
        }
        let help = parse(&["flash", "--help"]).map(|_| ()).unwrap_err();
        assert_eq!(help.kind(), ErrorKind::DisplayHelp);
        assert_eq!(help.exit_code(), 0);
    }

    #[test]
    fn a_repeated_option_takes_its_last_value() {
        let Command::Flash(flash) = parse(&[
            "flash", "--atomix", "a", "--atomix", "b", "--json", "--json",
        ])
        .unwrap()
        .command
        else {
            panic!("not flash");
        };
        assert_eq!(flash.atomix, std::path::Path::new("b"));
        assert!(flash.json);
    }

    #[test]
    fn defaults_as_before() {
        let command = |args: &[&str]| parse(args).unwrap().command;
        let Command::Boot(boot) = command(&["boot"]) else {
            panic!("not boot");
        };
        assert_eq!((boot.boots, boot.json), (5, false));
        let Command::Flash(flash) = command(&["flash", "--atomix", "a"]) else {
            panic!("not flash");
        };
        assert_eq!((flash.rounds, flash.size_mib), (5, 1024));
        assert_eq!((flash.dir, flash.json), (None, false));
        let Command::Repart(repart) = command(&["repart", "--atomix", "a", "--dir", "d"]) else {
            panic!("not repart");
        };
        assert_eq!(repart.runs, 5);
        assert_eq!(repart.dir.as_deref(), Some(std::path::Path::new("d")));
        let Command::Image(image) = command(&["image", "--atomix", "a", "--rootfs", "r"]) else {
            panic!("not image");
        };
        assert_eq!((image.runs, image.dir), (5, None));
        assert_eq!(image.rootfs.as_deref(), Some(std::path::Path::new("r")));
        let Command::Rootfs(rootfs) = command(&["rootfs", "--cold"]) else {
            panic!("not rootfs");
        };
        assert_eq!(rootfs.boots, 3);
        assert!(rootfs.cold && !rootfs.provision && !rootfs.json);
        let Command::Flash(flash) = command(&["flash", "--atomix=a", "--size=128", "--rounds=1"])
        else {
            panic!("not flash");
        };
        assert_eq!((flash.rounds, flash.size_mib), (1, 128));
    }
}
