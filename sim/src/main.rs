//! The `kube-sim` binary.
fn main() {}
