//! Regenerates `src/generated/openapi.rs` from `proto/*.proto` with a pure-Rust compiler
//! (`protox` + `prost-build`; no `protoc` needed).
//!
//! ```text
//! cargo run -p oracle-ctrader --example codegen            # rewrite the committed file
//! cargo run -p oracle-ctrader --example codegen -- --descriptor-set FILE   # also dump the
//!                                                           # FileDescriptorSet (for tools/proto_facts.py)
//! ```
//! The test `generated_code_is_fresh` (tests/codegen.rs) runs the same generation in memory and
//! fails when the committed file is stale.

#[path = "../tests/support/codegen.rs"]
mod codegen;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let code = codegen::generate(root)?;
    let out = root.join("src/generated/openapi.rs");
    std::fs::write(&out, code)?;
    println!("wrote {}", out.display());
    if let Some(i) = args.iter().position(|a| a == "--descriptor-set") {
        let path = args.get(i + 1).ok_or("--descriptor-set needs a file")?;
        std::fs::write(path, codegen::descriptor_set_bytes(root)?)?;
        println!("wrote {path}");
    }
    Ok(())
}
