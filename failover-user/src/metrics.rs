//! The opt-in Prometheus endpoint (`[metrics] listen`): [`text`] writes the exposition format,
//! [`http`] answers `GET /metrics` with the text the daemon hands over the control channel,
//! so the daemon's state keeps one owner.

pub mod http;
pub mod text;

pub use http::spawn;
