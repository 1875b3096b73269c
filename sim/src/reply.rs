//! Building HTTP responses: JSON documents, raw pre-serialized JSON, Status errors (with
//! `Retry-After` when the error carries one) and watch streams; gzip for large bodies, as
//! kube-apiserver encodes them.

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

/// kube-apiserver gzips a response whose body is over 128 KiB when the request accepts gzip
/// (`defaultGzipThresholdBytes` and gzip level 1, `defaultGzipContentEncodingLevel`, in
/// k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/writers.go; the
/// `APIResponseCompression` feature, on by default since 1.16), adding `Content-Encoding: gzip`
/// and `Vary: Accept-Encoding`. Watch streams are never encoded: only complete bodies are.
pub const GZIP_THRESHOLD: usize = 128 * 1024;

/// Encodes `reply`'s body with gzip if the request accepts it and the body is large enough.
pub fn negotiate_encoding(reply: Reply, request: &http::HeaderMap) -> Reply {
    let accepts = request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            // `q=0` (any spelling of zero) refuses the coding (RFC 9110 §12.4.2).
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    == Some(0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        });
    let big = matches!(reply.body(), Body::Full(Some(b)) if b.len() > GZIP_THRESHOLD);
    if !accepts || !big || reply.headers().contains_key(header::CONTENT_ENCODING) {
        return reply;
    }
    let (mut parts, body) = reply.into_parts();
    let Body::Full(Some(plain)) = body else {
        return Response::from_parts(parts, body);
    };
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(plain.len() / 4),
        flate2::Compression::fast(),
    );
    let encoded = encoder.write_all(&plain).and_then(|()| encoder.finish());
    let Ok(encoded) = encoded else {
        return Response::from_parts(parts, Body::Full(Some(plain)));
    };
    parts
        .headers
        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    parts
        .headers
        .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    Response::from_parts(parts, Body::full(encoded))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::for_code;

    #[test]
    fn large_bodies_are_gzipped_when_accepted_and_small_ones_never() {
        use std::io::Read;
        let big = vec![b'x'; GZIP_THRESHOLD + 1];
        let mut asks = http::HeaderMap::new();
        asks.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, deflate"),
        );
        let r = negotiate_encoding(raw(200, "application/json", big.clone()), &asks);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        let Body::Full(Some(encoded)) = r.into_body() else {
            panic!("not a full body")
        };
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&encoded[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, big);
        let small = negotiate_encoding(raw(200, "application/json", vec![b'x'; 100]), &asks);
        assert!(!small.headers().contains_key(header::CONTENT_ENCODING));
        let mut refuses = http::HeaderMap::new();
        refuses.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0"),
        );
        let r = negotiate_encoding(raw(200, "application/json", big.clone()), &refuses);
        assert!(!r.headers().contains_key(header::CONTENT_ENCODING));
        let r = negotiate_encoding(raw(200, "application/json", big), &http::HeaderMap::new());
        assert!(!r.headers().contains_key(header::CONTENT_ENCODING));
    }

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
