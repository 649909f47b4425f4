//! Finding the policy member in a `SYM_TF.zip` model archive.

use std::io::{Cursor, Read};

use crate::Error;

/// The suffix of the actor's ONNX member inside a model zip (`SYM_TF_policy.onnx`).
pub const POLICY_SUFFIX: &str = "_policy.onnx";

/// Returns the name and bytes of the single member of a model zip whose name ends in
/// [`POLICY_SUFFIX`]. Refuses a zip with none or several such members.
pub fn policy_from_zip(zip_bytes: &[u8]) -> Result<(String, Vec<u8>), Error> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip_bytes))?;
    let names: Vec<String> = archive.file_names().map(str::to_owned).collect();
    let mut matching: Vec<&String> = names
        .iter()
        .filter(|n| n.ends_with(POLICY_SUFFIX))
        .collect();
    matching.sort();
    let member = match matching.as_slice() {
        [one] => (*one).clone(),
        [] => {
            let mut all = names.clone();
            all.sort();
            return Err(Error::NoPolicyMember {
                suffix: POLICY_SUFFIX,
                members: all.join(", "),
            });
        }
        many => {
            return Err(Error::MultiplePolicyMembers {
                suffix: POLICY_SUFFIX,
                members: many
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    };
    let mut file = archive.by_name(&member)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|source| Error::ReadMember {
            member: member.clone(),
            source,
        })?;
    Ok((member, bytes))
}
