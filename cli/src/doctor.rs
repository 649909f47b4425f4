//! `oracle doctor`: deployment checks (issue 8). One line per check: OK or FAIL with the fix.

/// `oracle doctor` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct DoctorArgs {
    /// Models folder to check.
    #[arg(long, default_value = "models")]
    pub models: std::path::PathBuf,
}

/// Runs the checks; exit code 0 when all pass.
pub fn run(args: &DoctorArgs) -> i32 {
    let _ = args;
    println!("oracle doctor: not implemented yet");
    2
}
