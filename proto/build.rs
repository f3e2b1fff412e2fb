//! Compiles `venue.proto` with protox (pure Rust, no `protoc`) and generates prost types.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=venue.proto");
    let fds = protox::compile(["venue.proto"], ["."])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
