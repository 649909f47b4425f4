#[test]
fn dbg() {
    let raw: serde_json::Value = {
        let f = std::fs::File::open("../models/EURUSD_H1.zip").unwrap();
        let z = zip::ZipArchive::new(f).unwrap();
        serde_json::from_slice(z.comment()).unwrap()
    };
    let m = oracle_model::parse_metadata(raw).unwrap();
    println!("{:?} {:?}", m.window, m.raw["rl_config"]);
    let e = oracle_model::load_model(std::path::Path::new("../models/EURUSD_H1.zip")).unwrap_err();
    println!("{e:?}");
}
