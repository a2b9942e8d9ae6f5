//! The `atlasai-cp` binary: parse the command line, hand over to the library.

fn main() -> std::process::ExitCode {
    atlasai_control_plane::cli::main()
}
