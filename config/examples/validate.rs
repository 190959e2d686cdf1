//! `cargo run -p atomix-config --example validate -- FILE [--json]`: checks a config.toml (or a
//! bundle) and prints the report; exit 0 when valid, 1 when not.

use std::process::ExitCode;

use atomix_config::Config;
use atomix_config::bundle::{Bundle, Caller, Input, Limits};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: validate FILE [--json]");
        return ExitCode::from(2);
    };
    let json = args.iter().any(|a| a == "--json");
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(2);
        }
    };
    let limits = Limits::from_env(|k| std::env::var(k).ok()).unwrap_or_default();
    let source = match Input::detect(&bytes, Some(path), Caller::Cli, &limits) {
        Ok(Input::Toml) => String::from_utf8_lossy(&bytes).into_owned(),
        Ok(Input::Bundle(_)) => match Bundle::read(&bytes, Some(path), &limits) {
            Ok(b) => b.config_toml,
            Err(e) => {
                println!("Invalid: {e}");
                return ExitCode::from(1);
            }
        },
        Err(e) => {
            println!("Invalid: {e}");
            return ExitCode::from(1);
        }
    };
    match Config::parse(&source) {
        Ok(_) if json => {
            println!("{{\"valid\":true,\"errors\":[],\"warnings\":[]}}");
            ExitCode::SUCCESS
        }
        Ok(_) => {
            println!("Valid: {path}");
            ExitCode::SUCCESS
        }
        Err(report) => {
            if json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                print!("{}", report.render_text("config.toml", &source));
            }
            ExitCode::from(1)
        }
    }
}
