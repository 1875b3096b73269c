//! `--tls`: a throwaway CA and a server certificate generated at every start (rcgen), the
//! rustls server configuration offering `h2` and `http/1.1` by ALPN, and the client
//! configuration of the handle's blocking admin client. Crypto is rustls' ring provider only.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// ALPN protocols offered, preferred first (as kube-apiserver's Go HTTP/2 server does).
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A server's certificates and its rustls configuration.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// The CA certificate (PEM): what a kubeconfig's `certificate-authority-data` holds.
    pub ca_pem: String,
    /// The server configuration (certificate, key, ALPN).
    pub server: Arc<ServerConfig>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Generates a CA and a server certificate signed by it, valid for 127.0.0.1, ::1,
/// `localhost` and `bind` (when it is a specific address).
pub fn generate(bind: IpAddr) -> anyhow::Result<TlsMaterial> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kube-sim CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .context("signing the CA certificate")?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut sans = vec!["127.0.0.1".to_string(), "::1".into(), "localhost".into()];
    if !bind.is_unspecified() && !bind.is_loopback() {
        sans.push(bind.to_string());
    }
    let mut params = CertificateParams::new(sans)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-sim");
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().context("generating the server key")?;
    let cert = params
        .signed_by(&key, &issuer)
        .context("signing the server certificate")?;

    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key_der)
        .context("the server certificate")?;
    server.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(TlsMaterial {
        ca_pem: ca_cert.pem(),
        server: Arc::new(server),
    })
}

/// A client configuration trusting only `ca_pem`, offering no ALPN (so HTTP/1.1).
pub fn client_config(ca_pem: &str) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.context("parsing the CA PEM")?)
            .context("adding the CA")?;
    }
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ca_is_pem_and_the_server_offers_h2_first() {
        let m = generate(IpAddr::from([127, 0, 0, 1])).expect("generates");
        assert!(m.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(m.server.alpn_protocols[0], b"h2");
        assert_eq!(m.server.alpn_protocols[1], b"http/1.1");
        client_config(&m.ca_pem).expect("the CA parses");
    }
}
