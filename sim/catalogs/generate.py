#!/usr/bin/env python3
"""Rebuild the kube-sim discovery catalogs (Python 3.11+, standard library only).

    python3 sim/catalogs/generate.py [--kmock PATH] [--openshift PATH] [--check] [--counts]

Outputs, next to this script:
  vanilla.json.gz  the discovery of a real vanilla cluster, as shipped in the PyPI package kmock
                   (kmock/_internal/resources.json.gz), normalised to legacy APIResourceList documents.
  large.json.gz    /work/shared/data/openshift-discovery.json.gz (OpenShift 4) plus the Gateway API
                   group-versions of the kmock data plus the CRD groups of CRDS below, converted the
                   way apiextensions-apiserver serves CRDs.

Inputs (first match wins):
  kmock:     --kmock PATH | $KMOCK_RESOURCES | the installed kmock package | /tmp/kmock
             PATH may be the resources.json.gz itself, a kmock-*.whl, or a directory holding either
             (an unpacked wheel, or a `pip download kmock --no-deps -d DIR` directory).
  openshift: --openshift PATH | $OPENSHIFT_DISCOVERY | <repo>/../shared/data/openshift-discovery.json.gz

--check  rebuild in memory, compare with the committed files, write nothing; exit 1 on a difference.
--counts print the counts of both catalogs (as recorded in README.md).
Every run validates both catalogs (see validate()) and exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import re
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OPENSHIFT = HERE.parents[2] / "shared" / "data" / "openshift-discovery.json.gz"
KMOCK_MEMBER = "kmock/_internal/resources.json.gz"

# Verbs, in the order apiextensions-apiserver lists them for a custom resource and its subresources.
CRD_VERBS = ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"]
SUB_VERBS = ["get", "patch", "update"]

# Additional CRD groups of the large catalog, one row per (group, resource):
#   group | served versions | plural | Kind | scope (N namespaced, C cluster) | shortNames | categories | subresources
# singularName is the lower-cased Kind (the CRD default, true for every row). "-" means none.
# Subresources: "status" and/or "scale" (scale is served as autoscaling/v1 Scale).
# Names, kinds, scopes, short names, categories and subresources follow the projects' published CRDs
# (release lines given in README.md).
CRDS = """
# CSI external-snapshotter (v8)
snapshot.storage.k8s.io            | v1                  | volumesnapshotclasses         | VolumeSnapshotClass          | C | vsclass,vsclasses         | -                                 | -
snapshot.storage.k8s.io            | v1                  | volumesnapshotcontents        | VolumeSnapshotContent        | C | vsc,vscs                  | -                                 | status
snapshot.storage.k8s.io            | v1                  | volumesnapshots               | VolumeSnapshot               | N | vs                        | -                                 | status
groupsnapshot.storage.k8s.io       | v1alpha1            | volumegroupsnapshotclasses    | VolumeGroupSnapshotClass     | C | vgsclass,vgsclasses       | -                                 | -
groupsnapshot.storage.k8s.io       | v1alpha1            | volumegroupsnapshotcontents   | VolumeGroupSnapshotContent   | C | vgsc,vgscs                | -                                 | status
groupsnapshot.storage.k8s.io       | v1alpha1            | volumegroupsnapshots          | VolumeGroupSnapshot          | N | vgs                       | -                                 | status
# cert-manager (v1.14+)
cert-manager.io                    | v1                  | certificaterequests           | CertificateRequest           | N | cr,crs                    | cert-manager                      | status
cert-manager.io                    | v1                  | certificates                  | Certificate                  | N | cert,certs                | cert-manager                      | status
cert-manager.io                    | v1                  | clusterissuers                | ClusterIssuer                | C | -                         | cert-manager                      | status
cert-manager.io                    | v1                  | issuers                       | Issuer                       | N | -                         | cert-manager                      | status
acme.cert-manager.io               | v1                  | challenges                    | Challenge                    | N | -                         | cert-manager,cert-manager-acme    | status
acme.cert-manager.io               | v1                  | orders                        | Order                        | N | -                         | cert-manager,cert-manager-acme    | status
# Argo CD (v2), Argo Workflows (v3.5), Argo Rollouts (v1.7), Argo Events (v1.9): one group-version
argoproj.io                        | v1alpha1            | analysisruns                  | AnalysisRun                  | N | ar                        | -                                 | -
argoproj.io                        | v1alpha1            | analysistemplates             | AnalysisTemplate             | N | at                        | -                                 | -
argoproj.io                        | v1alpha1            | applications                  | Application                  | N | app,apps                  | -                                 | -
argoproj.io                        | v1alpha1            | applicationsets               | ApplicationSet               | N | appset,appsets            | -                                 | status
argoproj.io                        | v1alpha1            | appprojects                   | AppProject                   | N | appproj,appprojs          | -                                 | -
argoproj.io                        | v1alpha1            | clusteranalysistemplates      | ClusterAnalysisTemplate      | C | cat                       | -                                 | -
argoproj.io                        | v1alpha1            | clusterworkflowtemplates      | ClusterWorkflowTemplate      | C | clusterwftmpl,cwft        | -                                 | -
argoproj.io                        | v1alpha1            | cronworkflows                 | CronWorkflow                 | N | cwf,cronwf                | -                                 | -
argoproj.io                        | v1alpha1            | eventbus                      | EventBus                     | N | eb                        | -                                 | status
argoproj.io                        | v1alpha1            | eventsources                  | EventSource                  | N | es                        | -                                 | status
argoproj.io                        | v1alpha1            | experiments                   | Experiment                   | N | exp                       | -                                 | -
argoproj.io                        | v1alpha1            | rollouts                      | Rollout                      | N | ro                        | -                                 | status,scale
argoproj.io                        | v1alpha1            | sensors                       | Sensor                       | N | sn                        | -                                 | status
argoproj.io                        | v1alpha1            | workflowartifactgctasks       | WorkflowArtifactGCTask       | N | wfat                      | -                                 | status
argoproj.io                        | v1alpha1            | workfloweventbindings         | WorkflowEventBinding         | N | wfeb                      | -                                 | -
argoproj.io                        | v1alpha1            | workflows                     | Workflow                     | N | wf                        | -                                 | -
argoproj.io                        | v1alpha1            | workflowtaskresults           | WorkflowTaskResult           | N | -                         | -                                 | -
argoproj.io                        | v1alpha1            | workflowtasksets              | WorkflowTaskSet              | N | wfts                      | -                                 | status
argoproj.io                        | v1alpha1            | workflowtemplates             | WorkflowTemplate             | N | wftmpl                    | -                                 | -
# Tekton Pipelines (v0.59 LTS line) and Tekton Triggers (v0.26 line)
tekton.dev                         | v1beta1             | clustertasks                  | ClusterTask                  | C | -                         | tekton,tekton-pipelines           | status
tekton.dev                         | v1beta1             | customruns                    | CustomRun                    | N | -                         | tekton,tekton-pipelines           | status
tekton.dev                         | v1,v1beta1          | pipelineruns                  | PipelineRun                  | N | pr,prs                    | tekton,tekton-pipelines           | status
tekton.dev                         | v1,v1beta1          | pipelines                     | Pipeline                     | N | -                         | tekton,tekton-pipelines           | status
tekton.dev                         | v1beta1,v1alpha1    | stepactions                   | StepAction                   | N | -                         | tekton,tekton-pipelines           | status
tekton.dev                         | v1,v1beta1          | taskruns                      | TaskRun                      | N | tr,trs                    | tekton,tekton-pipelines           | status
tekton.dev                         | v1,v1beta1          | tasks                         | Task                         | N | -                         | tekton,tekton-pipelines           | status
tekton.dev                         | v1alpha1            | verificationpolicies          | VerificationPolicy           | N | -                         | tekton,tekton-pipelines           | -
resolution.tekton.dev              | v1beta1,v1alpha1    | resolutionrequests            | ResolutionRequest            | N | -                         | tekton,tekton-pipelines           | status
triggers.tekton.dev                | v1alpha1            | clusterinterceptors           | ClusterInterceptor           | C | ci                        | tekton,tekton-triggers            | status
triggers.tekton.dev                | v1beta1,v1alpha1    | clustertriggerbindings        | ClusterTriggerBinding        | C | ctb                       | tekton,tekton-triggers            | status
triggers.tekton.dev                | v1beta1,v1alpha1    | eventlisteners                | EventListener                | N | el                        | tekton,tekton-triggers            | status
triggers.tekton.dev                | v1alpha1            | interceptors                  | Interceptor                  | N | ni                        | tekton,tekton-triggers            | status
triggers.tekton.dev                | v1beta1,v1alpha1    | triggerbindings               | TriggerBinding               | N | tb                        | tekton,tekton-triggers            | status
triggers.tekton.dev                | v1beta1,v1alpha1    | triggers                      | Trigger                      | N | tri                       | tekton,tekton-triggers            | status
triggers.tekton.dev                | v1beta1,v1alpha1    | triggertemplates              | TriggerTemplate              | N | tt                        | tekton,tekton-triggers            | status
# Istio (1.22+)
networking.istio.io                | v1,v1beta1,v1alpha3 | destinationrules              | DestinationRule              | N | dr                        | istio-io,networking-istio-io      | status
networking.istio.io                | v1alpha3            | envoyfilters                  | EnvoyFilter                  | N | -                         | istio-io,networking-istio-io      | status
networking.istio.io                | v1,v1beta1,v1alpha3 | gateways                      | Gateway                      | N | gw                        | istio-io,networking-istio-io      | status
networking.istio.io                | v1beta1             | proxyconfigs                  | ProxyConfig                  | N | -                         | istio-io,networking-istio-io      | status
networking.istio.io                | v1,v1beta1,v1alpha3 | serviceentries                | ServiceEntry                 | N | se                        | istio-io,networking-istio-io      | status
networking.istio.io                | v1,v1beta1,v1alpha3 | sidecars                      | Sidecar                      | N | -                         | istio-io,networking-istio-io      | status
networking.istio.io                | v1,v1beta1,v1alpha3 | virtualservices               | VirtualService               | N | vs                        | istio-io,networking-istio-io      | status
networking.istio.io                | v1,v1beta1,v1alpha3 | workloadentries               | WorkloadEntry                | N | we                        | istio-io,networking-istio-io      | status
networking.istio.io                | v1,v1beta1,v1alpha3 | workloadgroups                | WorkloadGroup                | N | wg                        | istio-io,networking-istio-io      | status
security.istio.io                  | v1,v1beta1          | authorizationpolicies         | AuthorizationPolicy          | N | ap                        | istio-io,security-istio-io        | status
security.istio.io                  | v1,v1beta1          | peerauthentications           | PeerAuthentication           | N | pa                        | istio-io,security-istio-io        | status
security.istio.io                  | v1,v1beta1          | requestauthentications        | RequestAuthentication        | N | ra                        | istio-io,security-istio-io        | status
telemetry.istio.io                 | v1,v1alpha1         | telemetries                   | Telemetry                    | N | telemetry                 | istio-io,telemetry-istio-io       | status
extensions.istio.io                | v1alpha1            | wasmplugins                   | WasmPlugin                   | N | -                         | istio-io,extensions-istio-io      | status
# Knative Serving and Eventing (1.12-1.15 line)
serving.knative.dev                | v1                  | configurations                | Configuration                | N | config,cfg                | all,knative,serving               | status
serving.knative.dev                | v1beta1             | domainmappings                | DomainMapping                | N | dm                        | all,knative,serving               | status
serving.knative.dev                | v1                  | revisions                     | Revision                     | N | rev                       | all,knative,serving               | status
serving.knative.dev                | v1                  | routes                        | Route                        | N | rt                        | all,knative,serving               | status
serving.knative.dev                | v1                  | services                      | Service                      | N | kservice,ksvc             | all,knative,serving               | status
autoscaling.internal.knative.dev   | v1alpha1            | metrics                       | Metric                       | N | -                         | knative-internal,autoscaling      | status
autoscaling.internal.knative.dev   | v1alpha1            | podautoscalers                | PodAutoscaler                | N | kpa,pa                    | knative-internal,autoscaling      | status
networking.internal.knative.dev    | v1alpha1            | certificates                  | Certificate                  | N | kcert                     | knative-internal,networking       | status
networking.internal.knative.dev    | v1alpha1            | clusterdomainclaims           | ClusterDomainClaim           | C | cdc                       | knative-internal,networking       | -
networking.internal.knative.dev    | v1alpha1            | ingresses                     | Ingress                      | N | kingress,king             | knative-internal,networking       | status
networking.internal.knative.dev    | v1alpha1            | serverlessservices            | ServerlessService            | N | sks                       | knative-internal,networking       | status
eventing.knative.dev               | v1                  | brokers                       | Broker                       | N | -                         | all,knative,eventing              | status
eventing.knative.dev               | v1beta2             | eventtypes                    | EventType                    | N | -                         | all,knative,eventing              | status
eventing.knative.dev               | v1                  | triggers                      | Trigger                      | N | -                         | all,knative,eventing              | status
messaging.knative.dev              | v1                  | channels                      | Channel                      | N | ch                        | all,knative,messaging,channel     | status
messaging.knative.dev              | v1                  | inmemorychannels              | InMemoryChannel              | N | imc                       | all,knative,messaging,channel     | status
messaging.knative.dev              | v1                  | subscriptions                 | Subscription                 | N | sub                       | all,knative,messaging             | status
sources.knative.dev                | v1                  | apiserversources              | ApiServerSource              | N | -                         | all,knative,sources               | status
sources.knative.dev                | v1                  | containersources              | ContainerSource              | N | -                         | all,knative,sources               | status
sources.knative.dev                | v1                  | pingsources                   | PingSource                   | N | -                         | all,knative,sources               | status
sources.knative.dev                | v1                  | sinkbindings                  | SinkBinding                  | N | -                         | all,knative,sources,bindings      | status
flows.knative.dev                  | v1                  | parallels                     | Parallel                     | N | -                         | all,knative,flows                 | status
flows.knative.dev                  | v1                  | sequences                     | Sequence                     | N | -                         | all,knative,flows                 | status
# Velero (v1.13/v1.14)
velero.io                          | v1                  | backuprepositories            | BackupRepository             | N | -                         | -                                 | -
velero.io                          | v1                  | backups                       | Backup                       | N | -                         | -                                 | -
velero.io                          | v1                  | backupstoragelocations        | BackupStorageLocation        | N | bsl                       | -                                 | status
velero.io                          | v1                  | deletebackuprequests          | DeleteBackupRequest          | N | -                         | -                                 | -
velero.io                          | v1                  | downloadrequests              | DownloadRequest              | N | -                         | -                                 | -
velero.io                          | v1                  | podvolumebackups              | PodVolumeBackup              | N | -                         | -                                 | -
velero.io                          | v1                  | podvolumerestores             | PodVolumeRestore             | N | -                         | -                                 | -
velero.io                          | v1                  | restores                      | Restore                      | N | -                         | -                                 | -
velero.io                          | v1                  | schedules                     | Schedule                     | N | -                         | -                                 | status
velero.io                          | v1                  | serverstatusrequests          | ServerStatusRequest          | N | ssr                       | -                                 | -
velero.io                          | v1                  | volumesnapshotlocations       | VolumeSnapshotLocation       | N | vsl                       | -                                 | -
velero.io                          | v2alpha1            | datadownloads                 | DataDownload                 | N | -                         | -                                 | -
velero.io                          | v2alpha1            | datauploads                   | DataUpload                   | N | -                         | -                                 | -
# KEDA (2.10+)
keda.sh                            | v1alpha1            | clustertriggerauthentications | ClusterTriggerAuthentication | C | cta,clustertriggerauth    | -                                 | status
keda.sh                            | v1alpha1            | scaledjobs                    | ScaledJob                    | N | sj                        | -                                 | status
keda.sh                            | v1alpha1            | scaledobjects                 | ScaledObject                 | N | so                        | -                                 | status
keda.sh                            | v1alpha1            | triggerauthentications        | TriggerAuthentication        | N | ta,triggerauth            | -                                 | status
# External Secrets Operator (v0.9 line)
external-secrets.io                | v1beta1             | clusterexternalsecrets        | ClusterExternalSecret        | C | ces                       | externalsecrets                   | status
external-secrets.io                | v1beta1,v1alpha1    | clustersecretstores           | ClusterSecretStore           | C | css                       | externalsecrets                   | status
external-secrets.io                | v1beta1,v1alpha1    | externalsecrets               | ExternalSecret               | N | es                        | externalsecrets                   | status
external-secrets.io                | v1alpha1            | pushsecrets                   | PushSecret                   | N | -                         | pushsecrets                       | status
external-secrets.io                | v1beta1,v1alpha1    | secretstores                  | SecretStore                  | N | ss                        | externalsecrets                   | status
generators.external-secrets.io     | v1alpha1            | acraccesstokens               | ACRAccessToken               | N | acraccesstoken            | acraccesstoken                    | status
generators.external-secrets.io     | v1alpha1            | ecrauthorizationtokens        | ECRAuthorizationToken        | N | ecrauthorizationtoken     | ecrauthorizationtoken             | status
generators.external-secrets.io     | v1alpha1            | fakes                         | Fake                         | N | fake                      | fake                              | status
generators.external-secrets.io     | v1alpha1            | gcraccesstokens               | GCRAccessToken               | N | gcraccesstoken            | gcraccesstoken                    | status
generators.external-secrets.io     | v1alpha1            | passwords                     | Password                     | N | password                  | password                          | status
generators.external-secrets.io     | v1alpha1            | vaultdynamicsecrets           | VaultDynamicSecret           | N | vaultdynamicsecret        | vaultdynamicsecret                | status
generators.external-secrets.io     | v1alpha1            | webhooks                      | Webhook                      | N | webhook                   | webhook                           | status
# Cluster API core provider (v1.6/v1.7 line)
cluster.x-k8s.io                   | v1beta1             | clusterclasses                | ClusterClass                 | N | cc                        | cluster-api                       | status
cluster.x-k8s.io                   | v1beta1             | clusters                      | Cluster                      | N | cl                        | cluster-api                       | status
cluster.x-k8s.io                   | v1beta1             | machinedeployments            | MachineDeployment            | N | md                        | cluster-api                       | status,scale
cluster.x-k8s.io                   | v1beta1             | machinehealthchecks           | MachineHealthCheck           | N | mhc                       | cluster-api                       | status
cluster.x-k8s.io                   | v1beta1             | machinepools                  | MachinePool                  | N | mp                        | cluster-api                       | status,scale
cluster.x-k8s.io                   | v1beta1             | machines                      | Machine                      | N | ma                        | cluster-api                       | status
cluster.x-k8s.io                   | v1beta1             | machinesets                   | MachineSet                   | N | ms                        | cluster-api                       | status,scale
addons.cluster.x-k8s.io            | v1beta1             | clusterresourcesetbindings    | ClusterResourceSetBinding    | N | -                         | cluster-api                       | -
addons.cluster.x-k8s.io            | v1beta1             | clusterresourcesets           | ClusterResourceSet           | N | -                         | cluster-api                       | status
ipam.cluster.x-k8s.io              | v1beta1,v1alpha1    | ipaddressclaims               | IPAddressClaim               | N | -                         | cluster-api                       | status
ipam.cluster.x-k8s.io              | v1beta1,v1alpha1    | ipaddresses                   | IPAddress                    | N | -                         | cluster-api                       | -
runtime.cluster.x-k8s.io           | v1alpha1            | extensionconfigs              | ExtensionConfig              | C | ext                       | cluster-api                       | status
"""

# Group-versions taken verbatim from the kmock (vanilla) data into the large catalog, inserted before
# metrics.k8s.io/v1beta1 as in the vanilla data.
VANILLA_GVS_FOR_LARGE = ["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"]

# Not counted as watchable even if their verbs would say so (they do not: kept for clarity).
NON_WATCHABLE_NAMES = {"componentstatuses", "bindings"}
NON_WATCHABLE_GROUPS = {"metrics.k8s.io"}


# --------------------------------------------------------------------------------------------- inputs

def load_kmock(arg: str | None) -> list:
    candidates: list[Path] = []
    for p in (arg, os.environ.get("KMOCK_RESOURCES")):
        if p:
            candidates.append(Path(p))
            break
    else:
        try:
            import importlib.util
            spec = importlib.util.find_spec("kmock")
            if spec and spec.submodule_search_locations:
                candidates.append(Path(list(spec.submodule_search_locations)[0]) / "_internal" / "resources.json.gz")
        except Exception:
            pass
        candidates.append(Path("/tmp/kmock"))
    for cand in candidates:
        data = _read_kmock_from(cand)
        if data is not None:
            return json.loads(gzip.decompress(data))
    sys.exit(f"kmock resources.json.gz not found (tried {', '.join(map(str, candidates))}); "
             "run: pip download kmock --no-deps -d /tmp/kmock && (cd /tmp/kmock && unzip -o *.whl)")


def _read_kmock_from(path: Path) -> bytes | None:
    if path.is_file():
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as z:
                return z.read(KMOCK_MEMBER)
        return path.read_bytes()
    if path.is_dir():
        direct = path / KMOCK_MEMBER
        if direct.is_file():
            return direct.read_bytes()
        wheels = sorted(path.glob("kmock-*.whl"))
        if wheels:
            with zipfile.ZipFile(wheels[-1]) as z:
                return z.read(KMOCK_MEMBER)
    return None


def load_openshift(arg: str | None) -> list:
    path = Path(arg or os.environ.get("OPENSHIFT_DISCOVERY") or DEFAULT_OPENSHIFT)
    if not path.is_file():
        sys.exit(f"openshift discovery not found at {path} (pass --openshift PATH)")
    return json.loads(gzip.decompress(path.read_bytes()))


# ------------------------------------------------------------------------------------------- building

def normalise(doc: dict) -> dict:
    """An APIResourceList with kind, apiVersion, groupVersion, resources first; entries untouched."""
    out = {"kind": "APIResourceList", "apiVersion": doc.get("apiVersion") or "v1",
           "groupVersion": doc["groupVersion"], "resources": doc.get("resources", [])}
    for k, v in doc.items():
        if k not in out:
            out[k] = v
    return out


def version_key(version: str):
    """Kubernetes version priority: GA > beta > alpha, then higher numbers first (sort ascending)."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, 0, 0, version)
    major, level, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[level]
    return (rank, -major, -minor, "")


