//! Mount-time resolution, the first thing a filesystem does: a repo's revision is resolved to
//! its commit (and the repo id to its canonical form), a subfolder is checked, a bucket's info
//! is read and, when writable, write access is checked. Each step is a Hub call under the same
//! retry policy as every other effect. Requests that arrive meanwhile wait (`Wait::Mounted`);
//! the outcome is reported once through `Filesystem::poll_mounted`, as one line that names the
//! problem and what to try.
//!
//! Decided here: a 40-hex revision is pinned for good, a branch or tag is followed by the poll.

use std::sync::Arc;

use crate::config::{Source, WriteMode};
use crate::effect::{Completion, EffectFailure, FailureKind};
use crate::error::{Errno, FsError};
use crate::hub::{self, RepoKind, RepoRef};
use crate::time::Instant;

use super::flights::Purpose;
use super::parked::Wait;
use super::{Filesystem, Remote};

/// A step of the resolution (the purpose of its Hub call).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Revision,
    Subfolder,
    BucketInfo,
    WriteAccess,
    /// After a bucket lookup failed: is the id a repo of this kind? (for the error's hint)
    RepoProbe(RepoKind),
}

#[derive(Debug)]
pub(crate) enum Phase {
    Resolving {
        /// Repo probes still out, and the bucket error they will complete.
        probes: u8,
        bucket_error: Option<String>,
        is_repo: bool,
    },
    Mounted,
    Failed(FsError),
}

/// What a mount resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountInfo {
    /// `ns/name@<commit prefix>` or `bucket ns/name`, for messages and the file system name.
    pub label: String,
    pub writable: bool,
    /// The Hub says the repo or bucket is private (the frontend keeps it to its owner).
    pub private: bool,
}

