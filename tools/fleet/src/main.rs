//! `magnetar-fleet`: the fleet file for scripts.
//!
//! ```text
//! magnetar-fleet validate                          check config/workers.json (errors name the field)
//! magnetar-fleet router-fleet [--local]            the router's FLEET variable
//! magnetar-fleet ports                             the local stack's ports, as shell assignments
//! magnetar-fleet gen-local --out DIR [--var K=V] [--secret K=V] [--tsv] [--check-ports]
//!                                                  one wrangler config per process, and the list
//! ```

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use magnetar_fleet::{
    FleetFile, FleetFileError, LocalOptions, Manifest, Reach, gen_local, parse_pairs,
};

#[derive(Parser)]
#[command(
    name = "magnetar-fleet",
    about = "Validates config/workers.json and generates the local stack's wrangler configurations."
)]
struct Cli {
    /// The fleet file.
    #[arg(long, global = true, default_value = magnetar_fleet::DEFAULT_FILE)]
    file: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Checks the file with the router's and the downstream Worker's own parsers.
    Validate,
    /// Prints the router's FLEET variable (JSON).
    RouterFleet {
        /// Downstreams with a local port become loopback URLs.
        #[arg(long)]
        local: bool,
    },
    /// Prints the local stack's ports (ROUTER_PORT=..., LEARNER_PORT=...) for `eval`.
    Ports,
    /// Writes one wrangler configuration per local downstream and one for the router.
    GenLocal {
        #[arg(long)]
        out: PathBuf,
        /// Router variable KEY=VALUE (repeatable).
        #[arg(long = "var")]
        vars: Vec<String>,
        /// Router secret KEY=VALUE, written to the router's .dev.vars (repeatable).
        #[arg(long = "secret")]
        secrets: Vec<String>,
        /// Print "name<TAB>port<TAB>inspector port<TAB>config" lines instead of JSON.
        #[arg(long)]
        tsv: bool,
        /// Fail when a port the processes need is taken.
        #[arg(long)]
        check_ports: bool,
    },
}

fn busy_ports(manifest: &Manifest) -> Vec<String> {
    // As servers bind (std sets SO_REUSEADDR): connections of a stack stopped a moment ago in
    // TIME_WAIT do not count, listeners do.
    let free = |port: u16| TcpListener::bind(("127.0.0.1", port)).is_ok();
    manifest
        .processes()
        .flat_map(|p| {
            [("port", p.port), ("inspector port", p.inspector_port)]
                .into_iter()
                .filter(|(_, port)| !free(*port))
                .map(|(kind, port)| format!("{} {kind} {port}", p.name))
        })
        .collect()
}

fn run(cli: Cli) -> Result<(), FleetFileError> {
    let file = FleetFile::load(&cli.file)?;
    match cli.command {
        Command::Validate => {
            println!("{}: {} downstreams, ok", cli.file.display(), file.downstreams.len());
        }
        Command::RouterFleet { local } => {
            let reach = if local { Reach::LoopbackUrls } else { Reach::Deployed };
            println!("{}", file.router_fleet(reach)?)
        }
        Command::Ports => {
            println!("ROUTER_PORT={}", file.router_port);
            println!("LEARNER_PORT={}", file.learner_port);
            println!("HALF_LIFE_MS={}", file.half_life_ms);
            println!("TEST_BED_PORT={}", file.test_bed_port);
            println!("KAFKA_PORT={}", file.kafka_port);
            println!("BRIDGE_PORT={}", file.bridge_port);
        }
        Command::GenLocal { out, vars, secrets, tsv, check_ports } => {
            let options = LocalOptions {
                router_vars: parse_pairs(&vars, "--var")?,
                router_secrets: parse_pairs(&secrets, "--secret")?,
                reach: Reach::LoopbackUrls,
            };
            let root = std::env::current_dir().unwrap_or_default();
            let manifest = gen_local(&file, &root, &out, &options)?;
            if check_ports {
                let busy = busy_ports(&manifest);
                if !busy.is_empty() {
                    return Err(FleetFileError::Field {
                        field: "ports".into(),
                        problem: format!(
                            "in use (change them in {} or stop what holds them): {}",
                            cli.file.display(),
                            busy.join(", ")
                        ),
                    });
                }
            }
            if tsv {
                for p in manifest.processes() {
                    println!(
                        "{}\t{}\t{}\t{}",
                        p.name,
                        p.port,
                        p.inspector_port,
                        p.config.display()
                    );
                }
            } else {
                println!("{}", serde_json::to_string_pretty(&manifest).unwrap_or_default());
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet config error: {e}");
            ExitCode::from(2)
        }
    }
}
