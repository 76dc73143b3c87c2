//! `PrintService` and the operators' `DeviceService` over gRPC: thin adapters over `Jobs` and the
//! device registry.

use std::pin::Pin;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::{Stream, StreamExt as _};
use proto::v1 as pb;
use proto::v1::device_service_server::DeviceService;
use proto::v1::print_service_server::PrintService;
use tonic::{Request, Response, Status};

use crate::domain::error::CoreError;
use crate::domain::jobs::Jobs;
use crate::domain::printing::{DeliveryMode, DeviceStore};
use crate::domain::session::DeviceId;
use crate::grpc::convert;
use crate::grpc::gate::Operator;
use crate::grpc::session::session;
use crate::grpc::status::GrpcResult;

pub struct PrintAdapter(pub Arc<Jobs>);

type JobStream = Pin<Box<dyn Stream<Item = Result<pb::WatchJobResponse, Status>> + Send>>;

#[tonic::async_trait]
impl PrintService for PrintAdapter {
    type WatchJobStream = JobStream;

    async fn get_printer_capabilities(
        &self,
        request: Request<pb::GetPrinterCapabilitiesRequest>,
    ) -> GrpcResult<pb::GetPrinterCapabilitiesResponse> {
        let session = session(&request)?;
        let (device, capabilities) = self.0.capabilities(&session).await?;
        Ok(Response::new(pb::GetPrinterCapabilitiesResponse {
            device_id: device.id.as_str().to_owned(),
            device_display_name: device.display_name.clone(),
            delivery_mode: convert::device(&device).delivery_mode,
            capabilities: Some(convert::capabilities(&capabilities)),
            // Only the weblet can ask a pulling printer.
            accepting_jobs: (device.delivery != DeliveryMode::DevicePull).then_some(capabilities.accepting_jobs),
            printer_state_reasons: capabilities.state_reasons.clone(),
            printer_state_message: String::new(),
        }))
    }

    async fn submit_job(&self, request: Request<pb::SubmitJobRequest>) -> GrpcResult<pb::SubmitJobResponse> {
        let session = session(&request)?;
        let submit = convert::submit_request(request.into_inner())?;
        let (job, link) = self.0.submit(&session, submit).await?;
        Ok(Response::new(pb::SubmitJobResponse {
            job: Some(convert::job(&job)),
            pull_delivery: link
                .map(|l| pb::PullDelivery { document_url: l.url, expire_time: Some(convert::timestamp(l.expires_at)) }),
        }))
    }

    async fn get_job(&self, request: Request<pb::GetJobRequest>) -> GrpcResult<pb::GetJobResponse> {
        let session = session(&request)?;
        let job = self.0.get(&session, &request.get_ref().job_id).await?;
        Ok(Response::new(pb::GetJobResponse { job: Some(convert::job(&job)) }))
    }

    async fn watch_job(&self, request: Request<pb::WatchJobRequest>) -> GrpcResult<Self::WatchJobStream> {
        let session = session(&request)?;
        let (current, watch) = self.0.watch(&session, &request.get_ref().job_id).await?;
        let first =
            futures::stream::once(async move { Ok(pb::WatchJobResponse { job: Some(convert::job(&current)) }) });
        let changes = futures::stream::unfold(watch, |watch| async move {
            let mut watch = watch?;
            match watch.next().await? {
                Ok(job) => {
                    // The terminal change is the last message.
                    let rest = (!job.state.is_terminal()).then_some(watch);
                    Some((Ok(pb::WatchJobResponse { job: Some(convert::job(&job)) }), rest))
                }
                Err(err) => Some((Err(Status::from(err)), None)),
            }
        });
        Ok(Response::new(Box::pin(first.chain(changes))))
    }

    async fn cancel_job(&self, request: Request<pb::CancelJobRequest>) -> GrpcResult<pb::CancelJobResponse> {
        let session = session(&request)?;
        let job = self.0.cancel(&session, &request.get_ref().job_id).await?;
        Ok(Response::new(pb::CancelJobResponse { job: Some(convert::job(&job)) }))
    }

    async fn report_device_job_state(
        &self,
        request: Request<pb::ReportDeviceJobStateRequest>,
    ) -> GrpcResult<pb::ReportDeviceJobStateResponse> {
        let session = session(&request)?;
        let status = convert::reported_status(request.get_ref())?;
        let request = request.into_inner();
        let job = self.0.report(&session, &request.job_id, status, Some(request.device_job_id)).await?;
        Ok(Response::new(pb::ReportDeviceJobStateResponse { job: Some(convert::job(&job)) }))
    }
}

pub struct DeviceAdapter(pub Arc<dyn DeviceStore>);

fn operator<T>(request: &Request<T>) -> Result<(), Status> {
    match request.extensions().get::<Operator>() {
        Some(_) => Ok(()),
        None => Err(Status::internal("internal error: the call was not authenticated as an operator")),
    }
}

