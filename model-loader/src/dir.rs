//! Loading every model zip of a folder: a bad zip is reported by name, the others still load.

use std::path::{Path, PathBuf};

use crate::error::{LoadError, LoadErrorKind};
use crate::load::{LoadedModel, load_model};

/// What a folder held.
#[derive(Debug, Default)]
pub struct FolderLoad {
    /// The models that loaded, sorted by file name.
    pub models: Vec<LoadedModel>,
    /// The zips that were refused, each naming its file, sorted by file name.
    pub errors: Vec<LoadError>,
}

/// Loads every `*.zip` directly in `dir` (sorted by file name). Only an unreadable folder is an
/// error; each bad zip lands in [`FolderLoad::errors`] and loading goes on.
pub fn load_dir(dir: &Path) -> Result<FolderLoad, LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|e| LoadError {
        file: dir.display().to_string(),
        kind: LoadErrorKind::Io(e),
    })?;
    let mut zips: Vec<PathBuf> = Vec::new();
    let mut out = FolderLoad::default();
    for entry in entries {
        match entry {
            Ok(entry) => {
                let path = entry.path();
                let is_zip = path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
                if is_zip && path.is_file() {
                    zips.push(path);
                }
            }
            Err(e) => out.errors.push(LoadError {
                file: dir.display().to_string(),
                kind: LoadErrorKind::Io(e),
            }),
        }
    }
    zips.sort();
    for path in zips {
        match load_model(&path) {
            Ok(m) => out.models.push(m),
            Err(e) => out.errors.push(e),
        }
    }
    Ok(out)
}
