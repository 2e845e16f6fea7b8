//! The one place where internal errors become CSC errors: the HTTP status, the `error` code and
//! the `error_description` of spec §10. Internal detail is logged, never sent.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use csc_types::ErrorResponse;

/// The spec's generic text for a malformed request (§11, every method's error table).
pub const MALFORMED: &str = "The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed.";

/// An error as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    #[error("not found")]
    NotFound,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) | ApiError::NotFound => "invalid_request",
            ApiError::Internal(_) => "server_error",
        }
    }

    fn description(&self) -> String {
        match self {
            ApiError::InvalidRequest(d) => d.clone(),
            ApiError::NotFound => "The requested method does not exist".into(),
            ApiError::Internal(_) => "The server encountered an unexpected condition".into(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(detail) = self {
            tracing::error!(%detail, "request failed");
        }
        HttpResponse::build(self.status_code()).json(ErrorResponse {
            error: self.code().into(),
            error_description: Some(self.description()),
        })
    }
}

impl From<sam::SamError> for ApiError {
    fn from(e: sam::SamError) -> Self {
        ApiError::Internal(e.to_string())
    }
}
