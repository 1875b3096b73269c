//! kube-sim: an in-memory Kubernetes API server for faro's tests, demo and benchmarks.
