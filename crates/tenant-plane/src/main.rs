//! The `atlasai-tp` binary: parse the command line, hand over to the library.

fn main() -> std::process::ExitCode {
    atlasai_tenant_plane::cli::main()
}
