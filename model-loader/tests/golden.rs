//! Golden parity: the Rust twin against the Python `TradingEnv` goldens in `tests/golden/`.
//!
//! For every file of `tests/golden/manifest.json`: load its model zip, run a twin over the
//! golden stream, and compare every row. Decisions (action, regime, position, prices, money) must
//! be equal on 100% of bars; features, posteriors and logits are compared with the named
//! tolerances below. The restart scenario (state restored + priming) must reproduce the
//! uninterrupted run. Run with `--nocapture` to see the report (deviations, smallest margin).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use oracle_core::{Bar, Decision, Step, Twin, TwinState};
use oracle_model::{load_model, parse_time};
use serde_json::Value;

/// How closely a Rust value must match its golden value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tol {
    /// Bit-identical (after parsing the golden's shortest round-trip text).
    Exact,
    /// `|got − want| ≤ abs + rel·|want|`.
    Close { rel: f64, abs: f64 },
    /// At most `n` units in the last place apart (same type as the column).
    #[allow(dead_code)]
    Ulp(u64),
}

impl Tol {
    fn accepts(self, got: f64, want: f64) -> bool {
        match self {
            Tol::Exact => got.to_bits() == want.to_bits() || (got == 0.0 && want == 0.0),
            Tol::Close { rel, abs } => (got - want).abs() <= abs + rel * want.abs(),
            Tol::Ulp(n) => ulp_distance(got, want) <= n,
        }
    }
}

fn ulp_distance(a: f64, b: f64) -> u64 {
    let key = |x: f64| {
        let bits = x.to_bits() as i64;
        if bits < 0 { i64::MIN - bits } else { bits }
    };
    key(a).abs_diff(key(b))
}

fn ulp_distance_f32(a: f32, b: f32) -> u64 {
    let key = |x: f32| {
        let bits = x.to_bits() as i32;
        i64::from(if bits < 0 { i32::MIN - bits } else { bits })
    };
    key(a).abs_diff(key(b))
}

/// Pure `+ − × ÷ min max` in f64, in the contract's order: must be bit-identical.
const TOL_MARKET_FEATURES: Tol = Tol::Exact;
/// Same for the HMM features.
const TOL_HMM_FEATURES: Tol = Tol::Exact;
/// `exp`/`ln` differ by an ulp between glibc and libm; the filter keeps that small.
const TOL_POSTERIOR: Tol = Tol::Close {
    rel: 1e-9,
    abs: 1e-12,
};
/// The observation is f64 maths cast to f32 once: bit-identical.
const TOL_OBS: Tol = Tol::Exact;
/// torch's f32 GEMM and tanh vs sequential f32 dot products and libm tanh.
const TOL_LOGITS: Tol = Tol::Close {
    rel: 1e-5,
    abs: 1e-5,
};
/// The top-2 logit gap (a difference of two logits).
const TOL_MARGIN: Tol = Tol::Close {
    rel: 1e-4,
    abs: 2e-5,
};
/// Decisions and money: exact.
const TOL_DECISION: Tol = Tol::Exact;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A decompressed golden CSV.
struct GoldenCsv {
    col: BTreeMap<String, usize>,
    rows: Vec<Vec<String>>,
}

impl GoldenCsv {
    fn read(path: &Path) -> GoldenCsv {
        let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut text = String::new();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut lines = text.lines();
        let header = lines.next().expect("golden header");
        let col = header
            .split(',')
            .enumerate()
            .map(|(i, n)| (n.to_owned(), i))
            .collect();
        let rows = lines
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect();
        GoldenCsv { col, rows }
    }

    fn get<'a>(&self, row: &'a [String], name: &str) -> &'a str {
        let i = *self
            .col
            .get(name)
            .unwrap_or_else(|| panic!("golden column {name} missing"));
        &row[i]
    }

    fn f64(&self, row: &[String], name: &str) -> f64 {
        let s = self.get(row, name);
        s.parse()
            .unwrap_or_else(|_| panic!("golden {name} {s:?} is not a number"))
    }

    fn f32(&self, row: &[String], name: &str) -> f32 {
        let s = self.get(row, name);
        s.parse()
            .unwrap_or_else(|_| panic!("golden {name} {s:?} is not a number"))
    }

    fn bar(&self, row: &[String]) -> (usize, Bar) {
        let idx = self.get(row, "idx").parse().expect("idx");
        let time = parse_time(self.get(row, "time")).expect("golden time");
        let bar = Bar {
            time,
            open: self.f64(row, "open"),
            high: self.f64(row, "high"),
            low: self.f64(row, "low"),
            close: self.f64(row, "close"),
            volume: self.f64(row, "volume"),
        };
        (idx, bar)
    }
}

