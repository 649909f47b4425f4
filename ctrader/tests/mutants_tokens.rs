//! The token file where rotation keeps the OAuth pair, at the edges its unit tests do not reach
//! (each test kills mutants that survived `scripts/mutants --area tokens`). No token value is
//! ever in an error; times are parameters.

use std::path::{Path, PathBuf};

use oracle_ctrader::Secret;
use oracle_ctrader::tokenfile::{
    TOKEN_DIR_NAME, TOKEN_FILE_NAME, TokenPair, folder_of, load, path_in, store,
};

/// A fresh private (0700) folder of this test process.
fn private_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oracle-tokens-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    d
}

fn pair(n: i64) -> TokenPair {
    TokenPair {
        access_token: Secret::new(format!("at-SECRET-{n}")),
        refresh_token: Secret::new(format!("rt-SECRET-{n}")),
        obtained_at_ms: 1_000 * n,
        expires_at_ms: 1_000 * n + 2_628_000_000,
    }
}

#[test]
fn the_token_file_lives_in_its_own_folder_of_the_state_folder() {
    let state = Path::new("/var/lib/oracle");
    assert_eq!(
        path_in(state),
        state.join(TOKEN_DIR_NAME).join(TOKEN_FILE_NAME)
    );
    assert_eq!(folder_of(&path_in(state)), state.join(TOKEN_DIR_NAME));
}

#[test]
fn a_bare_file_name_is_written_in_the_working_folder() {
    assert_eq!(folder_of(Path::new(TOKEN_FILE_NAME)), PathBuf::from("."));
    assert_eq!(folder_of(Path::new("/t/x.json")), PathBuf::from("/t"));
    assert_eq!(folder_of(Path::new("t/x.json")), PathBuf::from("t"));
}

#[test]
fn a_token_path_that_cannot_be_read_is_an_error_not_a_missing_file() {
    let d = private_dir("unreadable");
    // A path below a plain file: not "no token file yet", something is wrong with the path.
    let file = d.join("plain");
    std::fs::write(&file, "x").unwrap();
    let p = file.join(TOKEN_FILE_NAME);
    let e = load(&p).unwrap_err();
    assert!(e.contains(&p.display().to_string()), "{e}");
    // While a path in an existing folder without the file is just "none yet".
    assert_eq!(load(&d.join(TOKEN_FILE_NAME)).unwrap(), None);
    std::fs::remove_dir_all(&d).unwrap();
}

#[cfg(unix)]
#[test]
fn a_folder_others_may_write_is_refused_and_nothing_is_written_there() {
    use std::os::unix::fs::PermissionsExt;
    let public = private_dir("public");
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = store(&public.join(TOKEN_FILE_NAME), &pair(2)).unwrap_err();
    assert!(e.contains("write"), "{e}");
    assert!(!e.contains("SECRET"), "{e}");
    assert!(!public.join(TOKEN_FILE_NAME).exists());
    std::fs::remove_dir_all(&public).unwrap();
}
