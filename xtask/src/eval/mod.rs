//! `cargo xtask eval` and `cargo xtask bench`: measurements that go into EVAL.md and BENCHMARKS.md.

pub mod codec;
pub mod estimators;
pub mod music;
pub mod notes;
pub mod perform;
pub mod prior;
pub mod real_clips;
pub mod score;

use std::path::Path;

/// Replace the section between `<!-- begin NAME -->` and `<!-- end NAME -->` in a markdown file
/// (appending it if absent), so each measurement owns its part of the shared report.
pub fn write_section(path: &Path, name: &str, body: &str) -> anyhow::Result<()> {
    let begin = format!("<!-- begin {name} -->");
    let end = format!("<!-- end {name} -->");
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let section = format!("{begin}\n{}\n{end}", body.trim_end());
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if e > b => format!("{}{}{}", &old[..b], section, &old[e + end.len()..]),
        _ => format!("{}{}{}\n", old, if old.is_empty() || old.ends_with("\n\n") { "" } else { "\n" }, section),
    };
    std::fs::write(path, new)?;
    Ok(())
}

/// When and on what a measurement ran, for the report: "Measured 2026-12-06 at commit abc1234"
/// (with "plus uncommitted changes" when the tree differs from it).
pub fn provenance() -> String {
    let run = |cmd: &str, args: &[&str]| std::process::Command::new(cmd).args(args).output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let date = run("date", &["-u", "+%F"]).unwrap_or_default();
    let commit = run("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = run("git", &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    format!("Measured {date} at commit {commit}{}.", if dirty { " plus uncommitted changes" } else { "" })
}

/// Median and 99th percentile of a sample (sorted copy).
pub fn median_p99(values: &[f64]) -> (f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_replaced_in_place() {
        let dir = std::env::temp_dir().join(format!("cantor-section-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("R.md");
        std::fs::write(&p, "# Report\n").unwrap();
        write_section(&p, "a", "one").unwrap();
        write_section(&p, "b", "two").unwrap();
        write_section(&p, "a", "three").unwrap();
        let s = std::fs::read_to_string(&p).unwrap();
        assert!(s.contains("three") && s.contains("two") && !s.contains("one"), "{s}");
        assert!(s.find("three").unwrap() < s.find("two").unwrap());
        assert_eq!(median_p99(&[3.0, 1.0, 2.0]), (2.0, 3.0));
    }
}
