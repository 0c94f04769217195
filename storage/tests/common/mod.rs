//! Code shared by the integration tests.
#![allow(dead_code)]

pub mod capture;
pub mod model;
