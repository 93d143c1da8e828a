//! The Prometheus text exposition format, version 0.0.4: per metric family a `# HELP` and a
//! `# TYPE` line, then one line per sample, `name{label="value",...} number`. Hand-written:
//! the daemon needs gauges and counters rendered on request, not a registry.

use std::fmt::Write as _;

/// The `Content-Type` of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Gauge,
    Counter,
}

/// A sample's value: counters stay exact integers, whatever their size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Self::Int(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Int(u64::from(b))
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Self::Float(x)
    }
}

/// The text of one scrape, family after family.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a family; add its samples to what this returns.
    pub fn family(&mut self, name: &'static str, kind: Type, help: &str) -> Family<'_> {
        debug_assert!(
            kind != Type::Counter || name.ends_with("_total"),
            "counter {name} must end in _total"
        );
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let kind = match kind {
            Type::Gauge => "gauge",
            Type::Counter => "counter",
        };
        let _ = write!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        Family {
            out: &mut self.out,
            name,
        }
    }

    #[must_use]
    pub fn finish(self) -> String {
        self.out
    }
}

/// The samples of one family.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Family<'_> {
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Into<Value>) -> &mut Self {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape_label(value));
            }
            self.out.push('}');
        }
        let _ = match value.into() {
            Value::Int(n) => writeln!(self.out, " {n}"),
            Value::Float(x) if x.is_nan() => writeln!(self.out, " NaN"),
            Value::Float(x) if x.is_infinite() => {
                writeln!(self.out, " {}Inf", if x > 0.0 { '+' } else { '-' })
            }
            Value::Float(x) => writeln!(self.out, " {x}"),
        };
        self
    }
}

/// Label values escape `\`, `"` and newlines.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_have_help_type_and_labelled_samples() {
        let mut text = Exposition::default();
        text.family(
            "failover_uplink_active",
            Type::Gauge,
            "1 for the active uplink.",
        )
        .sample(&[("uplink", "fiber")], true)
        .sample(&[("uplink", "lte")], false);
        text.family("failover_switches_total", Type::Counter, "Switches.")
            .sample(&[], u64::MAX);
        text.family("failover_uplink_rtt_seconds", Type::Gauge, "RTT.\nMedian.")
            .sample(&[("uplink", "fiber"), ("x", "a\"b\\c\nd")], 0.0125)
            .sample(&[("uplink", "lte")], f64::NAN)
            .sample(&[("uplink", "dsl")], f64::INFINITY);
        assert_eq!(
            text.finish(),
            "# HELP failover_uplink_active 1 for the active uplink.\n\
             # TYPE failover_uplink_active gauge\n\
             failover_uplink_active{uplink=\"fiber\"} 1\n\
             failover_uplink_active{uplink=\"lte\"} 0\n\
             # HELP failover_switches_total Switches.\n\
             # TYPE failover_switches_total counter\n\
             failover_switches_total 18446744073709551615\n\
             # HELP failover_uplink_rtt_seconds RTT.\\nMedian.\n\
             # TYPE failover_uplink_rtt_seconds gauge\n\
             failover_uplink_rtt_seconds{uplink=\"fiber\",x=\"a\\\"b\\\\c\\nd\"} 0.0125\n\
             failover_uplink_rtt_seconds{uplink=\"lte\"} NaN\n\
             failover_uplink_rtt_seconds{uplink=\"dsl\"} +Inf\n"
        );
    }

    #[test]
    #[should_panic(expected = "must end in _total")]
    #[cfg(debug_assertions)]
    fn a_counter_without_total_is_a_bug() {
        Exposition::default().family("failover_switches", Type::Counter, "x");
    }
}
