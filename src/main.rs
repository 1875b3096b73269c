//! faro: watch Kubernetes resources and write one JSON line per change.
fn main() {}
