//! `respite-server`: parses config and runs the server.
//!
//! `respite-server [path/to/respite.conf] [--name value ...]`

use respite_server::Config;

fn main() {
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
