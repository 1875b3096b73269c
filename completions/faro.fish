# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_faro_global_optspecs
    string join \n kubeconfig= context= http1 log-level= v/verbose q/quiet h/help V/version
end

function __fish_faro_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_faro_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_faro_using_subcommand
    set -l cmd (__fish_faro_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c faro -n "__fish_faro_needs_command" -l kubeconfig -d 'Path to the kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else the in-cluster service account]' -r -F
complete -c faro -n "__fish_faro_needs_command" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c faro -n "__fish_faro_needs_command" -l log-level -d 'Log level of the messages on stderr (RUST_LOG wins when set)' -r -f -a "trace\t''
debug\t''
info\t''
warning\t''
error\t''"
complete -c faro -n "__fish_faro_needs_command" -l http1 -d 'Speak HTTP/1.1 to the API server even when it offers HTTP/2'
complete -c faro -n "__fish_faro_needs_command" -s v -l verbose -d 'More log output (-v: debug, -vv: trace)'
complete -c faro -n "__fish_faro_needs_command" -s q -l quiet -d 'Less log output (-q: warnings and errors, -qq: errors only)'
complete -c faro -n "__fish_faro_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c faro -n "__fish_faro_needs_command" -s V -l version -d 'Print version'
complete -c faro -n "__fish_faro_needs_command" -f -a "watch" -d 'Watch resources and write one line per change: `faro watch pods,deploy -n prod -l app=web`'
complete -c faro -n "__fish_faro_needs_command" -f -a "workload" -d 'Detect workloads from namespace labels and watch their namespaces'
complete -c faro -n "__fish_faro_needs_command" -f -a "discover" -d 'List the cluster\'s API resources (GVRs) and whether faro can watch them'
complete -c faro -n "__fish_faro_needs_command" -f -a "generate" -d 'Generate shell completions and man pages from these definitions (for packagers and `make generate`)'
complete -c faro -n "__fish_faro_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c faro -n "__fish_faro_using_subcommand watch" -l config -d 'The YAML config file (its entries and the RESOURCE arguments are a union)' -r -F
complete -c faro -n "__fish_faro_using_subcommand watch" -s n -l namespace -d 'Namespaces of the RESOURCE arguments: repeat the flag or give a comma list [default: the namespace of the kubeconfig context, as kubectl]' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -s l -l selector -d 'Label selector of the RESOURCE arguments, applied by the server (app=web,tier!=db, \'env in (a,b)\')' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l field-selector -d 'Field selector of the RESOURCE arguments, applied by the server (status.phase=Running, spec.nodeName=node-1; which fields depends on the resource)' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l name-pattern -d 'Only objects whose name this regex (anchored) matches, applied by faro' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l label-pattern -d 'Only objects with this label matching this regex (anchored): KEY=REGEX, applied by faro; repeat for several (all must hold)' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l metrics-addr -d 'Serve /metrics (OpenMetrics, for Prometheus), /healthz and /readyz on HOST:PORT; a bare PORT (or :PORT) listens on 127.0.0.1 only; 0.0.0.0:PORT or [::]:PORT for every interface (in a pod, so that the kubelet and Prometheus can reach it)' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l stall-timeout -d 'Re-establish a watch that delivers neither an event nor a bookmark for this long (from its last resourceVersion: nothing is lost); 0 turns stall detection off. The default is twice the interval at which kube-apiserver sends bookmarks' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l lease-name -d 'The Lease\'s name' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l lease-namespace -d 'The Lease\'s namespace [default: the pod\'s (in-cluster), else the kubeconfig context\'s, else default]' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l lease-identity -d 'This replica\'s holderIdentity [default: the host name (the pod\'s name) and a random suffix]' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l lease-duration -d 'How long a Lease that is not renewed stays valid: a standby takes over after it' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l lease-renew-deadline -d 'How long the leader keeps trying to renew before it stops its output (shorter than --lease-duration: the rest is the time it has to stop)' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l lease-retry-period -d 'How often the leader renews and the standbys read the Lease' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l shard -d 'Watch only shard i of N (0 <= i < N, e.g. 1/3): run N faros with 0/N ... N-1/N and together they write each event once. Namespaces are split by a hash (64-bit FNV-1a) of their name; cluster-scoped resources belong to shard 0. Cluster-wide watches ask the API server for the shard\'s namespaces (KEP-5866 shardSelector) when it supports that, else faro drops the other shards\' objects itself' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l nats -d 'Also publish every event to NATS JetStream: nats://HOST:PORT, tls://HOST:PORT (a comma list for a NATS cluster; user:password@ may be in the URL)' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l nats-ca -d 'Verify the NATS server\'s certificate with this CA file (PEM) instead of the system\'s roots (implies TLS)' -r -F
complete -c faro -n "__fish_faro_using_subcommand watch" -l nats-cert -d 'Present this client certificate (PEM) to the NATS server, with --nats-key (implies TLS)' -r -F
complete -c faro -n "__fish_faro_using_subcommand watch" -l nats-key -d 'The key of --nats-cert (PEM)' -r -F
complete -c faro -n "__fish_faro_using_subcommand watch" -l nats-creds -d 'Authenticate with this NATS credentials file (a user JWT and its NKey seed, as `nsc` writes them)' -r -F
complete -c faro -n "__fish_faro_using_subcommand watch" -l nats-subject-prefix -d 'The first tokens of every subject (one or more, separated by dots)' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l cluster-name -d 'The cluster\'s token in the subjects [default: the kubeconfig context\'s cluster name; in a pod without a kubeconfig, `kubernetes`]' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l nats-stream -d 'The JetStream stream, created if missing with the subjects PREFIX.> (an existing one is used as it is, if its subjects take faro\'s)' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l nats-replicas -d 'Copies of each message (and of the --state-kv bucket) in a JetStream cluster, when faro creates them' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l nats-retention -d 'How the stream keeps messages, when faro creates it' -r -f -a "limits\t'Kept until a limit (--nats-max-age): every consumer reads everything'
interest\t'Kept until every consumer that exists has acknowledged it'
workqueue\t'Kept until one consumer has acknowledged it (a work queue)'"
complete -c faro -n "__fish_faro_using_subcommand watch" -l nats-duplicate-window -d 'How long the stream remembers message ids to drop repeats, when faro creates it: longer than a checkpoint interval plus a failover' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l nats-max-age -d 'Remove messages older than this, when faro creates the stream [default: kept]' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l state-kv -d 'Keep the checkpoint in this JetStream key-value bucket (BUCKET or BUCKET/KEY, key `state` by default; created if missing) instead of a file, so that any replica resumes it (with --leader-elect). Needs --nats' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l output-dir -d 'Also write events to DIR/logs/events-YYYYMMDD-HHMMSS.json (mode 0600) and the log to DIR/logs/faro-YYYYMMDD-HHMMSS.log (overrides output_dir/json_export of the config)' -r -F
complete -c faro -n "__fish_faro_using_subcommand watch" -s o -l output -l format -d 'Format of the lines on stdout [default: text on a terminal, json otherwise]; the events file is always JSON' -r -f -a "json\t'One JSON object per line (the wire format)'
text\t'One aligned line per change for people: time, type, kind, namespace/name (coloured on a terminal unless NO_COLOR is set)'
name\t'kind.group/name per change, as `kubectl get -o name` (pod/web-1, deployment.apps/web)'"
complete -c faro -n "__fish_faro_using_subcommand watch" -l diff-ignore -d 'Leave this JSON pointer out of diffs, e.g. /status or /metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration (repeatable; resourceVersion, managedFields and generation are always left out)' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l max-file-size -d 'Rotate the events file when it reaches SIZE (e.g. 100MiB, 500MB; at least 1MiB): the line that reaches it ends the file, and the next line starts a new events-YYYYMMDD-HHMMSS-NNN.json (overrides max_file_size of the config)' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l max-files -d 'Keep only the newest N events files of this run when rotating; older ones are deleted (overrides max_files of the config)' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l ready-file -d 'Create this file once every initial listing is done (for scripts to wait on)' -r -F
complete -c faro -n "__fish_faro_using_subcommand watch" -l auto-shutdown -l for -d 'Stop gracefully after this long (e.g. 90s, 10m, 1h30m), overriding the config\'s auto_shutdown' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l shutdown-timeout -d 'How long a graceful stop (signal, --auto-shutdown) may take to write out what faro holds; after that faro exits 1, saying how many events did not reach which output' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l state-file -d 'Save the watches\' state here and resume from it at the next start: no listing and no initial events again, every change made while faro was down reported (deletions too). Overrides the config\'s state_file' -r -F
complete -c faro -n "__fish_faro_using_subcommand watch" -l checkpoint-interval -d 'How often the state is saved when something changed (and once more at a graceful stop)' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l kubeconfig -d 'Path to the kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else the in-cluster service account]' -r -F
complete -c faro -n "__fish_faro_using_subcommand watch" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c faro -n "__fish_faro_using_subcommand watch" -l log-level -d 'Log level of the messages on stderr (RUST_LOG wins when set)' -r -f -a "trace\t''
debug\t''
info\t''
warning\t''
error\t''"
complete -c faro -n "__fish_faro_using_subcommand watch" -s A -l all-namespaces -d 'Watch the RESOURCE arguments in every namespace'
complete -c faro -n "__fish_faro_using_subcommand watch" -l leader-elect -d 'Run as one of several replicas: only the holder of a coordination.k8s.io/v1 Lease runs the watches; the others stand by and take over, from the shared checkpoint (--state-file), when it stops renewing. A leader that cannot renew stops its output and exits 1; on SIGTERM it releases the Lease at once'
complete -c faro -n "__fish_faro_using_subcommand watch" -l include-object -d 'Add the full object to each event (Secret data and stringData values are redacted)'
complete -c faro -n "__fish_faro_using_subcommand watch" -l diff -d 'Add `diff` to every UPDATED event: the RFC 6902 operations (with the old values) from the version before. faro then keeps the last version of each object in memory, as compact JSON. Without it, only config entries with `diff: true` are diffed'
complete -c faro -n "__fish_faro_using_subcommand watch" -l no-initial -l since-now -d 'Do not print the ADDED events of objects that exist at start-up: only what changes from now on'
complete -c faro -n "__fish_faro_using_subcommand watch" -l state-reset -d 'Start afresh: ignore the saved state (it is replaced at the first checkpoint)'
complete -c faro -n "__fish_faro_using_subcommand watch" -l http1 -d 'Speak HTTP/1.1 to the API server even when it offers HTTP/2'
complete -c faro -n "__fish_faro_using_subcommand watch" -s v -l verbose -d 'More log output (-v: debug, -vv: trace)'
complete -c faro -n "__fish_faro_using_subcommand watch" -s q -l quiet -d 'Less log output (-q: warnings and errors, -qq: errors only)'
complete -c faro -n "__fish_faro_using_subcommand watch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c faro -n "__fish_faro_using_subcommand watch" -s V -l version -d 'Print version'
complete -c faro -n "__fish_faro_using_subcommand workload" -l label -d 'The namespace label marking a workload; its value is the workload name' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l pattern -d 'Regex (anchored) on label values: the workload names to follow' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l namespace-pattern -d 'Regex (anchored) on namespace names; its first capture group is the workload id [default: the namespace name]' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l allowedgvrs -d 'GVRs watched cluster-wide (comma-separated, e.g. v1/namespaces,v1/nodes)' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l workloadgvrs -d 'GVRs watched in each workload namespace (comma-separated, e.g. v1/pods,apps/v1/deployments)' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l deniedgvrs -d 'GVRs never watched, whatever the other lists say (comma-separated)' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l metrics-addr -d 'Serve /metrics (OpenMetrics, for Prometheus), /healthz and /readyz on HOST:PORT; a bare PORT (or :PORT) listens on 127.0.0.1 only; 0.0.0.0:PORT or [::]:PORT for every interface (in a pod, so that the kubelet and Prometheus can reach it)' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l stall-timeout -d 'Re-establish a watch that delivers neither an event nor a bookmark for this long (from its last resourceVersion: nothing is lost); 0 turns stall detection off. The default is twice the interval at which kube-apiserver sends bookmarks' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l lease-name -d 'The Lease\'s name' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l lease-namespace -d 'The Lease\'s namespace [default: the pod\'s (in-cluster), else the kubeconfig context\'s, else default]' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l lease-identity -d 'This replica\'s holderIdentity [default: the host name (the pod\'s name) and a random suffix]' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l lease-duration -d 'How long a Lease that is not renewed stays valid: a standby takes over after it' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l lease-renew-deadline -d 'How long the leader keeps trying to renew before it stops its output (shorter than --lease-duration: the rest is the time it has to stop)' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l lease-retry-period -d 'How often the leader renews and the standbys read the Lease' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l shard -d 'Watch only shard i of N (0 <= i < N, e.g. 1/3): run N faros with 0/N ... N-1/N and together they write each event once. Namespaces are split by a hash (64-bit FNV-1a) of their name; cluster-scoped resources belong to shard 0. Cluster-wide watches ask the API server for the shard\'s namespaces (KEP-5866 shardSelector) when it supports that, else faro drops the other shards\' objects itself' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l nats -d 'Also publish every event to NATS JetStream: nats://HOST:PORT, tls://HOST:PORT (a comma list for a NATS cluster; user:password@ may be in the URL)' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l nats-ca -d 'Verify the NATS server\'s certificate with this CA file (PEM) instead of the system\'s roots (implies TLS)' -r -F
complete -c faro -n "__fish_faro_using_subcommand workload" -l nats-cert -d 'Present this client certificate (PEM) to the NATS server, with --nats-key (implies TLS)' -r -F
complete -c faro -n "__fish_faro_using_subcommand workload" -l nats-key -d 'The key of --nats-cert (PEM)' -r -F
complete -c faro -n "__fish_faro_using_subcommand workload" -l nats-creds -d 'Authenticate with this NATS credentials file (a user JWT and its NKey seed, as `nsc` writes them)' -r -F
complete -c faro -n "__fish_faro_using_subcommand workload" -l nats-subject-prefix -d 'The first tokens of every subject (one or more, separated by dots)' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l cluster-name -d 'The cluster\'s token in the subjects [default: the kubeconfig context\'s cluster name; in a pod without a kubeconfig, `kubernetes`]' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l nats-stream -d 'The JetStream stream, created if missing with the subjects PREFIX.> (an existing one is used as it is, if its subjects take faro\'s)' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l nats-replicas -d 'Copies of each message (and of the --state-kv bucket) in a JetStream cluster, when faro creates them' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l nats-retention -d 'How the stream keeps messages, when faro creates it' -r -f -a "limits\t'Kept until a limit (--nats-max-age): every consumer reads everything'
interest\t'Kept until every consumer that exists has acknowledged it'
workqueue\t'Kept until one consumer has acknowledged it (a work queue)'"
complete -c faro -n "__fish_faro_using_subcommand workload" -l nats-duplicate-window -d 'How long the stream remembers message ids to drop repeats, when faro creates it: longer than a checkpoint interval plus a failover' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l nats-max-age -d 'Remove messages older than this, when faro creates the stream [default: kept]' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l state-kv -d 'Keep the checkpoint in this JetStream key-value bucket (BUCKET or BUCKET/KEY, key `state` by default; created if missing) instead of a file, so that any replica resumes it (with --leader-elect). Needs --nats' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l output-dir -d 'Also write events to DIR/logs/events-YYYYMMDD-HHMMSS.json (mode 0600) and the log to DIR/logs/faro-YYYYMMDD-HHMMSS.log (overrides output_dir/json_export of the config)' -r -F
complete -c faro -n "__fish_faro_using_subcommand workload" -s o -l output -l format -d 'Format of the lines on stdout [default: text on a terminal, json otherwise]; the events file is always JSON' -r -f -a "json\t'One JSON object per line (the wire format)'
text\t'One aligned line per change for people: time, type, kind, namespace/name (coloured on a terminal unless NO_COLOR is set)'
name\t'kind.group/name per change, as `kubectl get -o name` (pod/web-1, deployment.apps/web)'"
complete -c faro -n "__fish_faro_using_subcommand workload" -l diff-ignore -d 'Leave this JSON pointer out of diffs, e.g. /status or /metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration (repeatable; resourceVersion, managedFields and generation are always left out)' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l max-file-size -d 'Rotate the events file when it reaches SIZE (e.g. 100MiB, 500MB; at least 1MiB): the line that reaches it ends the file, and the next line starts a new events-YYYYMMDD-HHMMSS-NNN.json (overrides max_file_size of the config)' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l max-files -d 'Keep only the newest N events files of this run when rotating; older ones are deleted (overrides max_files of the config)' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l ready-file -d 'Create this file once every initial listing is done (for scripts to wait on)' -r -F
complete -c faro -n "__fish_faro_using_subcommand workload" -l auto-shutdown -l for -d 'Stop gracefully after this long (e.g. 90s, 10m, 1h30m), overriding the config\'s auto_shutdown' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l shutdown-timeout -d 'How long a graceful stop (signal, --auto-shutdown) may take to write out what faro holds; after that faro exits 1, saying how many events did not reach which output' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l state-file -d 'Save the watches\' state here and resume from it at the next start: no listing and no initial events again, every change made while faro was down reported (deletions too). Overrides the config\'s state_file' -r -F
complete -c faro -n "__fish_faro_using_subcommand workload" -l checkpoint-interval -d 'How often the state is saved when something changed (and once more at a graceful stop)' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l kubeconfig -d 'Path to the kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else the in-cluster service account]' -r -F
complete -c faro -n "__fish_faro_using_subcommand workload" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c faro -n "__fish_faro_using_subcommand workload" -l log-level -d 'Log level of the messages on stderr (RUST_LOG wins when set)' -r -f -a "trace\t''
debug\t''
info\t''
warning\t''
error\t''"
complete -c faro -n "__fish_faro_using_subcommand workload" -l leader-elect -d 'Run as one of several replicas: only the holder of a coordination.k8s.io/v1 Lease runs the watches; the others stand by and take over, from the shared checkpoint (--state-file), when it stops renewing. A leader that cannot renew stops its output and exits 1; on SIGTERM it releases the Lease at once'
complete -c faro -n "__fish_faro_using_subcommand workload" -l include-object -d 'Add the full object to each event (Secret data and stringData values are redacted)'
complete -c faro -n "__fish_faro_using_subcommand workload" -l diff -d 'Add `diff` to every UPDATED event: the RFC 6902 operations (with the old values) from the version before. faro then keeps the last version of each object in memory, as compact JSON. Without it, only config entries with `diff: true` are diffed'
complete -c faro -n "__fish_faro_using_subcommand workload" -l no-initial -l since-now -d 'Do not print the ADDED events of objects that exist at start-up: only what changes from now on'
complete -c faro -n "__fish_faro_using_subcommand workload" -l state-reset -d 'Start afresh: ignore the saved state (it is replaced at the first checkpoint)'
complete -c faro -n "__fish_faro_using_subcommand workload" -l http1 -d 'Speak HTTP/1.1 to the API server even when it offers HTTP/2'
complete -c faro -n "__fish_faro_using_subcommand workload" -s v -l verbose -d 'More log output (-v: debug, -vv: trace)'
complete -c faro -n "__fish_faro_using_subcommand workload" -s q -l quiet -d 'Less log output (-q: warnings and errors, -qq: errors only)'
complete -c faro -n "__fish_faro_using_subcommand workload" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c faro -n "__fish_faro_using_subcommand workload" -s V -l version -d 'Print version'
complete -c faro -n "__fish_faro_using_subcommand discover" -l api-group -d 'Keep only resources of this API group ("" or "core" for the core group)' -r
complete -c faro -n "__fish_faro_using_subcommand discover" -l namespaced -d 'Keep only namespaced (true) or cluster-scoped (false) resources' -r -f -a "true\t''
false\t''"
complete -c faro -n "__fish_faro_using_subcommand discover" -s o -l output -d 'Output format [default: table on a terminal, json otherwise]' -r -f -a "table\t'Aligned columns, like kubectl api-resources'
json\t'One JSON object per line'
name\t'GVR strings only (v1/pods, apps/v1/deployments), the syntax faro\'s configs use'"
complete -c faro -n "__fish_faro_using_subcommand discover" -l kubeconfig -d 'Path to the kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else the in-cluster service account]' -r -F
complete -c faro -n "__fish_faro_using_subcommand discover" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c faro -n "__fish_faro_using_subcommand discover" -l log-level -d 'Log level of the messages on stderr (RUST_LOG wins when set)' -r -f -a "trace\t''
debug\t''
info\t''
warning\t''
error\t''"
complete -c faro -n "__fish_faro_using_subcommand discover" -l watchable -d 'Keep only resources faro can watch: verbs include list and watch, not a subresource, not componentstatuses, bindings or the metrics.k8s.io group'
complete -c faro -n "__fish_faro_using_subcommand discover" -l http1 -d 'Speak HTTP/1.1 to the API server even when it offers HTTP/2'
complete -c faro -n "__fish_faro_using_subcommand discover" -s v -l verbose -d 'More log output (-v: debug, -vv: trace)'
complete -c faro -n "__fish_faro_using_subcommand discover" -s q -l quiet -d 'Less log output (-q: warnings and errors, -qq: errors only)'
complete -c faro -n "__fish_faro_using_subcommand discover" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c faro -n "__fish_faro_using_subcommand discover" -s V -l version -d 'Print version'
complete -c faro -n "__fish_faro_using_subcommand generate; and not __fish_seen_subcommand_from completions all help" -l kubeconfig -d 'Path to the kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else the in-cluster service account]' -r -F
complete -c faro -n "__fish_faro_using_subcommand generate; and not __fish_seen_subcommand_from completions all help" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c faro -n "__fish_faro_using_subcommand generate; and not __fish_seen_subcommand_from completions all help" -l log-level -d 'Log level of the messages on stderr (RUST_LOG wins when set)' -r -f -a "trace\t''
debug\t''
info\t''
warning\t''
error\t''"
complete -c faro -n "__fish_faro_using_subcommand generate; and not __fish_seen_subcommand_from completions all help" -l http1 -d 'Speak HTTP/1.1 to the API server even when it offers HTTP/2'
complete -c faro -n "__fish_faro_using_subcommand generate; and not __fish_seen_subcommand_from completions all help" -s v -l verbose -d 'More log output (-v: debug, -vv: trace)'
complete -c faro -n "__fish_faro_using_subcommand generate; and not __fish_seen_subcommand_from completions all help" -s q -l quiet -d 'Less log output (-q: warnings and errors, -qq: errors only)'
complete -c faro -n "__fish_faro_using_subcommand generate; and not __fish_seen_subcommand_from completions all help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c faro -n "__fish_faro_using_subcommand generate; and not __fish_seen_subcommand_from completions all help" -s V -l version -d 'Print version'
complete -c faro -n "__fish_faro_using_subcommand generate; and not __fish_seen_subcommand_from completions all help" -f -a "completions" -d 'Print the completion script of a shell'
complete -c faro -n "__fish_faro_using_subcommand generate; and not __fish_seen_subcommand_from completions all help" -f -a "all" -d 'Write completions/ and man/ under a directory'
complete -c faro -n "__fish_faro_using_subcommand generate; and not __fish_seen_subcommand_from completions all help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c faro -n "__fish_faro_using_subcommand generate; and __fish_seen_subcommand_from completions" -l kubeconfig -d 'Path to the kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else the in-cluster service account]' -r -F
complete -c faro -n "__fish_faro_using_subcommand generate; and __fish_seen_subcommand_from completions" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c faro -n "__fish_faro_using_subcommand generate; and __fish_seen_subcommand_from completions" -l log-level -d 'Log level of the messages on stderr (RUST_LOG wins when set)' -r -f -a "trace\t''
debug\t''
info\t''
warning\t''
error\t''"
complete -c faro -n "__fish_faro_using_subcommand generate; and __fish_seen_subcommand_from completions" -l http1 -d 'Speak HTTP/1.1 to the API server even when it offers HTTP/2'
complete -c faro -n "__fish_faro_using_subcommand generate; and __fish_seen_subcommand_from completions" -s v -l verbose -d 'More log output (-v: debug, -vv: trace)'
complete -c faro -n "__fish_faro_using_subcommand generate; and __fish_seen_subcommand_from completions" -s q -l quiet -d 'Less log output (-q: warnings and errors, -qq: errors only)'
complete -c faro -n "__fish_faro_using_subcommand generate; and __fish_seen_subcommand_from completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c faro -n "__fish_faro_using_subcommand generate; and __fish_seen_subcommand_from completions" -s V -l version -d 'Print version'
complete -c faro -n "__fish_faro_using_subcommand generate; and __fish_seen_subcommand_from all" -l out-dir -d 'Directory to write completions/ and man/ into' -r -F
complete -c faro -n "__fish_faro_using_subcommand generate; and __fish_seen_subcommand_from all" -l kubeconfig -d 'Path to the kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else the in-cluster service account]' -r -F
complete -c faro -n "__fish_faro_using_subcommand generate; and __fish_seen_subcommand_from all" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c faro -n "__fish_faro_using_subcommand generate; and __fish_seen_subcommand_from all" -l log-level -d 'Log level of the messages on stderr (RUST_LOG wins when set)' -r -f -a "trace\t''
debug\t''
info\t''
warning\t''
error\t''"
complete -c faro -n "__fish_faro_using_subcommand generate; and __fish_seen_subcommand_from all" -l http1 -d 'Speak HTTP/1.1 to the API server even when it offers HTTP/2'
complete -c faro -n "__fish_faro_using_subcommand generate; and __fish_seen_subcommand_from all" -s v -l verbose -d 'More log output (-v: debug, -vv: trace)'
complete -c faro -n "__fish_faro_using_subcommand generate; and __fish_seen_subcommand_from all" -s q -l quiet -d 'Less log output (-q: warnings and errors, -qq: errors only)'
complete -c faro -n "__fish_faro_using_subcommand generate; and __fish_seen_subcommand_from all" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c faro -n "__fish_faro_using_subcommand generate; and __fish_seen_subcommand_from all" -s V -l version -d 'Print version'
complete -c faro -n "__fish_faro_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "completions" -d 'Print the completion script of a shell'
complete -c faro -n "__fish_faro_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "all" -d 'Write completions/ and man/ under a directory'
complete -c faro -n "__fish_faro_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c faro -n "__fish_faro_using_subcommand help; and not __fish_seen_subcommand_from watch workload discover generate help" -f -a "watch" -d 'Watch resources and write one line per change: `faro watch pods,deploy -n prod -l app=web`'
complete -c faro -n "__fish_faro_using_subcommand help; and not __fish_seen_subcommand_from watch workload discover generate help" -f -a "workload" -d 'Detect workloads from namespace labels and watch their namespaces'
complete -c faro -n "__fish_faro_using_subcommand help; and not __fish_seen_subcommand_from watch workload discover generate help" -f -a "discover" -d 'List the cluster\'s API resources (GVRs) and whether faro can watch them'
complete -c faro -n "__fish_faro_using_subcommand help; and not __fish_seen_subcommand_from watch workload discover generate help" -f -a "generate" -d 'Generate shell completions and man pages from these definitions (for packagers and `make generate`)'
complete -c faro -n "__fish_faro_using_subcommand help; and not __fish_seen_subcommand_from watch workload discover generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c faro -n "__fish_faro_using_subcommand help; and __fish_seen_subcommand_from generate" -f -a "completions" -d 'Print the completion script of a shell'
complete -c faro -n "__fish_faro_using_subcommand help; and __fish_seen_subcommand_from generate" -f -a "all" -d 'Write completions/ and man/ under a directory'
