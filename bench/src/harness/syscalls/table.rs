//! The syscall table: calls per connection, one column per profiled
//! system, every syscall that some system makes at least
//! [`SHOWN_FROM`] times per connection, and the totals.

use super::Profile;

/// Syscalls rarer than this per connection (in every column) are left out
/// of the table; they stay in the JSON results and the total.
pub const SHOWN_FROM: f64 = 0.05;

/// The markdown table, or `None` when no profile has figures.
pub fn table(profiles: &[Profile]) -> Option<String> {
    let measured: Vec<&Profile> = profiles.iter().filter(|p| p.problem.is_none()).collect();
    if measured.is_empty() {
        return None;
    }
    let mut names: Vec<&str> = measured
        .iter()
        .flat_map(|p| p.calls.keys().map(String::as_str))
        .filter(|name| measured.iter().any(|p| p.per_connection_of(name) >= SHOWN_FROM))
        .collect();
    names.sort_unstable();
    names.dedup();
    // Most frequent first (by the largest of the columns), then by name.
    let largest = |name: &str| measured.iter().map(|p| p.per_connection_of(name)).fold(0.0, f64::max);
    names.sort_by(|a, b| largest(b).total_cmp(&largest(a)).then(a.cmp(b)));
    let mut table = String::from("| syscall |");
    let mut rule = String::from("|---|");
    for profile in &measured {
        table.push_str(&format!(" {} |", profile.system));
        rule.push_str("---:|");
    }
    table.push('\n');
    table.push_str(&rule);
    table.push('\n');
    for name in names {
        table.push_str(&format!("| `{name}` |"));
        for profile in &measured {
            table.push_str(&format!(" {:.2} |", profile.per_connection_of(name)));
        }
        table.push('\n');
    }
    table.push_str("| **total per connection** |");
    for profile in &measured {
        table.push_str(&format!(" **{:.1}** |", profile.per_connection));
    }
    table.push_str("\n| connections traced |");
    for profile in &measured {
        table.push_str(&format!(" {} |", profile.connections));
    }
    table.push('\n');
    Some(table)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn profile(system: &str, calls: &[(&str, u64)]) -> Profile {
        let calls: BTreeMap<String, u64> = calls.iter().map(|&(name, n)| (name.to_owned(), n)).collect();
        let total = calls.values().sum::<u64>();
        Profile {
            system: system.into(),
            connections: 100,
            total,
            per_connection: total as f64 / 100.0,
            calls,
            ..Profile::default()
        }
    }

    #[test]
    fn rare_syscalls_are_left_out_and_frequent_ones_lead() {
        let serve2 = profile("serve2-logging", &[("accept4", 100), ("write", 300), ("mmap", 1)]);
        let haproxy = profile("haproxy-logging", &[("accept4", 100), ("sendto", 200), ("mmap", 4)]);
        let table = table(&[serve2, haproxy]).unwrap();
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(rows[0], "| syscall | serve2-logging | haproxy-logging |");
        assert_eq!(rows[2], "| `write` | 3.00 | 0.00 |");
        assert_eq!(rows[3], "| `sendto` | 0.00 | 2.00 |");
        assert_eq!(rows[4], "| `accept4` | 1.00 | 1.00 |");
        // 0.01 and 0.04 per connection: under the cut in both columns.
        assert!(!table.contains("mmap"), "{table}");
        assert!(table.contains("| **total per connection** | **4.0** | **3.0** |"), "{table}");
    }

    #[test]
    fn no_figures_no_table() {
        let failed = Profile { system: "x".into(), problem: Some("strace missing".into()), ..Profile::default() };
        assert_eq!(table(&[failed]), None);
    }
}
