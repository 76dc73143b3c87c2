//! Discovery with no proto files: server reflection (v1 and v1alpha) lists every service of the
//! contract, and the standard health service reports SERVING.

use tests::core::TestCore;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const CONTRACT: &[&str] = &[
    "podconnect.v1.SessionService",
    "podconnect.v1.CatalogService",
    "podconnect.v1.CustomizationService",
    "podconnect.v1.SsoService",
    "podconnect.v1.PrintService",
    "podconnect.v1.DeviceService",
    "podconnect.v1.UsageService",
    "grpc.health.v1.Health",
];

#[tokio::test]
async fn reflection_v1_lists_every_service() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let core = TestCore::start().await;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = ServerReflectionClient::new(core.channel().await)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else { panic!("unexpected reply") };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in CONTRACT {
        assert!(names.iter().any(|n| n == service), "{service} missing from {names:?}");
    }
}

#[tokio::test]
async fn reflection_v1alpha_serves_descriptors() {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

    let core = TestCore::start().await;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol("podconnect.v1.CatalogService".into())),
    };
    let mut replies = ServerReflectionClient::new(core.channel().await)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = reply.message_response else {
        panic!("unexpected reply")
    };
    assert!(!files.file_descriptor_proto.is_empty(), "the descriptor of catalog.proto is served");
}

#[tokio::test]
async fn health_is_serving_for_the_server_and_each_service() {
    let core = TestCore::start().await;
    let mut health = HealthClient::new(core.channel().await);
    for service in std::iter::once("").chain(CONTRACT.iter().copied().filter(|s| s.starts_with("podconnect"))) {
        let status = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let err = health.check(HealthCheckRequest { service: "no.such.Service".into() }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}
