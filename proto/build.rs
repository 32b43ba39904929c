//! Generates the tonic/prost code with a vendored `protoc`, so a fresh
//! machine needs no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Masked vectors are large: keep them as `bytes::Bytes`, not `Vec<u8>`,
    // so decoding does not copy them again.
    config.bytes(["."]);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/fedcredit.proto"],
        &["proto"],
    )?;
    println!("cargo:rerun-if-changed=proto/fedcredit.proto");
    Ok(())
}
