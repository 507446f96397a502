//! The command line of the fleet store's leases (`tollgate --store URL lease …`):
//! the operator's side of `tollgate-store`, see docs/fleet-store.md.

use clap::Subcommand;

/// `tollgate --store URL lease …`
#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// List every lease of the fleet store, oldest first: its key, host, the block granted,
    /// what the host drew and reported, its state, expiry and in-doubt part. With --host, only
    /// that host's leases
    List,
    /// Reclaim every lease past its expiry (its host died or was cut off): the part never
    /// drawn returns to the key's account, the part drawn but not reported stays in doubt
    /// until the host settles it or an operator writes it off. Prints each reclaimed lease
    Reclaim,
    /// Give up a reclaimed lease's in-doubt part: it is counted as written off and never
    /// leased again, since its host may have granted it. Once per lease
    WriteOff {
        /// The lease's id, as `lease list` shows it (`7` or `#7`)
        #[arg(value_name = "LEASE", value_parser = parse_lease_id)]
        lease: i64,
    },
}

/// Parses a lease id: a positive integer, with or without the `#` that listings print.
fn parse_lease_id(text: &str) -> Result<i64, String> {
    let digits = text.trim().trim_start_matches('#');
    match digits.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(format!("\"{text}\" is not a lease id like 7 or #7")),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_lease_id;

    #[test]
    fn lease_ids_parse_with_or_without_the_hash() {
        assert_eq!(parse_lease_id("7"), Ok(7));
        assert_eq!(parse_lease_id("#12"), Ok(12));
        assert!(parse_lease_id("0").is_err());
        assert!(parse_lease_id("seven").is_err());
    }
}
