//! `respite-server`: parses config and runs the server.

fn main() {
    eprintln!("respite-server: the server is not built yet (see README status)");
    std::process::exit(1);
}
