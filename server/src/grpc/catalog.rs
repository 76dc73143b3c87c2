//! `CatalogService` over gRPC: a thin adapter over the domain `Catalog`.

use std::sync::Arc;

use proto::v1 as pb;
use proto::v1::catalog_service_server::CatalogService;
use tonic::{Request, Response};

use crate::domain::catalog::Catalog;
use crate::domain::session::SessionManager;
use crate::grpc::convert;
use crate::grpc::gate::session;
use crate::grpc::status::GrpcResult;

pub struct CatalogAdapter {
    pub catalog: Arc<Catalog>,
    pub sessions: Arc<SessionManager>,
}

#[tonic::async_trait]
impl CatalogService for CatalogAdapter {
    async fn list_categories(
        &self,
        request: Request<pb::ListCategoriesRequest>,
    ) -> GrpcResult<pb::ListCategoriesResponse> {
        let visit = self.sessions.visit(&session(&request)?);
        let roots = self.catalog.categories(&visit).await?;
        Ok(Response::new(pb::ListCategoriesResponse { categories: roots.into_iter().map(convert::category).collect() }))
    }

    async fn list_products(&self, request: Request<pb::ListProductsRequest>) -> GrpcResult<pb::ListProductsResponse> {
        let visit = self.sessions.visit(&session(&request)?);
        let query = convert::list_products(request.into_inner())?;
        let page = self.catalog.list_products(&visit, query).await?;
        Ok(Response::new(convert::product_page(page)))
    }

    async fn get_product(&self, request: Request<pb::GetProductRequest>) -> GrpcResult<pb::GetProductResponse> {
        let visit = self.sessions.visit(&session(&request)?);
        let id = convert::product_id(&request.get_ref().product_id)?;
        let product = self.catalog.product(&visit, &id).await?;
        Ok(Response::new(pb::GetProductResponse { product: Some(convert::product(product)) }))
    }

    async fn get_thumbnail(&self, request: Request<pb::GetThumbnailRequest>) -> GrpcResult<pb::GetThumbnailResponse> {
        let visit = self.sessions.visit(&session(&request)?);
        let id = convert::product_id(&request.get_ref().product_id)?;
        let image = self.catalog.thumbnail(&visit, &id).await?;
        Ok(Response::new(pb::GetThumbnailResponse {
            content_type: image.info.content_type,
            data: image.data.to_vec(),
            width_px: image.info.width_px as i32,
            height_px: image.info.height_px as i32,
        }))
    }
}
