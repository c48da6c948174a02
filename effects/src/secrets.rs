//! Secrets the process holds (the user's Hub token, every xet token the Hub hands out), kept so
//! that `redact` can blank them out of any text before it is logged or printed. Process-wide:
//! whoever learns a secret calls `remember`; the log writer redacts every line it writes.

use std::borrow::Cow;
use std::sync::Mutex;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// At most this many secrets are kept (the newest; xet tokens are refreshed every few minutes).
const MAX_SECRETS: usize = 256;

/// Shorter strings are not treated as secrets (they would blank out ordinary words).
const MIN_SECRET_LEN: usize = 8;

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Remember `secret` so that it never reaches a log.
pub fn remember(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    let mut all = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    if all.iter().any(|s| s == secret) {
        return;
    }
    if all.len() >= MAX_SECRETS {
        all.remove(0);
    }
    all.push(secret.to_string());
}

/// `text` with every remembered secret replaced by `REDACTED`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let all = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for secret in all.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_secrets_are_blanked_and_short_strings_are_not_secrets() {
        remember("hf_abcdefghijklmnop");
        remember("short");
        let line = "GET /x Authorization: Bearer hf_abcdefghijklmnop (short) hf_abcdefghijklmnop";
        assert_eq!(redact(line), "GET /x Authorization: Bearer [redacted] (short) [redacted]");
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }
}
