//! Prometheus metrics: calls per method and final gRPC status, call latency per method, calls in
//! flight. Method labels come from the contract's descriptor so a caller cannot invent labels.

use std::collections::HashSet;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use prost::Message as _;
use tonic::Code;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

type HistogramFamily = Family<MethodLabels, Histogram, fn() -> Histogram>;

/// The gateway's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: HistogramFamily,
    in_flight: Gauge<i64, AtomicI64>,
    known_methods: HashSet<String>,
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
        Metrics { registry, calls, latency, in_flight, known_methods: contract_methods() }
    }

    /// The label for a request path: the path itself when the contract has it, else "other".
    pub fn method_label(&self, path: &str) -> String {
        if self.known_methods.contains(path) { path.to_owned() } else { "other".to_owned() }
    }

    pub fn call_started(&self) {
        self.in_flight.inc();
    }

    pub fn call_finished(&self, method: &str, code: Code, elapsed: Duration) {
        self.in_flight.dec();
        let code = format!("{code:?}");
        self.calls.get_or_create(&CallLabels { method: method.to_owned(), code }).inc();
        self.latency.get_or_create(&MethodLabels { method: method.to_owned() }).observe(elapsed.as_secs_f64());
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
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
fn contract_methods() -> HashSet<String> {
    let Ok(set) = prost_types::FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET) else {
        return HashSet::new();
    };
    let mut methods = HashSet::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                methods.insert(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
            }
        }
    }
    methods
}