/// One field outside its tolerance.
#[derive(Debug)]
struct Mismatch {
    idx: usize,
    field: String,
    rust: f64,
    golden: f64,
    tol: Tol,
}

/// Largest deviation seen in one class of fields.
#[derive(Debug, Default, Clone, Copy)]
struct Dev {
    max_abs: f64,
    max_rel: f64,
    max_ulp: u64,
    at_idx: usize,
}

#[derive(Debug, Default)]
struct Report {
    rows: usize,
    decisions: usize,
    checked: usize,
    mismatches: Vec<Mismatch>,
    n_mismatches: usize,
    devs: BTreeMap<&'static str, Dev>,
    min_margin_rust: f32,
    min_margin_golden: f32,
    min_margin_idx: usize,
}

impl Report {
    fn new() -> Report {
        Report {
            min_margin_rust: f32::INFINITY,
            min_margin_golden: f32::INFINITY,
            ..Report::default()
        }
    }

    /// Records one comparison; `f32` columns count ulps in f32.
    fn check(
        &mut self,
        class: &'static str,
        idx: usize,
        field: &str,
        rust: f64,
        golden: f64,
        tol: Tol,
    ) {
        let is_f32 = matches!(class, "observation" | "logits" | "margin");
        self.checked += 1;
        let abs = (rust - golden).abs();
        let rel = if golden != 0.0 {
            abs / golden.abs()
        } else {
            abs
        };
        let dev = self.devs.entry(class).or_default();
        if abs > dev.max_abs || abs.is_nan() {
            dev.max_abs = abs;
            dev.at_idx = idx;
        }
        dev.max_rel = dev.max_rel.max(rel);
        let ulps = if is_f32 {
            ulp_distance_f32(rust as f32, golden as f32)
        } else {
            ulp_distance(rust, golden)
        };
        dev.max_ulp = dev.max_ulp.max(ulps);
        if !tol.accepts(rust, golden) {
            self.n_mismatches += 1;
            if self.mismatches.len() < 20 {
                self.mismatches.push(Mismatch {
                    idx,
                    field: field.to_owned(),
                    rust,
                    golden,
                    tol,
                });
            }
        }
    }

    /// Compares one decided row.
    fn decision(&mut self, g: &GoldenCsv, row: &[String], idx: usize, d: &Decision) {
        self.decisions += 1;
        let names = ["f_roc", "f_atr", "f_ema", "f_range", "f_volume"];
        for (name, v) in names.iter().zip(d.market_features) {
            self.check(
                "market features",
                idx,
                name,
                v,
                g.f64(row, name),
                TOL_MARKET_FEATURES,
            );
        }
        let names = ["h_momentum", "h_consistency", "h_range"];
        for (name, v) in names.iter().zip(d.hmm_features) {
            self.check(
                "hmm features",
                idx,
                name,
                v,
                g.f64(row, name),
                TOL_HMM_FEATURES,
            );
        }
        for k in 0..d.n_states {
            let name = format!("post_{k}");
            self.check(
                "posterior",
                idx,
                &name,
                d.posterior[k],
                g.f64(row, &name),
                TOL_POSTERIOR,
            );
        }
        self.check(
            "regime",
            idx,
            "regime",
            d.regime as f64,
            g.f64(row, "regime"),
            TOL_DECISION,
        );
        for i in 0..d.obs_dim {
            let name = format!("obs_{i}");
            let want = f64::from(g.f32(row, &name));
            self.check(
                "observation",
                idx,
                &name,
                f64::from(d.obs[i]),
                want,
                TOL_OBS,
            );
        }
        for i in 0..d.logits.len() {
            let name = format!("logit_{i}");
            let want = f64::from(g.f32(row, &name));
            self.check(
                "logits",
                idx,
                &name,
                f64::from(d.logits[i]),
                want,
                TOL_LOGITS,
            );
        }
        let gm = g.f32(row, "margin");
        self.check(
            "margin",
            idx,
            "margin",
            f64::from(d.margin),
            f64::from(gm),
            TOL_MARGIN,
        );
        if d.margin < self.min_margin_rust {
            self.min_margin_rust = d.margin;
            self.min_margin_idx = idx;
        }
        self.min_margin_golden = self.min_margin_golden.min(gm);
        let p = d.position;
        let fields = [
            ("action", d.action.index() as f64),
            ("direction", f64::from(p.direction)),
            ("intensity", f64::from(p.intensity)),
            ("entry_price", p.entry_price),
            ("realized_pnl", d.realized_pnl),
            ("unrealized_pnl", d.unrealized_pnl),
        ];
        for (name, v) in fields {
            self.check("decision", idx, name, v, g.f64(row, name), TOL_DECISION);
        }
    }

