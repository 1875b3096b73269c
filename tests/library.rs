//! The `faro` library in-process against kube-sim: the event stream, readiness, handler
//! retries, back-pressure and shutdown. Changes are made with the real kubectl, faults through
//! kube-sim's admin API, as in the binary's tests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faro::client::ClusterOptions;
use faro::config::Entry;
use faro::{Event, EventType, Handler, RetryPolicy, Signal, WatchConfig, Watcher};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;

use crate::util::{Env, PATIENCE, configmap};

async fn client(env: &Env) -> kube::Client {
    faro::client::connect(&ClusterOptions {
        kubeconfig: Some(env.kubeconfig().to_path_buf()),
        ..ClusterOptions::default()
    })
    .await
    .expect("connecting to kube-sim")
    .client
}

fn configmaps_in(namespace: &str) -> WatchConfig {
    WatchConfig::new().entry(
        Entry::new("v1/configmaps".parse().unwrap())
            .namespace(namespace)
            .unwrap(),
    )
}

/// The next signal of a stream (panics after PATIENCE or at its end).
async fn next(events: &mut faro::watcher::EventStream) -> Signal {
    tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("a signal within PATIENCE")
        .expect("the stream goes on")
        .expect("no start-up error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_yields_the_initial_objects_then_ready_then_changes_then_ends_when_stopped() {
    let env = Env::start();
    // More than two pages of 500.
    env.admin("POST", "/_sim/load?namespace=lib&count=1200&size=256");
    let watcher = Watcher::new(client(&env).await, configmaps_in("lib")).include_object(true);
    let ready = watcher.ready();
    let mut events = watcher.stream();
    let mut initial = 0;
    let streams = loop {
        match next(&mut events).await {
            Signal::Event(event) => {
                let event = event.as_event();
                assert!(event.initial() && event.event_type() == EventType::Added);
                assert!(!ready.is_ready(), "ready only after the last initial event");
                let cm: ConfigMap = event.object().expect("the object, as a ConfigMap");
                assert_eq!(cm.metadata.name.as_deref(), Some(event.name()));
                assert_eq!(event.matched_entries(), &[0]);
                initial += 1;
            }
            Signal::Ready { streams } => break streams,
        }
    };
    assert_eq!(initial, 1200);
    assert!(ready.is_ready());
    assert_eq!(streams, 2, "configmaps in lib, and faro's CRD watch");

    env.apply(&configmap("lib", "new-one", &[("app", "web")], "x"));
    let Signal::Event(added) = next(&mut events).await else {
        panic!("an event");
    };
    let added = added.as_event();
    assert_eq!(
        (added.event_type(), added.name(), added.initial()),
        (EventType::Added, "new-one", false)
    );
    assert_eq!(added.labels().get("app").as_deref(), Some("web"));
    let kept = added.to_owned();

    events.stopper().stop();
    let rest = tokio::time::timeout(PATIENCE, events.collect::<Vec<_>>())
        .await
        .expect("the stream ends once stopped");
    assert!(rest.iter().all(|s| s.is_ok()), "{rest:?}");
    assert_eq!(
        kept.as_event().name(),
        "new-one",
        "an owned event outlives its stream"
    );
}

/// Counts events, and notes how many it had handled when told it is ready.
#[derive(Default)]
struct Count {
    events: AtomicUsize,
    at_ready: Mutex<Option<usize>>,
}

impl Handler for Count {
    type Error = std::convert::Infallible;

    async fn on_event(&self, _event: &Event<'_>) -> Result<(), Self::Error> {
        // Slow enough that a worker pool falls behind the streams.
        tokio::time::sleep(Duration::from_micros(200)).await;
        self.events.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn on_ready(&self, _streams: usize) {
        *self.at_ready.lock().unwrap() = Some(self.events.load(Ordering::SeqCst));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_ready_comes_after_every_initial_event_is_handled_by_every_worker() {
    let env = Env::start();
    let mut config = WatchConfig::new();
    for ns in ["r1", "r2", "r3"] {
        env.admin(
            "POST",
            &format!("/_sim/load?namespace={ns}&count=300&size=128"),
        );
        config = config.entry(
            Entry::new("v1/configmaps".parse().unwrap())
                .namespace(ns)
                .unwrap(),
        );
    }
    for workers in [1, 4] {
        let handler = Arc::new(Count::default());
        let watcher = Watcher::new(client(&env).await, config.clone()).workers(workers);
        let ready = watcher.ready();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(watcher.run(handler.clone(), async {
            let _ = stopped.await;
        }));
        assert!(
            tokio::time::timeout(PATIENCE, ready.wait())
                .await
                .expect("ready"),
            "workers {workers}"
        );
        assert_eq!(
            *handler.at_ready.lock().unwrap(),
            Some(900),
            "workers {workers}: every initial event handled before on_ready"
        );
        let _ = stop.send(());
        run.await.unwrap().unwrap();
    }
}

/// Fails the first `fails` deliveries of events of the ConfigMap `flaky`; logs the others.
struct Flaky {
    fails: AtomicU32,
    log: Mutex<Vec<(String, EventType, u64)>>,
}

impl Handler for Flaky {
    type Error = String;

    async fn on_event(&self, event: &Event<'_>) -> Result<(), String> {
        if event.name() == "flaky"
            && self
                .fails
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err("injected failure".into());
        }
        self.log.lock().unwrap().push((
            event.name().to_owned(),
            event.event_type(),
            event.resource_version().parse().unwrap(),
        ));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_object_is_retried_in_order_while_the_others_flow() {
    let env = Env::start();
    env.kubectl(&["create", "namespace", "retry"]);
    let handler = Arc::new(Flaky {
        fails: AtomicU32::new(3),
        log: Mutex::new(Vec::new()),
    });
    let watcher = Watcher::new(client(&env).await, configmaps_in("retry"))
        .retry(RetryPolicy::default().backoff(Duration::from_millis(500), Duration::from_secs(4)));
    let ready = watcher.ready();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(watcher.run(handler.clone(), async {
        let _ = stopped.await;
    }));
    assert!(tokio::time::timeout(PATIENCE, ready.wait()).await.unwrap());
    // flaky fails 3 times: it waits 0.5 + 1 + 2 s; its two updates queue behind it, and the
    // other objects, made meanwhile, go through at once.
    env.apply(&configmap("retry", "flaky", &[], "1"));
    env.kubectl(&["label", "configmap", "flaky", "-n", "retry", "step=2"]);
    env.kubectl(&[
        "label",
        "configmap",
        "flaky",
        "-n",
        "retry",
        "step=3",
        "--overwrite",
    ]);
    env.apply(&configmap("retry", "other-1", &[], "1"));
    env.apply(&configmap("retry", "other-2", &[], "1"));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let log = loop {
        let log = handler.log.lock().unwrap().clone();
        if log.len() >= 5 {
            break log;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not delivered: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = stop.send(());
    run.await.unwrap().unwrap();

    let by_name = |name: &str| -> Vec<(EventType, u64)> {
        log.iter()
            .filter(|(n, ..)| n == name)
            .map(|(_, t, rv)| (*t, *rv))
            .collect()
    };
    let flaky = by_name("flaky");
    assert_eq!(
        flaky.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        [EventType::Added, EventType::Updated, EventType::Updated],
        "{log:?}"
    );
    assert!(
        flaky.windows(2).all(|w| w[0].1 < w[1].1),
        "in resourceVersion order: {log:?}"
    );
    let first_flaky = log.iter().position(|(n, ..)| n == "flaky").unwrap();
    for other in ["other-1", "other-2"] {
        let at = log.iter().position(|(n, ..)| n == other).unwrap();
        assert!(at < first_flaky, "{other} waited for flaky: {log:?}");
    }
    assert_eq!(log.len(), 5, "nothing twice: {log:?}");
}

/// Sleeps on every event, like a handler that calls out to something slow (until `hurry`).
struct Slow {
    handled: AtomicUsize,
    hurry: std::sync::atomic::AtomicBool,
}

impl Handler for Slow {
    type Error = std::convert::Infallible;

    async fn on_event(&self, _event: &Event<'_>) -> Result<(), Self::Error> {
        if !self.hurry.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.handled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn status_kib(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/self/status"))
}

/// Run in a process of its own by [`a_slow_handler_slows_the_watch_and_memory_stays_bounded`]:
/// RSS must be measured without the other tests' allocations.
#[test]
#[ignore = "run by a_slow_handler_slows_the_watch_and_memory_stays_bounded in its own process"]
#[allow(clippy::print_stdout)] // the report to the parent test
fn backpressure_child() {
    if std::env::var_os("FARO_BACKPRESSURE_CHILD").is_none() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let env = Env::start();
    let n = 100_000;
    env.admin(
        "POST",
        &format!("/_sim/prerender?namespace=bp&resource=configmaps&count={n}&size=1024"),
    );
    let handler = Arc::new(Slow {
        handled: AtomicUsize::new(0),
        hurry: Default::default(),
    });
    let result = runtime.block_on(async {
        let watcher = Watcher::new(client(&env).await, configmaps_in("bp")).initial(false);
        let ready = watcher.ready();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(watcher.run(handler.clone(), async {
            let _ = stopped.await;
        }));
        assert!(tokio::time::timeout(PATIENCE, ready.wait()).await.unwrap());
        // All 100,000 events are committed at once (kube-sim keeps them); faro's watch has
        // them pending.
        env.admin("POST", "/_sim/burst");
        let base = status_kib("VmRSS:");
        // Reset the high-water mark to now (Linux: clear_refs 5).
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let mut peak = base;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            peak = peak.max(status_kib("VmRSS:"));
        }
        if reset {
            peak = peak.max(status_kib("VmHWM:"));
        }
        let handled = handler.handled.load(Ordering::SeqCst);
        // The graceful stop delivers what is queued: quickly now.
        handler.hurry.store(true, Ordering::SeqCst);
        let _ = stop.send(());
        run.await.unwrap().unwrap();
        (base, peak, handled)
    });
    let (base, peak, handled) = result;
    println!("RESULT base_kib={base} peak_kib={peak} handled={handled}");
}

#[test]
fn a_slow_handler_slows_the_watch_and_memory_stays_bounded() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "library::backpressure_child",
            "--ignored",
            "--nocapture",
        ])
        .env("FARO_BACKPRESSURE_CHILD", "1")
        .output()
        .expect("running the child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("no result: {stdout}"));
    let figures: BTreeMap<&str, u64> = line["RESULT ".len()..]
        .split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k, v.parse().unwrap()))
        .collect();
    let growth_mib = (figures["peak_kib"] - figures["base_kib"]) / 1024;
    // 100,000 events of 1 KiB are about 100 MiB: holding them would show.
    assert!(
        growth_mib < 48,
        "faro's memory grew by {growth_mib} MiB while 100,000 events waited: {line}"
    );
    let handled = figures["handled"] as usize;
    assert!(handled > 100, "events flow: {line}");
    assert!(
        handled < 50_000,
        "the handler sets the pace (1 ms per event): {line}"
    );
}

/// Waits until the runtime runs no task (panics after 5 s with the count).
fn assert_no_task_left(runtime: &tokio::runtime::Runtime, after: &str) {
    // The client was dropped with the watcher: its connection tasks end with it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let alive = runtime.metrics().num_alive_tasks();
        if alive == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{alive} tasks still alive after {after}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A config that runs faro's namespace watch and CRD watch besides the configmaps.
fn shop_configmaps() -> WatchConfig {
    WatchConfig::new().entry(
        Entry::new("v1/configmaps".parse().unwrap())
            .namespace_pattern("shop-.*")
            .unwrap(),
    )
}

#[test]
fn shutdown_leaves_no_task_behind_with_run_and_with_a_stream() {
    let env = Env::start();
    env.apply(&crate::util::namespace("shop-1", &[]));
    env.apply(&configmap("shop-1", "a", &[], "1"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let handler = Arc::new(Count::default());
    runtime.block_on(async {
        let watcher = Watcher::new(client(&env).await, shop_configmaps()).workers(3);
        let ready = watcher.ready();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let ready_then_stop = async move {
            ready.wait().await;
            let _ = stop.send(());
        };
        let run = watcher.run(handler.clone(), async {
            let _ = stopped.await;
        });
        let (result, ()) =
            tokio::time::timeout(PATIENCE, async { tokio::join!(run, ready_then_stop) })
                .await
                .expect("run returns after the shutdown");
        result.unwrap();
    });
    assert!(handler.events.load(Ordering::SeqCst) >= 1);
    assert_no_task_left(&runtime, "run returned");

    runtime.block_on(async {
        let mut events = Watcher::new(client(&env).await, shop_configmaps()).stream();
        while !matches!(next(&mut events).await, Signal::Ready { .. }) {}
        events.stopper().stop();
        tokio::time::timeout(PATIENCE, async { while events.next().await.is_some() {} })
            .await
            .expect("the stream ends after the stop");
    });
    assert_no_task_left(&runtime, "the stream ended");
}
