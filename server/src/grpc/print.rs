//! `PrintService` and the operators' `DeviceService` over gRPC: thin adapters over `Jobs` and the
//! device registry.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt as _};
use proto::v1 as pb;
use proto::v1::device_service_server::DeviceService;
use proto::v1::print_service_server::PrintService;
use tonic::{Request, Response, Status};

use crate::domain::devices::{DeliveryMode, Devices};
use crate::domain::jobs::Jobs;
use crate::grpc::convert;
use crate::grpc::gate::{operator, session};
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

    async fn plan_job(&self, request: Request<pb::PlanJobRequest>) -> GrpcResult<pb::PlanJobResponse> {
        let session = session(&request)?;
        let plan = convert::plan_request(request.into_inner())?;
        let plan = self.0.plan(&session, plan).await?;
        Ok(Response::new(pb::PlanJobResponse {
            layout: Some(convert::layout(&plan.layout)),
            sheet_previews: plan.previews.iter().map(convert::preview_page).collect(),
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
                Err(err) => Some((Err(err.into()), None)),
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

/// The operators' device registry.
pub struct DeviceAdapter(pub Arc<Devices>);

#[tonic::async_trait]
impl DeviceService for DeviceAdapter {
    async fn register_device(
        &self,
        request: Request<pb::RegisterDeviceRequest>,
    ) -> GrpcResult<pb::RegisterDeviceResponse> {
        operator(&request)?;
        let device = self.0.register(convert::register_device(request.into_inner())?).await?;
        Ok(Response::new(pb::RegisterDeviceResponse { device: Some(convert::device(&device)) }))
    }

    async fn get_device(&self, request: Request<pb::GetDeviceRequest>) -> GrpcResult<pb::GetDeviceResponse> {
        operator(&request)?;
        let device = self.0.get(&request.get_ref().device_id).await?;
        Ok(Response::new(pb::GetDeviceResponse { device: Some(convert::device(&device)) }))
    }

    async fn list_devices(&self, request: Request<pb::ListDevicesRequest>) -> GrpcResult<pb::ListDevicesResponse> {
        operator(&request)?;
        let (page_size, page_token) = convert::device_page(request.get_ref())?;
        let page = self.0.list(page_size, page_token).await?;
        Ok(Response::new(pb::ListDevicesResponse {
            total_size: i32::try_from(page.total).unwrap_or(i32::MAX),
            devices: page.devices.iter().map(convert::device).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_device(&self, request: Request<pb::UpdateDeviceRequest>) -> GrpcResult<pb::UpdateDeviceResponse> {
        operator(&request)?;
        let (id, wire, paths) = convert::device_update(request.into_inner())?;
        let current = self.0.get(id.as_str()).await?;
        let device = self.0.update(convert::merge_device(&current, wire, &paths)?).await?;
        Ok(Response::new(pb::UpdateDeviceResponse { device: Some(convert::device(&device)) }))
    }

    async fn delete_device(&self, request: Request<pb::DeleteDeviceRequest>) -> GrpcResult<pb::DeleteDeviceResponse> {
        operator(&request)?;
        self.0.delete(&request.get_ref().device_id).await?;
        Ok(Response::new(pb::DeleteDeviceResponse {}))
    }
}