    fn print(&self, title: &str) {
        println!(
            "== {title}: {} rows, {} decisions, {} values checked",
            self.rows, self.decisions, self.checked
        );
        for (class, dev) in &self.devs {
            println!(
                "   {class:<16} max |Δ| {:.3e} (idx {}), max rel {:.3e}, max {} ulp",
                dev.max_abs, dev.at_idx, dev.max_rel, dev.max_ulp
            );
        }
        println!(
            "   smallest top-2 logit margin: rust {:e} at idx {}, golden {:e}",
            self.min_margin_rust, self.min_margin_idx, self.min_margin_golden
        );
        println!("   mismatches: {}", self.n_mismatches);
        for m in &self.mismatches {
            println!(
                "   MISMATCH idx {} {}: rust {:?} golden {:?} ({:?})",
                m.idx, m.field, m.rust, m.golden, m.tol
            );
        }
    }
}

/// Compares a twin's step with a golden row: warm-up rows must be warm-up steps.
fn compare_row(report: &mut Report, g: &GoldenCsv, row: &[String], idx: usize, step: &Step) {
    report.rows += 1;
    let golden_decided = !g.get(row, "action").is_empty();
    match step {
        Step::Decision(d) if golden_decided => report.decision(g, row, idx, d),
        Step::WarmingUp(_) if !golden_decided => {}
        _ => {
            report.n_mismatches += 1;
            report.mismatches.push(Mismatch {
                idx,
                field: "warm-up vs decision".to_owned(),
                rust: f64::from(u8::from(matches!(step, Step::Decision(_)))),
                golden: f64::from(u8::from(golden_decided)),
                tol: Tol::Exact,
            });
        }
    }
}

fn state_from_json(v: &Value) -> TwinState {
    let i = |k: &str| v[k].as_i64().unwrap_or_else(|| panic!("state.{k}"));
    let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("state.{k}"));
    TwinState {
        last_bar_time: v["last_bar_time"].as_i64(),
        bars_seen: i("bars_seen") as u64,
        position_direction: i("position_direction") as i8,
        position_intensity: i("position_intensity") as u8,
        entry_price: f("entry_price"),
        realized_pnl: f("realized_pnl"),
        trades: i("trades") as u64,
    }
}

#[test]
fn golden_parity() {
    let root = repo_root();
    let manifest_path = root.join("tests/golden/manifest.json");
    let Ok(text) = std::fs::read_to_string(&manifest_path) else {
        println!(
            "no goldens: {} not found; parity not checked",
            manifest_path.display()
        );
        return;
    };
    let manifest: Value = serde_json::from_str(&text).expect("manifest.json");
    parity_of_manifest(&root, "tests/golden", &manifest);
}

/// The wide golden (`tests/golden/wide/`, issue 16 item 4): EURUSD_H1 trained with SB3
/// `net_arch=[256, 256]` and relu, not one of the 20 bundled models, decides like its Python
/// golden on 100% of bars (and restarts exactly).
#[test]
fn wide_golden_parity() {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("tests/golden/wide/manifest.json"))
        .expect("tests/golden/wide/manifest.json");
    let manifest: Value = serde_json::from_str(&text).expect("wide manifest.json");
    let files = manifest["files"].as_array().expect("manifest files");
    assert!(!files.is_empty(), "the wide manifest lists no files");
    for f in files {
        let zip = root.join(f["zip"].as_str().expect("zip"));
        let loaded = load_model(&zip).unwrap_or_else(|e| panic!("{}: {e}", zip.display()));
        assert_eq!(
            loaded.metadata.raw["policy"]["net_arch"],
            serde_json::json!([256, 256]),
            "{}",
            zip.display()
        );
        assert_eq!(loaded.metadata.raw["policy"]["activation"], "relu");
    }
    parity_of_manifest(&root, "tests/golden/wide", &manifest);
}

