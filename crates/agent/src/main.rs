//! The `hostward-agent` binary: everything is in the library, starting at `cli::main`.

fn main() -> std::process::ExitCode {
    hostward_agent::cli::main()
}
