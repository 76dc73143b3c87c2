//! Compiles every `.proto` file under `podconnect/` into Rust with the vendored `protoc`,
//! so a new file in the contract needs no change here and no system protoc is required.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut protos = Vec::new();
    collect_protos(&root.join("podconnect"), &mut protos)?;
    protos.sort();

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let well_known = protoc_bin_vendored::include_path()?;

    let includes = [root.to_path_buf(), well_known];

    // The core's contract (podconnect.v1) alone goes into the descriptor set its server
    // reflection serves: the vault service's contract is compiled apart, so the core never
    // advertises a service it does not serve.
    let (core, others): (Vec<PathBuf>, Vec<PathBuf>) =
        protos.into_iter().partition(|path| path.starts_with(root.join("podconnect").join("v1")));
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(&protoc);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("podconnect_descriptor.bin"))
        .compile_with_config(config, &core, &includes)?;
    if !others.is_empty() {
        let mut config = tonic_prost_build::Config::new();
        config.protoc_executable(&protoc);
        tonic_prost_build::configure().compile_with_config(config, &others, &includes)?;
    }

    println!("cargo:rerun-if-changed=podconnect");
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
