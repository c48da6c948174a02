//! A digest of everything a run handed out and answered: every effect (in the order core
//! produced it) and every reply (in the order it was delivered). Two runs of one seed must give
//! the same digest, in one process or two. Data is hashed as bytes, not formatted.

use hfm_core::{Effect, EffectId, Reply, StageEdit, StageOp, StreamOp, UploadSource};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    hash: u64,
    pub effects: u64,
    pub replies: u64,
}

impl Default for Trace {
    fn default() -> Self {
        Trace { hash: 0xcbf2_9ce4_8422_2325, effects: 0, replies: 0 }
    }
}

impl Trace {
    fn bytes(&mut self, data: &[u8]) {
        for b in data {
            self.hash = (self.hash ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
        self.hash = (self.hash ^ 0xff).wrapping_mul(0x100_0000_01b3);
    }

    /// Length and a sample of `data`.
    fn data(&mut self, data: &[u8]) {
        self.text(&data.len().to_string());
        let stride = (data.len() / 512).max(1);
        let sample: Vec<u8> = data.iter().step_by(stride).copied().collect();
        self.bytes(&sample);
    }

    fn text(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    pub fn effect(&mut self, id: EffectId, effect: &Effect) {
        self.effects += 1;
        self.text(&format!("effect {}", id.0));
        self.effect_body(effect);
    }

    /// A digest of `effect` alone: equal for every attempt of the same effect.
    pub fn key_of(effect: &Effect) -> u64 {
        let mut t = Trace::default();
        t.effect_body(effect);
        t.hash
    }

    fn effect_body(&mut self, effect: &Effect) {
        match effect {
            Effect::Upload { sources, .. } => {
                for s in sources {
                    match s {
                        UploadSource::Memory(chunks) => chunks.iter().for_each(|c| self.data(c)),
                        UploadSource::File(p) => self.text(p),
                    }
                }
            }
            Effect::Stream(StreamOp::Append { stream, data, .. }) => {
                self.text(&format!("append {stream}"));
                data.iter().for_each(|c| self.data(c));
            }
            Effect::Stage(StageOp::Edit { path, edits }) => {
                self.text(path);
                for e in edits {
                    match e {
                        StageEdit::Write { offset, data } => {
                            self.text(&format!("w{offset}"));
                            self.data(data);
                        }
                        StageEdit::Truncate { size } => self.text(&format!("t{size}")),
                    }
                }
            }
            Effect::HubPost { url, body, .. } => {
                self.text(url);
                self.bytes(body);
            }
            other => self.text(&format!("{other:?}")),
        }
    }

    pub fn reply(&mut self, tag: u64, reply: &Reply) {
        self.replies += 1;
        self.text(&format!("reply {tag}"));
        match reply {
            Reply::Data { data, eof } => {
                self.data(data);
                self.text(&format!("{eof}"));
            }
            other => self.text(&format!("{other:?}")),
        }
    }

    pub fn digest(&self) -> u64 {
        self.hash
    }
}
