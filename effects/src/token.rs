//! The Hub token a mount sends: none, a fixed one (`--hf-token`, `HF_TOKEN`, the token file
//! read at start), or `--token-file`, which is looked at before every Hub call (one `stat`) and
//! re-read whenever it changed, so a rotated or renewed token applies without a remount.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

#[derive(Clone, Default)]
pub enum Credential {
    #[default]
    Anonymous,
    Fixed(Arc<str>),
    File(Arc<TokenFile>),
}

impl Credential {
    pub fn fixed(token: String) -> Credential {
        crate::secrets::remember(&token);
        Credential::Fixed(token.into())
    }

    /// Watch `path`; it must hold a token now.
    pub fn file(path: &Path) -> Result<Credential, String> {
        let file = TokenFile { path: path.to_path_buf(), seen: Mutex::new(Seen::default()) };
        match file.current() {
            Some(_) => Ok(Credential::File(Arc::new(file))),
            None => Err(format!("--token-file {}: no token in it (or it cannot be read)", path.display())),
        }
    }

    /// The token to send now.
    pub fn current(&self) -> Option<Arc<str>> {
        match self {
            Credential::Anonymous => None,
            Credential::Fixed(t) => Some(t.clone()),
            Credential::File(f) => f.current(),
        }
    }
}

pub struct TokenFile {
    path: PathBuf,
    seen: Mutex<Seen>,
}

/// What the file looked like when last read, and the token it held.
#[derive(Default)]
struct Seen {
    stamp: Option<(SystemTime, u64, u64)>,
    token: Option<Arc<str>>,
}

impl TokenFile {
    fn current(&self) -> Option<Arc<str>> {
        use std::os::unix::fs::MetadataExt;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len(), m.ino()));
        if stamp.is_some() && stamp == seen.stamp {
            return seen.token.clone();
        }
        let token = std::fs::read_to_string(&self.path).ok().map(|s| s.trim().to_string()).filter(|t| !t.is_empty());
        match &token {
            Some(t) => {
                crate::secrets::remember(t);
                if seen.stamp.is_some() {
                    tracing::info!("token file {} changed: using its new token", self.path.display());
                }
            }
            None => tracing::warn!(
                "token file {} holds no token (or cannot be read): calls go unauthenticated until it does",
                self.path.display()
            ),
        }
        seen.stamp = stamp;
        seen.token = token.map(Arc::from);
        seen.token.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_is_re_read_when_it_changes() {
        let dir = std::env::temp_dir().join(format!("hfm-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        assert!(Credential::file(&path).is_err());
        std::fs::write(&path, "first\n").unwrap();
        let c = Credential::file(&path).unwrap();
        assert_eq!(c.current().as_deref(), Some("first"));
        // A rename over it (how secrets are rotated) is a new inode: seen at once.
        std::fs::write(dir.join("new"), "second-token").unwrap();
        std::fs::rename(dir.join("new"), &path).unwrap();
        assert_eq!(c.current().as_deref(), Some("second-token"));
        std::fs::write(&path, "").unwrap();
        assert_eq!(c.current(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
