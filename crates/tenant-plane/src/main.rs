//! The `atlasai-tp` binary: parse the command line, hand over to the library.

/// mimalloc instead of the system allocator: the gateway path allocates many small buffers
/// per request, and mimalloc serves them several times faster than glibc's malloc (see
/// bench/results for the measurement).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    atlasai_tenant_plane::cli::main()
}
