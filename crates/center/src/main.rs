//! The `hostward` binary: everything is in the library, starting at `cli::main`.

fn main() -> std::process::ExitCode {
    hostward_center::cli::main()
}
