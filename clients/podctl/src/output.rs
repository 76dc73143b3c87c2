//! What podctl prints: aligned tables and one-line messages for people, a stable JSON shape for
//! scripts (`--json`), and the exit code, which is the gRPC status code of what failed.

use std::io::Write as _;

use podconnect_client::{Code, Error, code_name};
use serde::Serialize;

/// A failure podctl reports: a gRPC code (the exit code), a message and what to do about it.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: Code,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

impl Failure {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into(), hint: None }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    /// A library error, with the usual advice for its code.
    pub(crate) fn from_client(error: &Error, endpoint: &str) -> Failure {
        let code = error.code();
        // The transport's own words run long; the first clause says it.
        let message = match error {
            Error::Status { code: Code::Unavailable, message } => {
                message.split(": ").take(3).collect::<Vec<_>>().join(": ")
            }
            other => other.message(),
        };
        let hint = match code {
            Code::Unavailable if error.is_status() => Some(format!("is the core running at {endpoint}? Check --endpoint, the profile and --ca")),
            Code::Unauthenticated => Some("the session ended or no credential was sent: run `podctl session start`, or give an operator token or certificate".into()),
            Code::PermissionDenied => Some("operator commands need --operator-token-file or an operator client certificate (--cert/--key)".into()),
            Code::DeadlineExceeded => Some("the core did not answer in time; try again".into()),
            Code::ResourceExhausted => Some("a limit was reached; wait a little and try again".into()),
            Code::FailedPrecondition if matches!(error, Error::NoSession) => None,
            _ => None,
        };
        Failure { code, message, hint }
    }

    /// Prints the failure: one line on standard error, and with `--json` an error object on
    /// standard output. Returns the exit code.
    pub(crate) fn report(&self, json: bool) -> u8 {
        let name = code_name(self.code);
        let line = match &self.hint {
            Some(hint) => format!("podctl: {name}: {} ({hint})", one_line(&self.message)),
            None => format!("podctl: {name}: {}", one_line(&self.message)),
        };
        let _ = writeln!(std::io::stderr(), "{line}");
        if json {
            let body = serde_json::json!({ "error": { "code": name, "message": self.message } });
            let _ = writeln!(std::io::stdout(), "{body}");
        }
        exit_code(self.code)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        if let Some(client) = error.downcast_ref::<Error>() {
            return Failure::from_client(client, "the endpoint");
        }
        // podctl's own checks (files, flags, config) are the caller's input being unusable.
        Failure::new(Code::InvalidArgument, format!("{error:#}"))
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The exit code of a gRPC code: its number (OK = 0, NOT_FOUND = 5, UNAVAILABLE = 14, …).
pub(crate) fn exit_code(code: Code) -> u8 {
    u8::try_from(code as i32).unwrap_or(2)
}

/// Prints one value as JSON on a line of standard output.
pub(crate) fn json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Prints a line for people on standard output.
pub(crate) fn line(text: &str) {
    let _ = writeln!(std::io::stdout(), "{text}");
}

/// Prints rows as a table whose columns line up (the last column is not padded).
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let format_row = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        text.trim_end().to_owned()
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", format_row(header.to_vec()));
    for row in rows {
        let _ = writeln!(out, "{}", format_row(row.iter().map(String::as_str).collect()));
    }
}

/// One CSV field (RFC 4180: quoted when it holds a comma, quote or line break).
pub(crate) fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_grpc_codes() {
        assert_eq!(exit_code(Code::Ok), 0);
        assert_eq!(exit_code(Code::NotFound), 5);
        assert_eq!(exit_code(Code::Unavailable), 14);
        assert_eq!(exit_code(Code::Unauthenticated), 16);
    }

    #[test]
    fn csv_quotes_only_what_needs_it() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("Xerox, Inc."), "\"Xerox, Inc.\"");
        assert_eq!(csv_field("a \"b\""), "\"a \"\"b\"\"\"");
    }
}
