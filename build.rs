//! Generates the protobuf/gRPC code from `proto/s62/v1/*.proto` (needs `protoc`, which the README
//! commands install).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/s62/v1/entry.proto"];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("s62_descriptor.bin"))
        .compile_protos(&protos, &["proto"])?;
    Ok(())
}
