//! nfs-probe: drives hf-mount's NFS server with a client nobody here wrote (`nfs3_client`), for
//! the end-to-end tests. Every subcommand prints what it checked and exits non-zero on a
//! mismatch.
//!
//!   nfs-probe tree PORT MAXCOUNT          every path below the root, by READDIRPLUS pages
//!   nfs-probe sha256 PORT                 `sha256sum -c` lines for every regular file
//!   nfs-probe reads PORT PATH LOCAL N     N random READs compared with a local copy
//!   nfs-probe write PORT PATH MIB         MIB MiB written out of order (UNSTABLE), then COMMIT
//!   nfs-probe ops PORT                    every procedure and its error cases (writable mount)
//!   nfs-probe raw PORT                    malformed and unsupported RPC, pipelining
//!   nfs-probe unprivileged PORT           a client on an unprivileged port is not served
//!   nfs-probe handles save|check PORT FILE [PATH...]   handles kept across a server restart

mod client;
mod ops;
mod raw;

use anyhow::{bail, Context, Result};

fn port(s: &str) -> Result<u16> {
    s.parse().with_context(|| format!("bad port {s:?}"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = smol::block_on(run(&argv));
    if let Err(e) = outcome {
        eprintln!("nfs-probe: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: &[&str]) -> Result<()> {
    match args {
        ["tree", p, maxcount] => client::tree(port(p)?, maxcount.parse()?).await,
        ["sha256", p] => client::sha256_all(port(p)?).await,
        ["reads", p, path, local, n] => client::random_reads(port(p)?, path, local, n.parse()?).await,
        ["write", p, path, mib] => client::write_out_of_order(port(p)?, path, mib.parse()?).await,
        ["ops", p] => ops::run(port(p)?).await,
        ["raw", p] => raw::run(port(p)?).await,
        ["unprivileged", p] => raw::unprivileged_refused(port(p)?),
        ["handles", "save", p, file, paths @ ..] => client::save_handles(port(p)?, file, paths).await,
        ["handles", "check", p, file] => client::check_handles(port(p)?, file).await,
        _ => bail!("usage: see the comment at the top of tests/nfs-probe/src/main.rs"),
    }
}
