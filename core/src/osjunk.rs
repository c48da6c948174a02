//! The names operating systems scatter into every folder they browse (Finder's `.DS_Store` and
//! `._*` AppleDouble files, Spotlight and trash folders, Windows' `Thumbs.db` and
//! `desktop.ini`, desktop trash folders). A bucket mount never creates them and hides them from
//! listings unless `--no-filter-os-files`.

/// Exact names (Windows' are matched without regard to case, as Windows names them).
const MAC: &[&str] = &[
    ".DS_Store",
    ".Spotlight-V100",
    ".Trashes",
    ".fseventsd",
    ".TemporaryItems",
    ".DocumentRevisions-V100",
    ".VolumeIcon.icns",
    ".apdisk",
    "__MACOSX",
];
const WINDOWS: &[&str] = &["Thumbs.db", "ehthumbs.db", "ehthumbs_vista.db", "desktop.ini", "$RECYCLE.BIN"];

/// Is `name` (one path component) an OS metadata file?
pub fn is_os_junk(name: &str) -> bool {
    MAC.contains(&name)
        || WINDOWS.iter().any(|w| w.eq_ignore_ascii_case(name))
        // AppleDouble resource forks, and the trash folders desktops make on removable media.
        || name.starts_with("._")
        || name.strip_prefix(".Trash-").is_some_and(|uid| !uid.is_empty() && uid.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_and_not_junk() {
        for junk in [".DS_Store", "._model.safetensors", "Thumbs.db", "Desktop.ini", ".Trash-1000", ".Spotlight-V100"] {
            assert!(is_os_junk(junk), "{junk}");
        }
        for fine in [".gitignore", ".git", "DS_Store", "_model", ".Trash-", ".Trash-me", "thumbs.db.bak", ".cache"] {
            assert!(!is_os_junk(fine), "{fine}");
        }
    }
}
