//! Config errors, each located at a line and column of the file and carrying a hint.

use std::{fmt, ops::Range, path::PathBuf};

use toml::{Spanned, de::DeTable};

/// Where every hint that has nothing more specific to say sends the user.
pub(super) const SEE_EXAMPLE: &str =
    "every setting, with its default, is shown in docs/failover.example.toml";

/// Why a config was rejected. Its `Display` is what `failover check-config` prints.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "{}: cannot read: {source}\n  hint: check the path (`-c PATH`) and that it is readable",
        path.display()
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file was read but is not a valid config; every problem found is listed.
    #[error("{}", Problems { origin, problems })]
    Invalid {
        origin: String,
        problems: Vec<Problem>,
    },
}

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
    pub hint: String,
}

impl Problem {
    fn at(text: &str, span: &Range<usize>, message: String, hint: String) -> Self {
        let (line, column) = line_column(text, span.start);
        Self {
            line,
            column,
            message,
            hint,
        }
    }

    /// A syntax or shape error (unknown key, wrong type, bad target) from the toml parser.
    pub(super) fn from_toml(text: &str, error: &toml::de::Error) -> Self {
        let message = error.message().trim_end().to_owned();
        let hint = if message.starts_with("unknown field") {
            format!("check the spelling and the [section] it is in; {SEE_EXAMPLE}")
        } else if message.starts_with("missing field") {
            format!("this setting has no default; {SEE_EXAMPLE}")
        } else if message.contains("duration") {
            "write durations with a unit, e.g. \"500ms\", \"2s\", \"1m\"".to_owned()
        } else if message.contains("socket address") {
            "write an IP address and a port, e.g. \"127.0.0.1:9469\"".to_owned()
        } else {
            SEE_EXAMPLE.to_owned()
        };
        Self::at(text, &error.span().unwrap_or(0..0), message, hint)
    }
}

struct Problems<'a> {
    origin: &'a str,
    problems: &'a [Problem],
}

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let Problem {
                line,
                column,
                message,
                hint,
            } = problem;
            write!(
                f,
                "{}:{line}:{column}: {message}\n  hint: {hint}",
                self.origin
            )?;
        }
        Ok(())
    }
}

/// A rule broken by an otherwise well-formed config, before it is located in the text.
#[derive(Debug)]
pub(super) struct Finding {
    /// Dotted paths (`uplink.1.mss`) of the values to blame, best first: the first one written
    /// in the file is pointed at (a rule between two values may involve a default).
    pub at: Vec<String>,
    pub message: String,
    pub hint: String,
}

impl Finding {
    pub(super) fn locate(self, text: &str, document: &Spanned<DeTable<'_>>) -> Problem {
        let span = self
            .at
            .iter()
            .find_map(|path| span_of(document, path).filter(|(_, exact)| *exact))
            .or_else(|| self.at.first().and_then(|path| span_of(document, path)))
            .map_or(0..0, |(span, _)| span);
        Problem::at(text, &span, self.message, self.hint)
    }
}

/// The span of the value at a dotted path, or of its deepest ancestor in the file (`false`).
fn span_of(document: &Spanned<DeTable<'_>>, path: &str) -> Option<(Range<usize>, bool)> {
    let mut segments = path.split('.');
    let Some(mut found) = document.get_ref().get(segments.next()?) else {
        return Some((document.span(), false));
    };
    for segment in segments {
        let next = match segment.parse::<usize>() {
            Ok(index) => found.get_ref().get(index),
            Err(_) => found.get_ref().get(segment),
        };
        match next {
            Some(value) => found = value,
            None => return Some((found.span(), false)),
        }
    }
    Some((found.span(), true))
}

/// 1-based line and character column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

#[cfg(test)]
mod tests {
    use super::line_column;

    #[test]
    fn line_column_counts_from_one_in_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // After the two-byte `é`: the third character of line 2.
        assert_eq!(line_column(text, 9), (2, 3));
        // Inside `é`: still at `é`.
        assert_eq!(line_column(text, 8), (2, 2));
        assert_eq!(line_column(text, 1000), (3, 1));
    }
}
