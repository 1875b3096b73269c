//! Building HTTP responses: JSON documents, raw pre-serialized JSON, Status errors (with
//! `Retry-After` when the error carries one) and watch streams.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::Value;

use crate::body::Body;
use crate::status::ApiError;

/// A response.
pub type Reply = Response<Body>;

/// A response with a raw body and content type.
pub fn raw(code: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Body::full(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// A JSON document.
pub fn json(code: u16, v: &Value) -> Reply {
    raw(
        code,
        "application/json",
        crate::object::to_canonical_string(v),
    )
}

/// Pre-serialized JSON.
pub fn json_bytes(code: u16, b: Bytes) -> Reply {
    raw(code, "application/json", b)
}

/// A Status error.
pub fn error(e: &ApiError) -> Reply {
    let mut r = json(e.code, &e.to_value());
    if let Some(secs) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// A streaming JSON body (watch).
pub fn stream(body: Body) -> Reply {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::for_code;

    #[test]
    fn errors_carry_their_code_and_retry_after() {
        let mut e = for_code(429);
        e.retry_after = Some(4);
        let r = error(&e);
        assert_eq!(r.status().as_u16(), 429);
        assert_eq!(
            r.headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("4")
        );
    }
}