fn is_commit_sha(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Filesystem {
    /// Send the first resolution step (from `Filesystem::new`).
    pub(crate) fn start_mount(&mut self) {
        let url = match &self.cfg.source {
            Source::Repo { repo, revision } => {
                if let Err(e) = hub::validate_revision(revision) {
                    return self.mount_failed(e);
                }
                self.cfg.urls.revision_info(repo, revision)
            }
            Source::Bucket { id } => self.cfg.urls.bucket_info(id),
        };
        let step = if matches!(self.cfg.source, Source::Repo { .. }) { Step::Revision } else { Step::BucketInfo };
        self.hub_get(Purpose::Mount(step), url);
    }

    pub(crate) fn is_mounted(&self) -> bool {
        matches!(self.mount, Phase::Mounted)
    }

    /// The outcome of a resolution step's Hub call (after retries).
    pub(crate) fn on_mount_step(&mut self, step: Step, result: Result<Completion, EffectFailure>, now: Instant) {
        let ok_body = match result {
            Ok(Completion::Http(resp)) if (200..300).contains(&resp.status) => Ok(resp.body),
            Ok(Completion::Http(resp)) => Err(hub::failure_from_response(&resp)),
            Ok(other) => Err(EffectFailure::new(FailureKind::Permanent, None, format!("unexpected {other:?}"))),
            Err(f) => Err(f),
        };
        if let Step::RepoProbe(_) = step {
            return self.on_probe(ok_body.is_ok());
        }
        let body = match ok_body {
            Ok(body) => body,
            Err(f) => return self.step_failed(step, &f),
        };
        match step {
            Step::Revision => {
                let Source::Repo { repo, revision } = &self.cfg.source else { return };
                let info = match hub::parse_revision_info(&body) {
                    Ok(info) => info,
                    Err(e) => return self.mount_failed(format!("resolving {}: {e}", repo.id)),
                };
                self.private = hub::parse_private(&body);
                let follow = (!is_commit_sha(revision)).then(|| revision.clone());
                let repo = RepoRef { kind: repo.kind, id: info.id };
                self.mtime_secs = info.last_modified.unwrap_or(0);
                self.read_token = Arc::from(self.cfg.urls.xet_read_token(&repo, &info.sha));
                let subfolder = self.cfg.subfolder.clone();
                let check = (!subfolder.is_empty()).then(|| self.cfg.urls.tree(&repo, &info.sha, &subfolder, 1));
                self.remote = Remote::Repo { repo, commit: info.sha, follow };
                match check {
                    Some(url) => {
                        self.hub_get(Purpose::Mount(Step::Subfolder), url);
                    }
                    None => self.mounted(now),
                }
            }
            Step::Subfolder => self.mounted(now),
            Step::BucketInfo => {
                let Source::Bucket { id } = &self.cfg.source else { return };
                let id = id.clone();
                let updated = match hub::parse_bucket_updated_at(&body) {
                    Ok(u) => u,
                    Err(e) => return self.mount_failed(format!("bucket {id}: {e}")),
                };
                self.mtime_secs = hub::parse_rfc3339(&updated).unwrap_or(0);
                self.private = hub::parse_private(&body);
                self.poll.remote_version = Some(updated);
                self.read_token = Arc::from(self.cfg.urls.bucket_xet_token(&id, false));
                self.write_token = Arc::from(self.cfg.urls.bucket_xet_token(&id, true));
                if self.cfg.writes.mode == WriteMode::ReadOnly {
                    self.mounted(now);
                } else {
                    let url = self.write_token.to_string();
                    self.hub_get(Purpose::Mount(Step::WriteAccess), url);
                }
            }
            Step::WriteAccess => self.mounted(now),
            Step::RepoProbe(_) => {}
        }
    }

    fn step_failed(&mut self, step: Step, f: &EffectFailure) {
        let what = match (&self.cfg.source, step) {
            (Source::Repo { repo, revision }, Step::Revision) => format!("resolving {} at {revision:?}", repo.id),
            (Source::Repo { repo, .. }, _) => format!("subfolder {:?} of {}", self.cfg.subfolder, repo.id),
            (Source::Bucket { id }, Step::WriteAccess) => {
                format!("write access to bucket {id} (mount with --read-only to only read)")
            }
            (Source::Bucket { id }, _) => format!("bucket {id}"),
        };
        let hint = match (f.status, self.cfg.has_token) {
            (Some(401), true) => " (is the token valid?)",
            (Some(401), false) => " (private or missing? pass --hf-token)",
            _ => "",
        };
        let line = match f.status {
            Some(status) => format!("{what}: HTTP {status}: {}{hint}", f.message),
            None => format!("{what}: {}", f.message),
        };
        match (&self.cfg.source, step) {
            // A bucket that does not exist may be a repo: ask, to say so.
            (Source::Bucket { id }, Step::BucketInfo) => {
                let id = id.clone();
                if let Phase::Resolving { probes, bucket_error, .. } = &mut self.mount {
                    *probes = 3;
                    *bucket_error = Some(line);
                }
                for kind in [RepoKind::Model, RepoKind::Dataset, RepoKind::Space] {
                    let url = self.cfg.urls.repo_info(&RepoRef { kind, id: id.clone() });
                    self.hub_get(Purpose::Mount(Step::RepoProbe(kind)), url);
                }
            }
            _ => self.mount_failed(line),
        }
    }

    fn on_probe(&mut self, found: bool) {
        let Phase::Resolving { probes, bucket_error, is_repo } = &mut self.mount else { return };
        *probes = probes.saturating_sub(1);
        *is_repo |= found;
        if *probes > 0 {
            return;
        }
        let mut line = bucket_error.take().unwrap_or_default();
        if *is_repo {
            if let Source::Bucket { id } = &self.cfg.source {
                line.push_str(&format!("; {id} is a repo: mount it with the `repo` command"));
            }
        }
        self.mount_failed(line);
    }

    pub(crate) fn mounted(&mut self, now: Instant) {
        if self.cfg.overlay && !self.overlay.walked {
            return self.walk_layer();
        }
        self.mount = Phase::Mounted;
        // Overlay: the local layer takes writes, the remote never does.
        let writable = self.cfg.writes.mode != WriteMode::ReadOnly || self.cfg.overlay;
        let label = match &self.remote {
            Remote::Repo { repo, commit, .. } => format!("{}@{}", repo.id, &commit[..commit.len().min(12)]),
            Remote::Bucket { id } => format!("bucket {id}"),
        };
        if let Remote::Repo { commit, follow: Some(_), .. } = &self.remote {
            self.poll.remote_version = Some(commit.clone());
        }
        if self.poll.remote_version.is_some() {
            self.poll.next = self.cfg.poll_interval.map(|every| now.saturating_add(every));
        }
        self.out.mounted = Some(Ok(MountInfo { label, writable, private: self.private }));
        self.wake(Wait::Mounted, now);
    }

    pub(crate) fn mount_failed(&mut self, line: String) {
        let err = FsError::new(Errno::Io, "mount_failed", line);
        self.mount = Phase::Failed(err.clone());
        self.out.mounted = Some(Err(err.clone()));
        self.fail_waiting(Wait::Mounted, &err);
    }
}