def parse_crds(table: str) -> list[dict]:
    rows = []
    for line in table.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cells = [c.strip() for c in line.split("|")]
        if len(cells) != 8:
            raise ValueError(f"bad CRD row: {line!r}")
        group, versions, plural, kind, scope, short, cats, subs = cells
        if scope not in ("N", "C"):
            raise ValueError(f"bad scope in {line!r}")
        subset = set() if subs == "-" else set(subs.split(","))
        if not subset <= {"status", "scale"}:
            raise ValueError(f"bad subresources in {line!r}")
        rows.append({
            "group": group, "versions": versions.split(","), "plural": plural, "kind": kind,
            "namespaced": scope == "N",
            "shortNames": [] if short == "-" else short.split(","),
            "categories": [] if cats == "-" else cats.split(","),
            "status": "status" in subset, "scale": "scale" in subset,
        })
    return rows


def crd_entries(row: dict) -> list[dict]:
    """Discovery entries for one CRD in one served version, as apiextensions-apiserver builds them."""
    main = {"name": row["plural"], "singularName": row["kind"].lower(), "namespaced": row["namespaced"],
            "kind": row["kind"], "verbs": list(CRD_VERBS)}
    if row["shortNames"]:
        main["shortNames"] = list(row["shortNames"])
    if row["categories"]:
        main["categories"] = list(row["categories"])
    out = [main]
    if row["status"]:
        out.append({"name": row["plural"] + "/status", "singularName": "", "namespaced": row["namespaced"],
                    "kind": row["kind"], "verbs": list(SUB_VERBS)})
    if row["scale"]:
        out.append({"name": row["plural"] + "/scale", "singularName": "", "namespaced": row["namespaced"],
                    "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": list(SUB_VERBS)})
    return out


