//! `respite-server`: parses config and runs the server.
//!
//! `respite-server [path/to/respite.conf] [--name value ...]`
//! `respite-server rotate-key [path/to/respite.conf] --dir DIR [--encryption-key-file OLD]
//!     [--new-encryption-key-file NEW] [--name value ...]`

use respite_server::Config;

const USAGE: &str = "Usage: respite-server [/path/to/respite.conf] [--name value ...]
       respite-server --port 6379 --dir ./data --appendfsync everysec
       respite-server rotate-key [/path/to/respite.conf] --dir DIR \\
           [--encryption-key-file OLD] [--new-encryption-key-file NEW] [--name value ...]
       respite-server -v | --version
       respite-server -h | --help

Every directive of the config file can also be given as a flag; flags override the file.

rotate-key (server stopped) re-encrypts the data folder DIR from the key in OLD to the key
in NEW, copying every key into DIR.rotating and then swapping the folders. Without OLD it
encrypts a plain folder; without NEW it decrypts. Give it the same config file or tree and
shard settings as the server.";

fn config_error(e: &dyn std::fmt::Display) -> ! {
    eprintln!(
        "*** FATAL CONFIG FILE ERROR (respite-server {}) ***",
        env!("CARGO_PKG_VERSION")
    );
    eprintln!("{e}");
    std::process::exit(1);
}

fn rotate_key(args: &[String]) {
    let (rest, new_key) = match respite_server::rotate::split_args(args) {
        Ok(split) => split,
        Err(e) => config_error(&e),
    };
    let config = match Config::from_args(rest) {
        Ok(c) => c,
        Err(e) => config_error(&e),
    };
    // Engine messages (recovery of the folder) go to the log as the server's would.
    let (log, guard) = match respite_server::logging::build(config.loglevel, &config.logfile) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "respite-server rotate-key: can't open log file '{}': {e}",
                config.logfile
            );
            std::process::exit(1);
        }
    };
    let result = respite_server::rotate::rotate_key(&config, new_key.as_deref(), log);
    drop(guard);
    match result {
        Ok(summary) => {
            for line in summary.lines(&config.dir) {
                println!("{line}");
            }
        }
        Err(e) => {
            eprintln!("respite-server rotate-key: {e}");
            std::process::exit(1);
        }
    }
}

/// Keeps glibc's malloc from handing the free top of each thread's heap back to the kernel
/// and faulting it in again at once. By default a heap is trimmed as soon as 128 KiB at its
/// top are free, so a reactor that allocates and frees a few MB of 4 KiB values per pipeline
/// (GET -P 16 -d 4096) spends a quarter of its time in mprotect, page faults and zeroing
/// fresh pages. 32 MiB per heap may stay mapped; allocations of 4 MiB and more still get
/// their own mapping, returned as soon as they are freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    // SAFETY: mallopt only sets malloc's parameters (it takes malloc's own lock), and runs
    // before the server starts any thread.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

fn main() {
    tune_malloc();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
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
        Some("rotate-key") => {
            rotate_key(&args[1..]);
            return;
        }
        _ => {}
    }
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => config_error(&e),
    };
    if let Err(e) = respite_server::run(config) {
        eprintln!("respite-server: {e}");
        std::process::exit(1);
    }
}
