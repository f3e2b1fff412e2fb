//! CPU time of a process from `/proc/PID/stat` (proc(5): fields 14 `utime`, 15 `stime`, in
//! clock ticks, summed over all threads).

use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Clock ticks per second (`getconf CLK_TCK`), 100 if that cannot be run.
pub fn clock_ticks_per_sec() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t: &u64| t > 0)
        .unwrap_or(100)
}

/// `utime + stime` in ticks from the text of a `/proc/PID/stat` file.
pub fn parse_stat_ticks(stat: &str) -> Result<u64> {
    // The command name (field 2) is in parentheses and may hold spaces or ')'.
    let close = stat.rfind(')').context("no ')' in /proc stat")?;
    let rest = stat.get(close + 1..).context("truncated /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime = field 14, stime = field 15.
    let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) else {
        bail!("too few fields in /proc stat");
    };
    Ok(u.parse::<u64>()? + s.parse::<u64>()?)
}

/// CPU time (user + system) the process `pid` ("self" for this one) has used.
pub fn cpu_time(pid: &str, ticks_per_sec: u64) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = parse_stat_ticks(&text)?;
    Ok(Duration::from_secs_f64(
        ticks as f64 / ticks_per_sec.max(1) as f64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_after_odd_comm() {
        let s = "1234 (ve nue) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat_ticks(s).ok(), Some(287));
        assert!(parse_stat_ticks("1 (x) S 1 2").is_err());
    }

    #[test]
    fn reads_self() {
        let t = cpu_time("self", clock_ticks_per_sec());
        assert!(t.is_ok());
    }
}
