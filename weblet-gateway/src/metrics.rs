//! Prometheus metrics: calls per method and final gRPC status, call latency per method, calls in
//! flight, and per core its outstanding calls and whether it is serving (read when scraped). Method labels come from the contract's descriptor so a caller cannot invent labels.
//! Each method's series are looked up once and kept, so recording a call allocates nothing and
//! takes no lock.

use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use prost::Message as _;
use tonic::Code;

use crate::upstream::Upstream;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CoreLabels {
    core: String,
}

type HistogramFamily = Family<MethodLabels, Histogram, fn() -> Histogram>;

/// gRPC has 17 status codes, 0 to 16.
const CODES: usize = 17;

/// The gateway's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: HistogramFamily,
    in_flight: Gauge<i64, AtomicI64>,
    methods: HashMap<String, Arc<MethodMetrics>>,
    other: Arc<MethodMetrics>,
    core_calls: Family<CoreLabels, Gauge>,
    core_serving: Family<CoreLabels, Gauge>,
    /// Where the cores' states are read from when scraped.
    cores: OnceLock<Arc<Upstream>>,
}

/// One method's series, created on first use (so `/metrics` lists only what happened) and then
/// shared: prometheus-client's handles are reference-counted.
pub struct MethodMetrics {
    label: String,
    latency: OnceLock<Histogram>,
    calls: [OnceLock<Counter>; CODES],
}

impl MethodMetrics {
    fn new(label: String) -> Arc<MethodMetrics> {
        Arc::new(MethodMetrics { label, latency: OnceLock::new(), calls: std::array::from_fn(|_| OnceLock::new()) })
    }

    /// The method's label: its path, or "other".
    pub fn label(&self) -> &str {
        &self.label
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let calls = Family::<CallLabels, Counter>::default();
        let latency: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.00025, 2.0, 18)));
        let in_flight = Gauge::<i64, AtomicI64>::default();
        let mut registry = Registry::with_prefix("weblet_gateway");
        registry.register("grpc_calls", "Calls forwarded, by method and final gRPC status", calls.clone());
        registry.register(
            "grpc_call_duration_seconds",
            "Whole-call latency (for streams, until the last frame), by method",
            latency.clone(),
        );
        registry.register("grpc_calls_in_flight", "Calls in flight", in_flight.clone());
        let core_calls = Family::<CoreLabels, Gauge>::default();
        let core_serving = Family::<CoreLabels, Gauge>::default();
        registry.register(
            "core_calls_outstanding",
            "Calls sent to a core and not yet ended, by core",
            core_calls.clone(),
        );
        registry.register(
            "core_serving",
            "Whether a core gets calls (1: its health check answers SERVING; 0: ejected), by core",
            core_serving.clone(),
        );
        let methods = contract_methods().into_iter().map(|path| (path.clone(), MethodMetrics::new(path))).collect();
        Metrics {
            registry,
            calls,
            latency,
            in_flight,
            methods,
            other: MethodMetrics::new("other".to_owned()),
            core_calls,
            core_serving,
            cores: OnceLock::new(),
        }
    }

    /// Reports the states of `upstream`'s cores from now on.
    pub fn watch_cores(&self, upstream: Arc<Upstream>) {
        let _ = self.cores.set(upstream);
    }

    /// The series of a request path: its own when the contract has it, else those of "other".
    pub fn method(&self, path: &str) -> Arc<MethodMetrics> {
        self.methods.get(path).unwrap_or(&self.other).clone()
    }

    pub fn call_started(&self) {
        self.in_flight.inc();
    }

    pub fn call_finished(&self, method: &MethodMetrics, code: Code, elapsed: Duration) {
        self.in_flight.dec();
        let calls = method.calls[(code as usize).min(CODES - 1)].get_or_init(|| {
            self.calls.get_or_create(&CallLabels { method: method.label.clone(), code: format!("{code:?}") }).clone()
        });
        calls.inc();
        let latency = method
            .latency
            .get_or_init(|| self.latency.get_or_create(&MethodLabels { method: method.label.clone() }).clone());
        latency.observe(elapsed.as_secs_f64());
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        if let Some(upstream) = self.cores.get() {
            // Cores come and go with name resolution: the series are those of now.
            self.core_calls.clear();
            self.core_serving.clear();
            for core in upstream.states() {
                let labels = CoreLabels { core: core.label };
                self.core_calls.get_or_create(&labels).set(core.outstanding as i64);
                self.core_serving.get_or_create(&labels).set(i64::from(core.serving));
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Every `/<package.Service>/<Method>` of the compiled contract.
fn contract_methods() -> Vec<String> {
    let Ok(set) = prost_types::FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET) else {
        return Vec::new();
    };
    let mut methods = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                methods.push(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
            }
        }
    }
    methods
}
