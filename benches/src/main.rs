//! `respite-benches`: the load harness that runs respite-server side by side with
//! redis-server on this machine, in one run, and reports ratios.
//!
//! `cargo run -p respite-benches --release -- compare [--quick]` (see `--help`).
//! `cargo run -p respite-benches --release -- bounds`: this machine's floors (memory
//! latency, fdatasync, AES-GCM) to set the figures beside.
//! The criterion benches of the protocol and the engine live in `benches/benches/`.

mod bounds;
mod compare;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("compare") => {
            let result = compare::Options::parse(&args[1..]).and_then(compare::run);
            match result {
                Ok(Some(dir)) => println!("results written to {}", dir.display()),
                Ok(None) => {}
                Err(e) => {
                    eprintln!("compare: {e}");
                    std::process::exit(1);
                }
            }
        }
        Some("bounds") => {
            if let Err(e) = bounds::run(&args[1..]) {
                eprintln!("bounds: {e}");
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!("usage: respite-benches compare|bounds [options]   (--help for the options)");
            std::process::exit(2);
        }
    }
}
