//! Generates the protobuf/gRPC code from `proto/s62/**/*.proto` (needs `protoc`, which the README
//! commands install).
//!
//! Two passes: the log's entry schema (`s62.v1`, messages only; descriptor set
//! `s62_descriptor.bin` as before) and the auditor query API (`s62.query.v1`, messages + tonic
//! client and server), which refers to the entry types through `extern_path` so both share one set
//! of Rust types. The second pass writes `s62_query_descriptor.bin` — the query API with the entry
//! schema it imports — which the query service serves through gRPC reflection. (A file of its own,
//! so that a build of another branch sharing the target directory cannot replace it.)
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let entry = "proto/s62/v1/entry.proto";
    let query = "proto/s62/query/v1/query.proto";
    for p in [entry, query] {
        println!("cargo:rerun-if-changed={p}");
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .file_descriptor_set_path(out.join("s62_descriptor.bin"))
        .compile_protos(&[entry], &["proto"])?;
    tonic_prost_build::configure()
        .extern_path(".s62.v1", "crate::log::entry::pb")
        .file_descriptor_set_path(out.join("s62_query_descriptor.bin"))
        .compile_protos(&[query], &["proto"])?;
    Ok(())
}
