//! `mount.hf-mount SPEC DIR [-fnsv] [-o OPTIONS]` (a link to `hf-mount`): what
//! `mount -t hf-mount` (an `/etc/fstab` line) runs, and what `hf-mount SPEC DIR -o OPTIONS` does (an fstab line of type `fuse`
//! naming `hf-mount#SPEC`, which mount.fuse3 turns into that call). SPEC is `bucket:NS/NAME` or
//! `repo:ID` (with an optional subfolder); OPTIONS are the backend's flags written the mount
//! way (`token_file=/etc/hf/token,advanced_writes,ro`), plus `fuse` or `nfs` to pick the
//! backend (FUSE by default). Generic mount options (`defaults`, `_netdev`, `noauto`, `x-*`,
//! ...) are ignored. The mount is then started as `hf-mount start` does: in the background,
//! returning once it is live.

use std::ffi::OsString;

use anyhow::{bail, Result};

/// Options `mount(8)`, systemd or fstab conventions use that mean nothing to the mount itself.
const GENERIC: &[&str] = &[
    "defaults",
    "rw",
    "auto",
    "noauto",
    "user",
    "users",
    "nouser",
    "owner",
    "group",
    "_netdev",
    "nofail",
    "exec",
    "noexec",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "atime",
    "noatime",
    "relatime",
    "strictatime",
    "nodiratime",
    "async",
    "sync",
    "loud",
    "silent",
];

/// What to run: the backend (`--fuse` or not) and its arguments.
#[derive(Debug, PartialEq)]
pub struct Plan {
    pub fuse: bool,
    pub args: Vec<OsString>,
    /// `-f`: say what would run, run nothing.
    pub fake: bool,
    pub verbose: bool,
}

/// Is `arg` a mount spec (`bucket:...` or `repo:...`)?
pub fn is_spec(arg: &str) -> bool {
    let arg = arg.strip_prefix("hf-mount#").unwrap_or(arg);
    arg.starts_with("bucket:") || arg.starts_with("repo:")
}

/// Turn the helper's command line (without the program name) into a plan.
pub fn plan(argv: &[String]) -> Result<Plan> {
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let (mut fake, mut verbose, mut sloppy) = (false, false, false);
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-o" => match it.next() {
                Some(o) => options.extend(o.split(',').filter(|s| !s.is_empty()).map(str::to_string)),
                None => bail!("-o needs a value"),
            },
            // -t TYPE and -N NAMESPACE take a value; neither matters here.
            "-t" | "-N" => {
                it.next();
            }
            flags if flags.starts_with('-') && flags.len() > 1 && !flags.starts_with("--") => {
                for f in flags[1..].chars() {
                    match f {
                        'f' => fake = true,
                        'v' => verbose = true,
                        's' => sloppy = true,
                        'n' => {}
                        other => bail!("unknown option -{other}"),
                    }
                }
            }
            _ => positional.push(arg.clone()),
        }
    }
    let [spec, dir] = positional.as_slice() else {
        bail!("usage: mount.hf-mount bucket:NS/NAME|repo:ID DIR [-fnsv] [-o OPTIONS]");
    };
    let spec = spec.strip_prefix("hf-mount#").unwrap_or(spec);
    let (kind, id) = match spec.split_once(':') {
        Some((kind @ ("bucket" | "repo"), id)) if !id.is_empty() => (kind, id),
        _ => bail!("{spec:?} is not a mount source: write bucket:NS/NAME or repo:ID"),
    };
    let mut fuse = true;
    let mut flags: Vec<OsString> = Vec::new();
    for option in options {
        let (key, value) = match option.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (option.clone(), None),
        };
        match (key.as_str(), &value) {
            ("fuse", None) => fuse = true,
            ("nfs", None) => fuse = false,
            ("ro", None) if kind == "bucket" => flags.push("--read-only".into()),
            ("ro", None) => {}
            (k, _) if GENERIC.contains(&k) || k.starts_with("x-") || k == "comment" => {}
            (k, v) => {
                let flag = format!("--{}", k.replace('_', "-"));
                if !k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-') {
                    if sloppy {
                        continue;
                    }
                    bail!("unknown mount option {option:?}");
                }
                flags.push(flag.into());
                if let Some(v) = v {
                    flags.push(v.into());
                }
            }
        }
    }
    let mut args = flags;
    args.extend([kind.into(), id.into(), dir.into()]);
    Ok(Plan { fuse, args, fake, verbose })
}

/// Run the helper; `argv` without the program name.
pub fn run(argv: &[String]) -> Result<()> {
    let plan = plan(argv)?;
    if plan.fake || plan.verbose {
        let shown: Vec<String> = plan.args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        eprintln!("hf-mount start{} {}", if plan.fuse { " --fuse" } else { "" }, shown.join(" "));
    }
    if plan.fake {
        return Ok(());
    }
    crate::launcher::start(plan.fuse, plan.args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fstab_options_become_flags() {
        let p = plan(&strings(&[
            "bucket:alice/data",
            "/mnt/d",
            "-o",
            "defaults,_netdev,x-systemd.automount,token_file=/etc/hf/token,advanced_writes,ro",
        ]))
        .unwrap();
        assert!(p.fuse);
        let args: Vec<String> = p.args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            args,
            ["--token-file", "/etc/hf/token", "--advanced-writes", "--read-only", "bucket", "alice/data", "/mnt/d"]
        );
        let p = plan(&strings(&["hf-mount#repo:datasets/a/b", "/mnt/r", "-n", "-o", "nfs,revision=v1,ro"])).unwrap();
        assert!(!p.fuse);
        assert_eq!(p.args, ["--revision", "v1", "repo", "datasets/a/b", "/mnt/r"].map(OsString::from));
        assert!(plan(&strings(&["-fv", "bucket:a/b", "/m"])).unwrap().fake);
    }

    #[test]
    fn bad_specs_and_options_are_refused() {
        assert!(plan(&strings(&["a/b", "/m"])).is_err());
        assert!(plan(&strings(&["bucket:", "/m"])).is_err());
        assert!(plan(&strings(&["bucket:a/b"])).is_err());
        assert!(plan(&strings(&["bucket:a/b", "/m", "-o", "Weird!"])).is_err());
        assert!(plan(&strings(&["bucket:a/b", "/m", "-s", "-o", "Weird!"])).is_ok());
        assert!(plan(&strings(&["bucket:a/b", "/m", "-o"])).is_err());
        assert!(is_spec("hf-mount#bucket:a/b") && is_spec("repo:gpt2") && !is_spec("start"));
    }
}
