//! End-to-end tests: each spawns the real `ingot` binary on port 0 over a
//! temporary data directory and talks to it as a client would.

mod auth;
mod bad_input;
mod cli;
mod crash;
mod export;
mod flight;
mod grpc;
mod http;
mod in_process;
mod mqtt;
mod postgres;
mod prometheus;
mod python;
mod replica;
#[path = "../../../tests/src/s3.rs"]
mod s3;
mod support;
mod time_series;
mod tls;
