#[test]
fn dbg() {
    let p = oracle_core::synthetic::model_params(1, 5, false);
    let m = oracle_core::Model::new(&p);
    match &m {
        Ok(_) => println!("OK"),
        Err(e) => println!("ERR {e:?}"),
    }
}
