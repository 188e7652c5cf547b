// Compiles the two pieces of C in hakmem: the initial-exec TLS slot (stable
// Rust cannot declare a TLS variable with that model itself), and operator
// new's failure path, which throws std::bad_alloc (a C++ exception must not
// unwind through Rust built with panic=abort; C with unwind tables is fine).
fn main() {
    println!("cargo:rerun-if-changed=src/thread/tls.c");
    println!("cargo:rerun-if-changed=src/api/cxx_new.c");
    cc::Build::new()
        .file("src/thread/tls.c")
        .flag("-ftls-model=initial-exec")
        .flag_if_supported("-fno-plt")
        .opt_level(2)
        .compile("hakmem_tls");
    cc::Build::new()
        .file("src/api/cxx_new.c")
        .flag("-fexceptions")
        .opt_level(2)
        .compile("hakmem_cxx_new");
}