def crd_documents(rows: list[dict]) -> list[dict]:
    by_gv: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        for v in row["versions"]:
            by_gv.setdefault((row["group"], v), []).append(row)
    docs = []
    for group in sorted({g for g, _ in by_gv}):
        for version in sorted((v for g, v in by_gv if g == group), key=version_key):
            resources = []
            for row in sorted(by_gv[(group, version)], key=lambda r: r["plural"]):
                resources.extend(crd_entries(row))
            docs.append({"kind": "APIResourceList", "apiVersion": "v1",
                         "groupVersion": f"{group}/{version}", "resources": resources})
    return docs


def build_vanilla(kmock: list) -> list:
    return [normalise(d) for d in kmock]


def build_large(kmock: list, openshift: list) -> list:
    docs = [normalise(d) for d in openshift]
    present = {d["groupVersion"] for d in docs}
    extra = [normalise(d) for d in kmock if d["groupVersion"] in VANILLA_GVS_FOR_LARGE]
    if [d["groupVersion"] for d in extra] != VANILLA_GVS_FOR_LARGE:
        raise ValueError("gateway group-versions missing from the kmock data")
    at = next(i for i, d in enumerate(docs) if d["groupVersion"] == "metrics.k8s.io/v1beta1")
    docs[at:at] = extra
    added = crd_documents(parse_crds(CRDS))
    clash = present & {d["groupVersion"] for d in added + extra}
    if clash:
        raise ValueError(f"added group-versions already in the OpenShift data: {sorted(clash)}")
    return docs + added


