//! TLS to a Bambu printer, for MQTT and FTPS alike: the printer's certificate names it by its
//! serial (`CN=01S00A000000000`, issued by Bambu's own "BBL CA") and Farmhand reaches it by IP,
//! so the usual host-name check cannot work. [`SerialVerifier`] instead:
//!
//! 1. with a `ca_file`, checks the chain up to that CA (validity dates, signatures, server-auth
//!    usage), exactly as webpki does, minus the name;
//! 2. always requires the leaf's subject CN to equal the configured serial, so a certificate of
//!    another printer, or of anything else on the LAN, is refused;
//! 3. checks the handshake signature with the leaf's key, so the peer holds that key.
//!
//! Without a `ca_file` step 1 is skipped (the serial pins the printer, as Bambu Studio and
//! Home Assistant's integration do): Farmhand ships no copy of Bambu's CA.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::DriverError;

/// The certificate is valid but belongs to someone else.
#[derive(Debug, thiserror::Error)]
#[error(
    "the certificate is for {found:?}, not printer {serial}: check the serial (it is on the printer's screen under Settings → Device) and that the host is that printer"
)]
pub struct WrongPrinter {
    pub found: String,
    pub serial: String,
}

/// See the module documentation.
#[derive(Debug)]
pub struct SerialVerifier {
    serial: String,
    roots: Option<Arc<RootCertStore>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl SerialVerifier {
    pub fn new(serial: &str, roots: Option<RootCertStore>) -> Self {
        Self {
            serial: serial.to_string(),
            roots: roots.map(Arc::new),
            algorithms: provider().signature_verification_algorithms,
        }
    }
}

fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// The subject's common name, if the certificate parses and has one.
fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(cn)
}

impl ServerCertVerifier for SerialVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
        }
        match common_name(end_entity) {
            Some(cn) if cn == self.serial => Ok(ServerCertVerified::assertion()),
            found => Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(WrongPrinter {
                    found: found.map_or_else(|| "no common name".into(), |cn| format!("CN={cn}")),
                    serial: self.serial.clone(),
                })),
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The CA certificates in a PEM file.
pub fn load_roots(ca_file: &Path) -> Result<RootCertStore, DriverError> {
    let bad = |reason: String| DriverError::InvalidSetting {
        key: "ca_file",
        value: ca_file.display().to_string(),
        hint: reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| bad(format!("cannot read it: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("it is not a PEM certificate file: {e}")))?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(bad("it holds no usable CA certificate".into()));
    }
    Ok(roots)
}

/// The client TLS settings for one printer (shared by its MQTT link and FTPS uploads, so the
/// FTPS data channel can resume the control channel's session from the same cache).
pub fn client_config(
    serial: &str,
    ca_file: Option<&Path>,
) -> Result<Arc<ClientConfig>, DriverError> {
    let roots = ca_file.map(load_roots).transpose()?;
    let config = ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| DriverError::InvalidSetting {
            key: "ca_file",
            value: String::new(),
            hint: format!("TLS cannot be set up: {e}"),
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SerialVerifier::new(serial, roots)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}
