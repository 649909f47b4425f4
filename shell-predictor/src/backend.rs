//! Adapts the real core (`oracle-core`) and loader (`oracle-model`) to the shell's seam.

use crate::seam::{Loader, Twin};
use std::path::Path;

/// The loader backed by `oracle-model`.
pub struct ZipLoader;

impl Loader for ZipLoader {
    fn load(&self, path: &Path) -> Result<Box<dyn Twin>, String> {
        Err(format!(
            "{}: the model loader (oracle-model) is not wired into this build yet",
            path.display()
        ))
    }
}
