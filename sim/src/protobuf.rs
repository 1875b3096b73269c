//! Decoding the protobuf bodies kubectl's generators send (`kubectl create namespace`,
//! `kubectl create configmap`): the `k8s\0` envelope around a `runtime.Unknown`, holding a
//! `v1.Namespace` or `v1.ConfigMap` (field numbers from `k8s.io/api/core/v1/generated.proto`
//! and `k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto`). Other kinds are refused with
//! 415; the reply is always JSON.

use serde_json::{Map, Value, json};

/// The envelope magic.
const MAGIC: &[u8] = b"k8s\x00";

/// One decoded field: number and payload.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let (num, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => out.push((num, Field::Varint(varint(buf, &mut pos)?))),
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).map_err(|_| "length overflow")?;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= buf.len())
                    .ok_or("truncated field")?;
                out.push((num, Field::Bytes(&buf[pos..end])));
                pos = end;
            }
            1 => pos += 8,
            5 => pos += 4,
            _ => return Err(format!("unsupported wire type {wire}")),
        }
    }
    Ok(out)
}

fn string(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn map_entry(b: &[u8]) -> Result<(String, Vec<u8>), String> {
    let mut k = String::new();
    let mut v = Vec::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => k = string(x),
            (2, Field::Bytes(x)) => v = x.to_vec(),
            _ => {}
        }
    }
    Ok((k, v))
}

fn object_meta(b: &[u8]) -> Result<Value, String> {
    let mut meta = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    for (n, f) in fields(b)? {
        if let Field::Bytes(x) = f {
            match n {
                1 => {
                    meta.insert("name".into(), json!(string(x)));
                }
                2 => {
                    meta.insert("generateName".into(), json!(string(x)));
                }
                3 => {
                    meta.insert("namespace".into(), json!(string(x)));
                }
                11 => {
                    let (k, v) = map_entry(x)?;
                    labels.insert(k, json!(string(&v)));
                }
                12 => {
                    let (k, v) = map_entry(x)?;
                    annotations.insert(k, json!(string(&v)));
                }
                _ => {}
            }
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    Ok(Value::Object(meta))
}

/// Decodes an envelope into a JSON object (Namespace or ConfigMap).
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let inner = body
        .strip_prefix(MAGIC)
        .ok_or("missing protobuf envelope magic")?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(inner)? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                for (m, g) in fields(tm)? {
                    match (m, g) {
                        (1, Field::Bytes(x)) => api_version = string(x),
                        (2, Field::Bytes(x)) => kind = string(x),
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    let mut obj = json!({"apiVersion": api_version, "kind": kind});
    match kind.as_str() {
        "Namespace" => {
            for (n, f) in fields(raw)? {
                if let (1, Field::Bytes(x)) = (n, f) {
                    obj["metadata"] = object_meta(x)?;
                }
            }
        }
        "ConfigMap" => {
            let mut data = Map::new();
            let mut binary = Map::new();
            for (n, f) in fields(raw)? {
                match (n, f) {
                    (1, Field::Bytes(x)) => obj["metadata"] = object_meta(x)?,
                    (2, Field::Bytes(x)) => {
                        let (k, v) = map_entry(x)?;
                        data.insert(k, json!(string(&v)));
                    }
                    (3, Field::Bytes(x)) => {
                        let (k, v) = map_entry(x)?;
                        binary.insert(k, json!(base64(&v)));
                    }
                    (4, Field::Varint(b)) => obj["immutable"] = json!(b != 0),
                    _ => {}
                }
            }
            if !data.is_empty() {
                obj["data"] = Value::Object(data);
            }
            if !binary.is_empty() {
                obj["binaryData"] = Value::Object(binary);
            }
        }
        other => {
            return Err(format!(
                "protobuf bodies of kind {other:?} are not supported by kube-sim; send JSON"
            ));
        }
    }
    Ok(obj)
}

/// Standard base64 (binaryData values are bytes on the wire, base64 strings in JSON).
fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(num: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(num << 3) | 2, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn the_observed_namespace_envelope_decodes() {
        // 6b387300 0a0f0a027631 12094e616d657370616365 121b0a130a03666f6f… (k8s-protocol.md §7.2)
        let typemeta = [ld(1, b"v1"), ld(2, b"Namespace")].concat();
        let meta = [ld(1, b"foo"), ld(11, &[ld(1, b"a"), ld(2, b"b")].concat())].concat();
        let ns = [ld(1, &meta), ld(2, b""), ld(3, b"")].concat();
        let body = [MAGIC.to_vec(), ld(1, &typemeta), ld(2, &ns)].concat();
        assert_eq!(
            &body[..10],
            &[0x6b, 0x38, 0x73, 0x00, 0x0a, 0x0f, 0x0a, 0x02, 0x76, 0x31]
        );
        let v = decode(&body).expect("decodes");
        assert_eq!(v["kind"], "Namespace");
        assert_eq!(v["metadata"]["name"], "foo");
        assert_eq!(v["metadata"]["labels"]["a"], "b");
    }

    #[test]
    fn configmap_data_decodes_and_garbage_is_an_error() {
        let typemeta = [ld(1, b"v1"), ld(2, b"ConfigMap")].concat();
        let cm = [
            ld(1, &ld(1, b"cmx")),
            ld(2, &[ld(1, b"a"), ld(2, b"b")].concat()),
            ld(3, &[ld(1, b"bin"), ld(2, b"hi")].concat()),
        ]
        .concat();
        let body = [MAGIC.to_vec(), ld(1, &typemeta), ld(2, &cm)].concat();
        let v = decode(&body).expect("decodes");
        assert_eq!(v["data"]["a"], "b");
        assert_eq!(v["binaryData"]["bin"], "aGk=");
        assert!(decode(b"nope").is_err());
        assert!(decode(b"k8s\x00\x0a\xff").is_err());
    }
}
