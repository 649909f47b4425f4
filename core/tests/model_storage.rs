//! A model's weight storage is its owner's: sized to the policy (what the loader does, so a
//! model keeps resident only the weights it uses) it builds the same model, and runs to the
//! same decisions bit for bit, as the inline storage of the largest policy.

use oracle_core::model::ModelParams;
use oracle_core::synthetic::{self, Bars};
use oracle_core::{Activation, Model, ModelError, ModelOf, Step, Twin};

/// Every step of a twin of `model` over `n` bars of `seed`.
fn run(model: &Model, seed: u64, n: usize) -> Vec<Step> {
    let mut twin: Twin<'_> = Twin::new(model).expect("twin");
    Bars::new(seed, 1_600_000_000)
        .take(n)
        .map(|b| twin.handle_bar(b).expect("bar"))
        .collect()
}

fn exact(p: &ModelParams) -> Box<Model> {
    let storage = vec![0.0f32; p.policy_weights()].into_boxed_slice();
    Box::new(ModelOf::with_weights(p, storage).expect("model"))
}

#[test]
fn a_model_with_storage_sized_to_its_policy_equals_and_decides_as_the_inline_one() {
    let narrow = Box::new(synthetic::model_params(31, 5, true));
    let wide = Box::new(synthetic::model_params_with(
        32,
        3,
        false,
        &[256, 128, 64],
        Activation::Tanh,
    ));
    for p in [&narrow, &wide] {
        let sized = exact(p);
        let inline: Box<Model> = Box::new(Model::new(p).expect("model"));
        assert_eq!(sized.weight_capacity(), p.policy_weights());
        assert_eq!(sized.weight_capacity(), sized.policy_weights());
        assert!(sized.weight_capacity() < inline.weight_capacity());
        // Equal as models: every field, and every weight the policy reads; the inline
        // storage's tail past the policy is zero.
        assert!(*sized == *inline);
        assert_eq!(
            sized.policy_weights(),
            oracle_core::model::policy_weights(
                sized.obs_dim(),
                &p.layers[..p.n_layers - 1]
                    .iter()
                    .map(|l| l.out_dim)
                    .collect::<Vec<_>>()
            )
        );
        let a = run(&sized, 33, 700);
        let b = run(&inline, 33, 700);
        assert!(a.iter().any(|s| matches!(s, Step::Decision(_))));
        assert_eq!(a, b);
    }
}

#[test]
fn a_storage_too_short_for_the_policy_is_refused_and_a_rebuild_leaves_the_model_unchanged() {
    let narrow = Box::new(synthetic::model_params(34, 3, false));
    let wide = Box::new(synthetic::model_params_with(
        35,
        3,
        false,
        &[128, 128],
        Activation::Relu,
    ));
    let need = wide.policy_weights();
    let short = vec![0.0f32; need - 1].into_boxed_slice();
    assert_eq!(
        ModelOf::with_weights(&wide, short).err(),
        Some(ModelError::WeightsDoNotFit {
            weights: need,
            capacity: need - 1
        })
    );
    // A model sized to a narrow policy cannot take a wider one in place.
    let mut slot = exact(&narrow);
    let before = exact(&narrow);
    let e = slot.rebuild(&wide).expect_err("too wide for the storage");
    assert_eq!(
        e,
        ModelError::WeightsDoNotFit {
            weights: need,
            capacity: narrow.policy_weights()
        }
    );
    assert!(e.to_string().contains("weight storage"), "{e}");
    assert!(*slot == *before);
}
