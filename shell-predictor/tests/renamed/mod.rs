//! A bundled model re-packed under another symbol, for tests that need a second model or a
//! model whose `symbol.name` and `symbol.clean` differ.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// `models/EURUSD_H1.zip` re-packed in `dir` as `<name>_H1.zip` with `symbol.name = name` and
/// `symbol.clean = clean` (members renamed, weights and hashes unchanged).
pub fn renamed_model(dir: &Path, name: &str, clean: &str) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let src = std::fs::read(repo.join("models/EURUSD_H1.zip")).expect("bundled model");
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(&src)).expect("zip");
    let comment = String::from_utf8(z.comment().to_vec()).expect("utf8 comment");
    let mut meta: serde_json::Value =
        serde_json::from_str(&comment.replace("EURUSD_H1_", &format!("{name}_H1_"))).expect("json");
    meta["symbol"]["name"] = name.into();
    meta["symbol"]["clean"] = clean.into();
    let path = dir.join(format!("{name}_H1.zip"));
    let mut w = zip::ZipWriter::new(std::fs::File::create(&path).expect("create"));
    for i in 0..z.len() {
        let mut f = z.by_index(i).expect("member");
        let renamed = f.name().replacen("EURUSD_H1_", &format!("{name}_H1_"), 1);
        let mut body = Vec::new();
        f.read_to_end(&mut body).expect("read");
        w.start_file(renamed, zip::write::SimpleFileOptions::default())
            .expect("start");
        w.write_all(&body).expect("write");
    }
    w.set_comment(meta.to_string());
    w.finish().expect("finish");
    path
}
