//! `weblet-gateway` (being built).
fn main() {}
