#!/usr/bin/env bash
# faro workload: tenants marked by a namespace label (see README, "faro workload").
exec faro workload \
  -label api.openshift.com/name -pattern 'toda-.*' \
  -namespace-pattern 'ocm-staging-(.+)' \
  -allowedgvrs v1/namespaces \
  -workloadgvrs v1/pods,v1/configmaps,v1/services,v1/secrets \
  -deniedgvrs coordination.k8s.io/v1/leases,events.k8s.io/v1/events "$@"
