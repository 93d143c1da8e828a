//! Median and spread of a handful of rounds.

use serde_json::{Value, json};

/// `n / d` as a float. Counts here stay far below 2^52, where f64 is exact.
#[expect(
    clippy::cast_precision_loss,
    reason = "packet and jiffy counts stay far below 2^52"
)]
pub fn ratio(n: u64, d: u64) -> f64 {
    n as f64 / d as f64
}

/// Median and spread of one measurement over its rounds.
#[derive(Clone, Debug)]
pub struct Summary {
    pub rounds: Vec<f64>,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Coefficient of variation (standard deviation / mean), in percent.
    pub cv_percent: f64,
}

impl Summary {
    /// `None` for no rounds.
    pub fn of(rounds: &[f64]) -> Option<Self> {
        let mut sorted = rounds.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n == 0 {
            return None;
        }
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            f64::midpoint(sorted[n / 2 - 1], sorted[n / 2])
        };
        let count = ratio(n as u64, 1);
        let mean = sorted.iter().sum::<f64>() / count;
        let variance = sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / count;
        Some(Self {
            rounds: rounds.to_vec(),
            median,
            min: sorted[0],
            max: sorted[n - 1],
            cv_percent: if mean == 0.0 {
                0.0
            } else {
                100.0 * variance.sqrt() / mean
            },
        })
    }

    pub fn to_json(&self) -> Value {
        json!({
            "median": self.median,
            "min": self.min,
            "max": self.max,
            "cv_percent": self.cv_percent,
            "rounds": self.rounds,
        })
    }
}
