//! OCI images: the content-addressed store, import of archives and layouts, pulls from
//! registries, and safe unpacking of layers. This module owns everything under the image store
//! root and nothing else; it never runs a container (the engine does, from the layer
//! directories the store hands out) and never reads profiles.

pub mod auth;
pub mod builder;
pub mod digest;
pub mod import;
pub mod prebuild;
pub mod progress;
pub mod pull;
pub mod reference;
pub mod spec;
pub mod store;
pub mod unpack;