/// Every file of a golden manifest (and its restart scenario) against the Rust twin.
fn parity_of_manifest(root: &Path, dir: &str, manifest: &Value) {
    let files = manifest["files"].as_array().expect("manifest files");
    if files.is_empty() {
        println!("no goldens: manifest lists no files");
        return;
    }
    let mut failures = Vec::new();
    let mut overall_min_margin = f32::INFINITY;
    let mut uninterrupted: BTreeMap<String, Vec<(usize, Step, TwinState)>> = BTreeMap::new();
    for f in files {
        let name = f["model"].as_str().expect("model");
        let zip = root.join(f["zip"].as_str().expect("zip"));
        let loaded = match load_model(&zip) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: model does not load: {e}"));
                continue;
            }
        };
        if let Some(want) = f["zip_sha256"].as_str() {
            if loaded.zip_sha256 != want {
                failures.push(format!(
                    "{name}: models zip sha256 {} differs from the manifest's {want} (stale golden?)",
                    loaded.zip_sha256
                ));
                continue;
            }
        }
        let g = GoldenCsv::read(&root.join(dir).join(f["file"].as_str().expect("file")));
        let mut twin: Twin<'_> = Twin::new(&loaded.model).expect("twin");
        let mut report = Report::new();
        let mut steps = Vec::with_capacity(g.rows.len());
        for row in &g.rows {
            let (idx, bar) = g.bar(row);
            let step = twin
                .handle_bar(bar)
                .unwrap_or_else(|e| panic!("{name} idx {idx}: golden bar rejected: {e}"));
            compare_row(&mut report, &g, row, idx, &step);
            steps.push((idx, step, twin.state()));
        }
        if let Some(rows) = f["rows"].as_u64() {
            assert_eq!(rows as usize, report.rows, "{name}: row count");
        }
        report.print(name);
        overall_min_margin = overall_min_margin.min(report.min_margin_rust);
        if report.n_mismatches > 0 {
            failures.push(format!("{name}: {} mismatches", report.n_mismatches));
        }
        uninterrupted.insert(name.to_owned(), steps);

        if manifest["restart"]["model"].as_str() == Some(name) {
            if let Err(e) = restart_scenario(
                &root.join(dir),
                &manifest["restart"],
                &loaded.model,
                &uninterrupted[name],
            ) {
                failures.push(e);
            }
        }
    }
    println!("smallest top-2 logit margin over all goldens (rust): {overall_min_margin:e}");
    assert!(
        failures.is_empty(),
        "golden parity failed:\n{}",
        failures.join("\n")
    );
}

/// Restores the manifest's state, primes with the restart file's priming rows (in `dir`, the
/// manifest's folder), continues, and checks the result against the restart golden and against
/// the uninterrupted Rust run.
fn restart_scenario(
    dir: &Path,
    r: &Value,
    model: &oracle_core::Model,
    uninterrupted: &[(usize, Step, TwinState)],
) -> Result<(), String> {
    let name = r["model"].as_str().unwrap_or("?");
    let after = r["restart_after_idx"].as_u64().expect("restart_after_idx") as usize;
    let state = state_from_json(&r["state"]);
    // The uninterrupted twin's exported state at that bar must be the persisted one.
    let (_, _, mine) = uninterrupted
        .iter()
        .find(|(i, _, _)| *i == after)
        .ok_or("restart idx not in the stream")?;
    if *mine != state {
        return Err(format!(
            "{name} restart: exported state at idx {after} differs:\n rust   {mine:?}\n golden {state:?}"
        ));
    }
    let g = GoldenCsv::read(&dir.join(r["file"].as_str().expect("file")));
    let mut twin: Twin<'_> = Twin::restore(model, &state).map_err(|e| e.to_string())?;
    let mut report = Report::new();
    let mut primed = 0;
    let mut equal_to_uninterrupted = 0;
    for row in &g.rows {
        let (idx, bar) = g.bar(row);
        if idx <= after {
            twin.prime(bar)
                .map_err(|e| format!("{name} restart idx {idx}: {e}"))?;
            primed += 1;
            continue;
        }
        let step = twin
            .handle_bar(bar)
            .map_err(|e| format!("{name} restart idx {idx}: {e}"))?;
        compare_row(&mut report, &g, row, idx, &step);
        let (_, orig, _) = uninterrupted
            .iter()
            .find(|(i, _, _)| *i == idx)
            .ok_or_else(|| format!("{name} restart idx {idx} not in the uninterrupted stream"))?;
        if *orig != step {
            return Err(format!(
                "{name} restart: idx {idx} differs from the uninterrupted run:\n rust restarted {step:?}\n rust uninterrupted {orig:?}"
            ));
        }
        equal_to_uninterrupted += 1;
    }
    report.print(&format!(
        "{name} restart (after idx {after}, {primed} priming bars)"
    ));
    println!("   restarted == uninterrupted on {equal_to_uninterrupted} decided bars");
    if report.n_mismatches > 0 {
        return Err(format!(
            "{name} restart: {} mismatches",
            report.n_mismatches
        ));
    }
    Ok(())
}
