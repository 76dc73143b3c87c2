//! `CustomizationService` over gRPC: a thin adapter over the domain `Customization`.

use std::sync::Arc;

use proto::v1 as pb;
use proto::v1::customization_service_server::CustomizationService;
use tonic::{Request, Response, Streaming};

use crate::domain::customization::Customization;
use crate::grpc::convert;
use crate::grpc::gate::session;
use crate::grpc::status::GrpcResult;

pub struct CustomizationAdapter(pub Arc<Customization>);

#[tonic::async_trait]
impl CustomizationService for CustomizationAdapter {
    async fn get_form(&self, request: Request<pb::GetFormRequest>) -> GrpcResult<pb::GetFormResponse> {
        let session = session(&request)?;
        let product = convert::product_id(&request.get_ref().product_id)?;
        let form = self.0.form(&session, &product).await?;
        Ok(Response::new(pb::GetFormResponse { form: Some(convert::form(&form)) }))
    }

    async fn create_draft(&self, request: Request<pb::CreateDraftRequest>) -> GrpcResult<pb::CreateDraftResponse> {
        let session = session(&request)?;
        let request = request.into_inner();
        let product = convert::product_id(&request.product_id)?;
        let quantity = convert::create_quantity(request.quantity)?;
        let values = request.values.into_iter().collect();
        let (draft, errors) = self.0.create_draft(&session, &product, quantity, values).await?;
        Ok(Response::new(pb::CreateDraftResponse {
            draft: Some(convert::draft(draft)),
            field_errors: convert::field_errors(errors),
        }))
    }

    async fn update_draft(&self, request: Request<pb::UpdateDraftRequest>) -> GrpcResult<pb::UpdateDraftResponse> {
        let session = session(&request)?;
        let request = request.into_inner();
        let draft_id = request.draft_id.clone();
        let changes = convert::draft_changes(request)?;
        let (draft, errors) = self.0.update_draft(&session, &draft_id, changes).await?;
        Ok(Response::new(pb::UpdateDraftResponse {
            draft: Some(convert::draft(draft)),
            field_errors: convert::field_errors(errors),
        }))
    }

    async fn render_preview(
        &self,
        request: Request<pb::RenderPreviewRequest>,
    ) -> GrpcResult<pb::RenderPreviewResponse> {
        let session = session(&request)?;
        let request = request.into_inner();
        let width = convert::preview_width(request.width_px)?;
        let pages = convert::page_numbers(&request.page_numbers)?;
        let (images, page_count) = self.0.preview(&session, &request.draft_id, width, &pages).await?;
        Ok(Response::new(convert::preview_pages(images, page_count)))
    }

    async fn finalize_draft(
        &self,
        request: Request<pb::FinalizeDraftRequest>,
    ) -> GrpcResult<pb::FinalizeDraftResponse> {
        let session = session(&request)?;
        let (file, draft) = self.0.finalize(&session, &request.get_ref().draft_id).await?;
        Ok(Response::new(pb::FinalizeDraftResponse {
            print_file: Some(convert::print_file(file)),
            draft: Some(convert::draft(draft)),
        }))
    }

    async fn upload_print_file(
        &self,
        request: Request<Streaming<pb::UploadPrintFileRequest>>,
    ) -> GrpcResult<pb::UploadPrintFileResponse> {
        let session = session(&request)?;
        let mut stream = request.into_inner();
        // The gate bounds the whole stream in time; the domain counts its bytes as they come.
        let (size_bytes, display_name) = convert::upload_metadata(stream.message().await?)?;
        let mut upload = self.0.begin_upload(&session, size_bytes, display_name).await?;
        while let Some(message) = stream.message().await? {
            upload.push(&convert::upload_chunk(message)?)?;
        }
        let file = self.0.finish_upload(&session, upload).await?;
        Ok(Response::new(pb::UploadPrintFileResponse { print_file: Some(convert::print_file(file)) }))
    }
}