/// A device id naming an existing device: required; one no device could have names none.
fn device_id(raw: &str) -> Result<DeviceId, Status> {
    if raw.is_empty() {
        return Err(CoreError::InvalidArgument("device_id is required".into()).into());
    }
    DeviceId::parse(raw).map_err(|_| CoreError::NotFound(format!("no device has the id \"{raw}\"")).into())
}

#[tonic::async_trait]
impl DeviceService for DeviceAdapter {
    async fn register_device(
        &self,
        request: Request<pb::RegisterDeviceRequest>,
    ) -> GrpcResult<pb::RegisterDeviceResponse> {
        operator(&request)?;
        let wire = request.into_inner().device.ok_or_else(|| Status::invalid_argument("device is required"))?;
        let device = convert::device_from_wire(wire)?;
        self.0.insert(&device).await?;
        let stored = self.0.get(&device.id).await?.unwrap_or(device);
        Ok(Response::new(pb::RegisterDeviceResponse { device: Some(convert::device(&stored)) }))
    }

    async fn get_device(&self, request: Request<pb::GetDeviceRequest>) -> GrpcResult<pb::GetDeviceResponse> {
        operator(&request)?;
        let id = device_id(&request.get_ref().device_id)?;
        let device = self
            .0
            .get(&id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("device \"{}\" is not registered", id.as_str())))?;
        Ok(Response::new(pb::GetDeviceResponse { device: Some(convert::device(&device)) }))
    }

    async fn list_devices(&self, request: Request<pb::ListDevicesRequest>) -> GrpcResult<pb::ListDevicesResponse> {
        operator(&request)?;
        let request = request.into_inner();
        let limit = match request.page_size {
            n if n < 0 => return Err(Status::invalid_argument("page_size must not be negative")),
            0 => 50,
            n => (n as u32).min(500),
        };
        let after = match request.page_token.as_str() {
            "" => None,
            token => {
                let raw = URL_SAFE_NO_PAD
                    .decode(token)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| DeviceId::parse(&s).ok())
                    .ok_or_else(|| Status::invalid_argument("page_token is not one this server issued"))?;
                Some(raw)
            }
        };
        let mut devices = self.0.list(after.as_ref(), limit + 1).await?;
        let next_page_token = if devices.len() > limit as usize {
            devices.truncate(limit as usize);
            devices.last().map(|d| URL_SAFE_NO_PAD.encode(d.id.as_str())).unwrap_or_default()
        } else {
            String::new()
        };
        let total = self.0.device_count().await?;
        Ok(Response::new(pb::ListDevicesResponse {
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
            devices: devices.iter().map(convert::device).collect(),
            next_page_token,
        }))
    }

    async fn update_device(&self, request: Request<pb::UpdateDeviceRequest>) -> GrpcResult<pb::UpdateDeviceResponse> {
        operator(&request)?;
        let request = request.into_inner();
        let wire = request.device.ok_or_else(|| Status::invalid_argument("device is required"))?;
        let mask = request.update_mask.ok_or_else(|| Status::invalid_argument("update_mask is required"))?;
        let id = device_id(&wire.id)?;
        if mask.paths.is_empty() {
            return Err(CoreError::InvalidArgument(
                "update_mask names no field; name the fields to change, e.g. \"location\", or \"*\" for all".into(),
            )
            .into());
        }
        let current = self
            .0
            .get(&id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("device \"{}\" is not registered", id.as_str())))?;
        let mut merged = convert::device(&current);
        for path in &mask.paths {
            match path.as_str() {
                "*" => merged = wire.clone(),
                "display_name" => merged.display_name = wire.display_name.clone(),
                "model" => merged.model = wire.model.clone(),
                "delivery_mode" => merged.delivery_mode = wire.delivery_mode,
                "printer_uri" => merged.printer_uri = wire.printer_uri.clone(),
                "pinned_certificate_sha256" => {
                    merged.pinned_certificate_sha256 = wire.pinned_certificate_sha256.clone()
                }
                "location" => merged.location = wire.location.clone(),
                "capabilities" => merged.capabilities = wire.capabilities.clone(),
                other => {
                    return Err(Status::invalid_argument(format!(
                        "update_mask names \"{other}\", which cannot be changed"
                    )));
                }
            }
        }
        merged.id = current.id.as_str().to_owned();
        let device = convert::device_from_wire(merged)?;
        self.0.update(&device).await?;
        let stored = self.0.get(&device.id).await?.unwrap_or(device);
        Ok(Response::new(pb::UpdateDeviceResponse { device: Some(convert::device(&stored)) }))
    }

    async fn delete_device(&self, request: Request<pb::DeleteDeviceRequest>) -> GrpcResult<pb::DeleteDeviceResponse> {
        operator(&request)?;
        let id = device_id(&request.get_ref().device_id)?;
        if !self.0.delete(&id).await? {
            return Err(CoreError::NotFound(format!("device \"{}\" is not registered", id.as_str())).into());
        }
        Ok(Response::new(pb::DeleteDeviceResponse {}))
    }
}
