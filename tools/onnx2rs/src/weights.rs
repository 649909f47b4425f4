//! The plain weights member of a model zip (`SYM_TF_policy.weights`, `oracle_model`'s layout)
//! made from this crate's import of the ONNX policy, and the check that a zip's member is
//! exactly that.

use std::io::{Cursor, Read};

use oracle_core::model::Activation as CoreActivation;
use oracle_model::{DenseLayer, PolicyWeights, WEIGHTS_SUFFIX, decode_weights, encode_weights};
use sha2::{Digest, Sha256};

use crate::{Activation, Error, Mlp, POLICY_SUFFIX, policy_from_zip};

/// The layers of `mlp`, imported from `onnx_bytes`, as the loader's plain weights.
pub fn policy_weights(mlp: &Mlp, onnx_bytes: &[u8]) -> PolicyWeights {
    PolicyWeights {
        onnx_sha256: Sha256::digest(onnx_bytes).into(),
        layers: mlp
            .layers
            .iter()
            .map(|l| DenseLayer {
                in_dim: l.in_dim,
                out_dim: l.out_dim,
                activation: match l.activation {
                    Activation::Tanh => CoreActivation::Tanh,
                    Activation::Relu => CoreActivation::Relu,
                    Activation::Identity => CoreActivation::Identity,
                },
                weights: l.weights.clone(),
                bias: l.bias.clone(),
            })
            .collect(),
    }
}

/// The weights member's bytes for this ONNX policy (what `python -m oracle_training
/// pack-weights` writes).
pub fn weights_member(onnx_bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let mlp = crate::convert(onnx_bytes)?;
    Ok(encode_weights(&policy_weights(&mlp, onnx_bytes)))
}

fn first_difference(have: &PolicyWeights, want: &PolicyWeights) -> String {
    if have.onnx_sha256 != want.onnx_sha256 {
        return format!(
            "field 'onnx_sha256' is {}, the ONNX member's is {}",
            hex::encode(have.onnx_sha256),
            hex::encode(want.onnx_sha256)
        );
    }
    if have.layers.len() != want.layers.len() {
        return format!(
            "{} layers, the import has {}",
            have.layers.len(),
            want.layers.len()
        );
    }
    for (i, (h, w)) in have.layers.iter().zip(&want.layers).enumerate() {
        if (h.in_dim, h.out_dim, h.activation) != (w.in_dim, w.out_dim, w.activation) {
            return format!(
                "layer {i} is {}x{} {:?}, the import's {}x{} {:?}",
                h.out_dim, h.in_dim, h.activation, w.out_dim, w.in_dim, w.activation
            );
        }
        for (what, a, b) in [
            ("weights", &h.weights, &w.weights),
            ("bias", &h.bias, &w.bias),
        ] {
            if let Some(k) = a
                .iter()
                .zip(b)
                .position(|(x, y)| x.to_bits() != y.to_bits())
            {
                return format!(
                    "layer {i} {what}[{k}] is {:?}, the import's {:?}",
                    a[k], b[k]
                );
            }
        }
    }
    "the bytes differ".to_owned()
}

/// Checks that the model zip's `SYM_TF_policy.weights` is this crate's import of its
/// `SYM_TF_policy.onnx`, bit for bit; returns the member's name and its float count.
pub fn check_zip_weights(zip_bytes: &[u8]) -> Result<(String, usize), Error> {
    let (onnx_member, onnx) = policy_from_zip(zip_bytes)?;
    let member = format!(
        "{}{WEIGHTS_SUFFIX}",
        onnx_member
            .strip_suffix(POLICY_SUFFIX)
            .unwrap_or(&onnx_member)
    );
    let mut archive = zip::ZipArchive::new(Cursor::new(zip_bytes))?;
    let mut have = Vec::new();
    match archive.by_name(&member) {
        Ok(mut f) => f
            .read_to_end(&mut have)
            .map_err(|source| Error::ReadMember {
                member: member.clone(),
                source,
            })?,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(Error::NoWeightsMember { member });
        }
        Err(e) => return Err(e.into()),
    };
    let mlp = crate::convert(&onnx)?;
    let want = policy_weights(&mlp, &onnx);
    let want_bytes = encode_weights(&want);
    if have == want_bytes {
        let floats = want
            .layers
            .iter()
            .map(|l| l.weights.len() + l.bias.len())
            .sum();
        return Ok((member, floats));
    }
    let detail = match decode_weights(&have) {
        Err(e) => e.to_string(),
        Ok(h) => first_difference(&h, &want),
    };
    Err(Error::WeightsDiffer { member, detail })
}
