//! The few nftables operations the lab needs: whole tables, replaced or removed atomically.
//! Every lab table carries a `comment` naming what it does, which `status` reads back.

use std::fmt::Write as _;

use anyhow::Result;

use super::cmd::Cmd;

/// An nftables table: family (`ip`, `inet`, `netdev`) and name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Table {
    pub family: &'static str,
    pub name: &'static str,
}

impl Table {
    /// Replaces the table with `body` (chains and rules) in one transaction, so it can be
    /// called again with another body.
    pub fn replace(self, ns: &str, comment: &str, body: &str) -> Result<()> {
        let mut script = String::new();
        self.write_removal(&mut script);
        let Self { family, name } = self;
        let _ = write!(
            script,
            "table {family} {name} {{\n  comment \"{comment}\"\n{body}}}\n"
        );
        run_script(ns, script)
    }

    /// Removes the tables if present, in one transaction.
    pub fn remove_all(ns: &str, tables: &[Self]) -> Result<()> {
        let mut script = String::new();
        for table in tables {
            table.write_removal(&mut script);
        }
        run_script(ns, script)
    }

    /// The comment of the table, or `None` when the table does not exist.
    pub fn comment(self, ns: &str) -> Result<Option<String>> {
        let listing = Cmd::in_ns(ns, "nft").args(["list", "tables"]).run()?;
        let wanted = format!("table {} {}", self.family, self.name);
        if !listing.lines().any(|line| line.trim() == wanted) {
            return Ok(None);
        }
        let table = Cmd::in_ns(ns, "nft")
            .args(["list", "table", self.family, self.name])
            .run()?;
        Ok(Some(parse_comment(&table).unwrap_or_default()))
    }

    /// Declaring the (possibly existing) table empty first makes the delete succeed always.
    fn write_removal(self, script: &mut String) {
        let Self { family, name } = self;
        let _ = write!(
            script,
            "table {family} {name} {{}}\ndelete table {family} {name}\n"
        );
    }
}

/// Applies an nft script atomically (`nft -f` runs it as one transaction).
fn run_script(ns: &str, script: String) -> Result<()> {
    Cmd::in_ns(ns, "nft")
        .args(["-f", "-"])
        .stdin(script)
        .run()
        .map(drop)
}

/// The first `comment "..."` line of an `nft list table` listing.
fn parse_comment(listing: &str) -> Option<String> {
    listing.lines().find_map(|line| {
        let quoted = line.trim().strip_prefix("comment \"")?;
        Some(quoted.strip_suffix('"').unwrap_or(quoted).to_owned())
    })
}

/// A base chain `NAME` on a hook with a default policy and rules, in nft syntax.
#[must_use]
pub fn chain(name: &str, hook: &str, policy: &str, rules: &[String]) -> String {
    let mut text = format!("  chain {name} {{\n    type {hook}; policy {policy};\n");
    for rule in rules {
        let _ = writeln!(text, "    {rule}");
    }
    text.push_str("  }\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_is_read_from_a_listing() {
        let listing = "table netdev fo_fault_loss {\n\tcomment \"loss=10\"\n\tchain x {\n";
        assert_eq!(parse_comment(listing).as_deref(), Some("loss=10"));
        assert_eq!(parse_comment("table ip t {\n}\n"), None);
    }
}
