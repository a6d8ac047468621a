//! Ingot's gRPC protocol, package `ingot.v1`: the `Ingest` service and its
//! messages, with the tonic client ([`v1::ingest_client::IngestClient`]) and
//! server ([`v1::ingest_server::IngestServer`]) generated from
//! `proto/ingot/v1/ingest.proto`.

pub mod v1 {
    #![allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]
    tonic::include_proto!("ingot.v1");
}

pub mod route;
