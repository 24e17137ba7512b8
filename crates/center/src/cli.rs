//! Command line of `hostward`. (Being written.)
pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
