//! The files of a run: a growing log read line by line, traces as they finally stand.

use std::io::Write;

use oracle_procs::files::{Follow, final_csv, read_env_file};

fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("oracle-procs-files-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

#[test]
fn follow_returns_only_complete_lines_as_the_file_grows() {
    let d = tmpdir("grow");
    let path = d.join("x.log");
    let mut f = Follow::new(&path);
    assert!(f.lines().is_empty(), "no file yet: no lines");
    let mut w = std::fs::File::create(&path).expect("create");
    w.write_all(b"one\ntw").expect("write");
    assert_eq!(f.lines(), ["one"]);
    w.write_all(b"o\n\nthree").expect("write");
    assert_eq!(f.lines(), ["two", ""]);
    assert!(f.lines().is_empty());
    w.write_all(b"\n").expect("write");
    assert_eq!(f.lines(), ["three"]);
}

#[test]
fn a_line_written_in_two_parts_inside_a_utf8_character_comes_back_whole() {
    let d = tmpdir("utf8");
    let path = d.join("x.log");
    let mut f = Follow::new(&path);
    let line = "bar → NewOrderReq 9.0 ms\n".as_bytes();
    let cut = line
        .iter()
        .position(|&b| b >= 0x80)
        .expect("a multibyte character")
        + 1;
    let mut w = std::fs::File::create(&path).expect("create");
    w.write_all(&line[..cut]).expect("write");
    assert!(f.lines().is_empty());
    w.write_all(&line[cut..]).expect("write");
    assert_eq!(f.lines(), ["bar → NewOrderReq 9.0 ms"]);
}

#[test]
fn final_csv_keeps_the_last_row_per_time_in_time_order() {
    let text = "time,x\n2001-01-08T00:00:00Z,1\n2001-01-15T00:00:00Z,2\n2001-01-08T00:00:00Z,3\n";
    assert_eq!(
        final_csv(text),
        "time,x\n2001-01-08T00:00:00Z,3\n2001-01-15T00:00:00Z,2\n"
    );
}

#[test]
fn env_files_give_their_keys_without_comments() {
    let d = tmpdir("env");
    let path = d.join("c.env");
    std::fs::write(
        &path,
        "# simulator\nORACLE_CTRADER_ACCOUNT_ID = 42\n\nX=a=b\n",
    )
    .expect("env");
    assert_eq!(
        read_env_file(&path),
        [
            ("ORACLE_CTRADER_ACCOUNT_ID".to_string(), "42".to_string()),
            ("X".to_string(), "a=b".to_string())
        ]
    );
    assert!(read_env_file(&d.join("absent.env")).is_empty());
}
