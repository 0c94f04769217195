//! The load harness (`cargo run -p respite-benches --release -- compare`) lives here.

fn main() {
    eprintln!("respite-benches: the compare harness is not built yet");
}
