//! Kernel-only router knobs for tests that run without the eBPF data plane: masquerade on the
//! uplinks and the choice of default uplink.

use anyhow::Result;

use super::cmd::Cmd;
use super::nft::{self, Table};
use super::plan::{Isp, Plan};

/// The router's NAT table; absent by default because the data plane is meant to do NAT.
const MASQ: Table = Table {
    family: "ip",
    name: "fo_masq",
};

/// Turns kernel masquerade (source NAT to the uplink's address) on the uplinks on or off.
pub fn set_masquerade(enabled: bool) -> Result<()> {
    if !enabled {
        return Table::remove_all(Plan::NS_ROUTER, &[MASQ]);
    }
    let uplinks: Vec<String> = Isp::ALL
        .iter()
        .map(|isp| format!("\"{}\"", isp.uplink().router.name))
        .collect();
    let rule = format!("oifname {{ {} }} masquerade", uplinks.join(", "));
    let body = nft::chain(
        "postrouting",
        "nat hook postrouting priority srcnat",
        "accept",
        &[rule],
    );
    MASQ.replace(Plan::NS_ROUTER, "kernel masquerade on the uplinks", &body)
}

/// True when kernel masquerade is on.
pub fn masquerade_enabled() -> Result<bool> {
    Ok(MASQ.comment(Plan::NS_ROUTER)?.is_some())
}

/// Makes `isp` the router's default uplink with a metric-0 default route, which wins over
/// the two base routes (metrics 100 and 200) that stay in place.
pub fn set_default_uplink(isp: Isp) -> Result<()> {
    let up = isp.uplink();
    Cmd::ip(Plan::NS_ROUTER)
        .args([
            "route",
            "replace",
            "default",
            "via",
            &up.gateway.ip().to_string(),
            "dev",
            up.router.name,
        ])
        .run()
        .map(drop)
}

/// The uplink of the router's best (lowest-metric) default route.
pub fn default_uplink() -> Result<Option<Isp>> {
    let routes = Cmd::ip(Plan::NS_ROUTER)
        .args(["-4", "route", "show", "default"])
        .run()?;
    Ok(routes
        .lines()
        .filter_map(parse_default_route)
        .min_by_key(|&(metric, _)| metric)
        .map(|(_, isp)| isp))
}

/// `default via 192.0.2.1 dev fiber metric 100` -> `(100, Fiber)`; no metric means 0.
fn parse_default_route(line: &str) -> Option<(u32, Isp)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| words.windows(2).find(|w| w[0] == key).map(|w| w[1]);
    let isp = Isp::from_router_dev(after("dev")?)?;
    let metric = after("metric").map_or(Some(0), |m| m.parse().ok())?;
    Some((metric, isp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_routes_are_parsed() {
        assert_eq!(
            parse_default_route("default via 192.0.2.1 dev fiber metric 100"),
            Some((100, Isp::Fiber))
        );
        assert_eq!(
            parse_default_route("default via 100.64.0.1 dev lte"),
            Some((0, Isp::Lte))
        );
        assert_eq!(parse_default_route("default via 10.10.0.1 dev lan0"), None);
    }
}
