fn main() -> std::process::ExitCode {
    hostward_agent::cli::main()
}
