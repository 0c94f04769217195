//! `respite-server`: parses config and runs the server.
//!
//! `respite-server [path/to/respite.conf] [--name value ...]`

use respite_server::Config;

const USAGE: &str = "Usage: respite-server [/path/to/respite.conf] [--name value ...]
       respite-server --port 6379 --dir ./data --appendfsync everysec
       respite-server -v | --version
       respite-server -h | --help

Every directive of the config file can also be given as a flag; flags override the file.";

fn main() {
    let first = std::env::args().nth(1);
    match first.as_deref() {
        Some("-v" | "--version") => {
            println!(
                "respite-server v={} (Redis {} compatible)",
                env!("CARGO_PKG_VERSION"),
                respite_server::REDIS_VERSION
            );
            return;
        }
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return;
        }
        _ => {}
    }
    let config = match Config::from_args(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "*** FATAL CONFIG FILE ERROR (respite-server {}) ***",
                env!("CARGO_PKG_VERSION")
            );
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = respite_server::run(config) {
        eprintln!("respite-server: {e}");
        std::process::exit(1);
    }
}
