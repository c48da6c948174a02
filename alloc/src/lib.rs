//! Huge pages for the heap of the mount's servers and of hubsim: each re-executes itself once at
//! start with glibc's `glibc.malloc.hugetlb=1` tunable (`GLIBC_TUNABLES`), which a running
//! program cannot set for itself.
//!
//! Why: an upload builds 64 MiB xorbs and the HTTP stack many buffers of a few MiB; glibc serves
//! the largest with a fresh `mmap` each time and grows and trims its heaps as they come and go,
//! so the same bytes are faulted in and zeroed 4 KiB at a time, over and over. Measured on the
//! write benchmark (512 MiB into a bucket): those faults were a quarter of the mount's CPU and
//! half of hubsim's; with the tunable (glibc then advises its heaps and large mappings onto
//! 2 MiB transparent huge pages) hubsim's CPU fell from 2.0-2.7 s to 0.95-1.5 s and the mount's
//! from 1.75-1.9 s to 1.3-1.5 s. Where the kernel's THP mode is `never`, or the C library is not
//! glibc, the tunable does nothing.

/// The tunable added to `GLIBC_TUNABLES`.
pub const TUNABLE: &str = "glibc.malloc.hugetlb=1";

/// Re-executes the current program with [`TUNABLE`], unless `GLIBC_TUNABLES` already chooses a
/// `glibc.malloc.hugetlb` value (the user's choice, or this call's in the re-executed program).
/// Call it first in `main`, before any thread starts. Returns only when no re-exec happens or it
/// failed (the program then runs on as it is).
pub fn reexec_with_huge_pages() {
    let current = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    let Some(tunables) = tunables_with_huge_pages(&current) else { return };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        let mut args = std::env::args_os();
        let argv0 = args.next().unwrap_or_default();
        let error =
            std::process::Command::new("/proc/self/exe").arg0(argv0).args(args).env("GLIBC_TUNABLES", tunables).exec();
        warn_no_huge_pages(&error);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = tunables;
}

/// `GLIBC_TUNABLES` with [`TUNABLE`] added, or `None` when it already sets the hugetlb tunable.
fn tunables_with_huge_pages(current: &str) -> Option<String> {
    if current.split(':').any(|t| t.starts_with("glibc.malloc.hugetlb=")) {
        return None;
    }
    Some(if current.is_empty() { TUNABLE.to_string() } else { format!("{current}:{TUNABLE}") })
}

/// Logging is not set up this early; one line on stderr says why the heap stays on small pages.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn warn_no_huge_pages(error: &std::io::Error) {
    eprintln!("note: running without huge pages for the heap (re-executing /proc/self/exe failed: {error})");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tunable_is_added_once_and_a_users_choice_is_kept() {
        assert_eq!(tunables_with_huge_pages("").as_deref(), Some(TUNABLE));
        assert_eq!(
            tunables_with_huge_pages("glibc.malloc.arena_max=2").as_deref(),
            Some("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1")
        );
        assert_eq!(tunables_with_huge_pages(TUNABLE), None);
        assert_eq!(tunables_with_huge_pages("glibc.malloc.hugetlb=0"), None);
        assert_eq!(tunables_with_huge_pages("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2"), None);
    }
}