def encode(docs: list) -> bytes:
    raw = json.dumps(docs, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(raw)
    return buf.getvalue()


# --------------------------------------------------------------------------------- checks and counts

def split_gv(gv: str) -> tuple[str, str]:
    return tuple(gv.split("/", 1)) if "/" in gv else ("", gv)


def validate(name: str, docs: list) -> list[str]:
    errors = []
    seen = set()
    groups: dict[str, list[str]] = {}
    for doc in docs:
        gv = doc.get("groupVersion")
        if doc.get("kind") != "APIResourceList" or doc.get("apiVersion") != "v1" or not gv:
            errors.append(f"{name}: {gv}: not a v1 APIResourceList")
            continue
        g, v = split_gv(gv)
        groups.setdefault(g, []).append(v)
        tops = {r.get("name") for r in doc["resources"] if "/" not in r.get("name", "")}
        for r in doc["resources"]:
            for field in ("name", "kind", "verbs", "namespaced"):
                if field not in r:
                    errors.append(f"{name}: {gv}: entry {r.get('name')!r} has no {field}")
            if not isinstance(r.get("verbs"), list) or not isinstance(r.get("namespaced"), bool):
                errors.append(f"{name}: {gv}/{r.get('name')}: verbs must be a list, namespaced a bool")
            key = (gv, r.get("name"))
            if key in seen:
                errors.append(f"{name}: duplicate {gv} {r.get('name')}")
            seen.add(key)
            if "/" in r.get("name", ""):
                parent = r["name"].split("/", 1)[0]
                if parent not in tops:
                    errors.append(f"{name}: {gv}: subresource {r['name']} has no parent {parent}")
    for g, versions in groups.items():
        if not versions:
            errors.append(f"{name}: group {g!r} has no version")
        if len(set(versions)) != len(versions):
            errors.append(f"{name}: group {g!r} lists a version twice")
    return errors


def counts(docs: list) -> dict:
    tops = subs = watchable = 0
    pairs = set()
    groups = set()
    for doc in docs:
        g, _ = split_gv(doc["groupVersion"])
        groups.add(g)
        for r in doc["resources"]:
            if "/" in r["name"]:
                subs += 1
                continue
            tops += 1
            pairs.add((g, r["name"]))
            verbs = set(r["verbs"])
            if ({"list", "watch"} <= verbs and r["name"] not in NON_WATCHABLE_NAMES
                    and g not in NON_WATCHABLE_GROUPS):
                watchable += 1
    return {"group-versions": len(docs), "groups": len(groups), "top-level resources": tops,
            "subresources": subs, "watchable top-level": watchable, "distinct (group, resource)": len(pairs)}


# ----------------------------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kmock", help="kmock resources.json.gz, kmock-*.whl, or a directory holding one")
    ap.add_argument("--openshift", help="openshift-discovery.json.gz")
    ap.add_argument("--out", default=str(HERE), help="output directory (default: next to this script)")
    ap.add_argument("--check", action="store_true", help="compare with the files on disk, write nothing")
    ap.add_argument("--counts", action="store_true", help="print the catalog counts")
    args = ap.parse_args()

    kmock = load_kmock(args.kmock)
    openshift = load_openshift(args.openshift)
    catalogs = {"vanilla.json.gz": build_vanilla(kmock), "large.json.gz": build_large(kmock, openshift)}

    # The inputs are the ones documented in README.md.
    c_vanilla = counts(catalogs["vanilla.json.gz"])
    if (c_vanilla["group-versions"], c_vanilla["top-level resources"]) != (24, 71):
        print(f"warning: kmock data differs from kmock 0.8 (24 GVs, 71 resources): {c_vanilla}", file=sys.stderr)

    errors = [e for n, d in catalogs.items() for e in validate(n, d)]
    for e in errors:
        print("error:", e, file=sys.stderr)
    if errors:
        return 1

    status = 0
    out = Path(args.out)
    for fname, docs in catalogs.items():
        blob = encode(docs)
        target = out / fname
        if args.check:
            if not target.is_file():
                print(f"{target}: missing", file=sys.stderr)
                status = 1
            elif target.read_bytes() != blob:
                same = json.loads(gzip.decompress(target.read_bytes())) == docs
                print(f"{target}: differs ({'same JSON, other gzip bytes' if same else 'content differs'})",
                      file=sys.stderr)
                status = 1
            else:
                print(f"{target}: up to date")
        else:
            target.write_bytes(blob)
            print(f"wrote {target} ({len(blob)} bytes)")
        if args.counts:
            print("  " + ", ".join(f"{k}: {v}" for k, v in counts(docs).items()))
    return status


if __name__ == "__main__":
    sys.exit(main())
