//! `magnetar-lab`: see the library's documentation and `magnetar-lab --help`.

use clap::Parser;
use magnetar_lab::cli::{Cli, execute};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    execute(Cli::parse()).await
}
