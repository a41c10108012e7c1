//! `magnetar-lab`: see the library's documentation and `magnetar-lab --help`.

use std::ffi::OsString;
use std::io::IsTerminal as _;

use clap::Parser;
use magnetar_lab::cli::{Cli, Command, execute};
use magnetar_lab::prompt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let mut cli = Cli::parse_from(&args);
    if let Command::Run(run) = &mut cli.command {
        if prompt::asks(&args, std::io::stdin().is_terminal()) {
            prompt::ask(&mut std::io::stdin().lock(), &mut std::io::stdout())?.apply(run);
        }
    }
    execute(cli).await
}
