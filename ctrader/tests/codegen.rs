//! The committed generated code must equal a fresh generation from `proto/*.proto`.

#[path = "support/codegen.rs"]
mod codegen;

#[test]
fn generated_code_is_fresh() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let fresh = codegen::generate(root).expect("codegen");
    let committed = std::fs::read_to_string(root.join("src/generated/openapi.rs")).expect("read");
    assert!(
        fresh == committed,
        "src/generated/openapi.rs is stale: run `cargo run -p oracle-ctrader --example codegen`"
    );
}
