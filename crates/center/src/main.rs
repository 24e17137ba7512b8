fn main() -> std::process::ExitCode {
    hostward_center::cli::main()
}
