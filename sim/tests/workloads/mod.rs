//! The simulation workloads, shared by the model-checking tests and the determinism test.
#![allow(dead_code)] // each test binary uses part of it

pub mod bucket;
pub mod overlay;
pub mod repo;
