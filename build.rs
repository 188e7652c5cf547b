// Compiles the one piece of C in hakmem: the initial-exec TLS slot (stable Rust
// cannot declare a TLS variable with that model itself).
fn main() {
    println!("cargo:rerun-if-changed=src/thread/tls.c");
    cc::Build::new()
        .file("src/thread/tls.c")
        .flag("-ftls-model=initial-exec")
        .flag_if_supported("-fno-plt")
        .opt_level(2)
        .compile("hakmem_tls");
}
